"""Clients: Kubernetes, AWS, EKS, ECR, the pulumi and docker CLIs, the stack file. No capability here."""
