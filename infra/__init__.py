"""eks-platform: Pulumi components (declare), ops engines (act), shared config."""
