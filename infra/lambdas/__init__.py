"""Lambda handlers: plain boto3, configuration from environment variables."""
