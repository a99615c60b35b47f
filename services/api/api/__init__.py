"""api: the HTTP service of the reference set. Accounts and balances read from PostgreSQL, behind the ingress."""

# The service's name as the platform knows it (logs, metrics, the database's application_name);
# `invoke new-service` rewrites this line, and nothing else in the package names the service.
SERVICE = "api"
