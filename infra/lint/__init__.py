"""Repository checks: manifests, workload rules, checkov, workflows, and the service scaffold."""
