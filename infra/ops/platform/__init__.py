"""Platform status: one screen of health read from the cluster, EKS and Alertmanager."""
