"""worker: the queue consumer of the reference set. Applies ledger entries from RabbitMQ to PostgreSQL."""

# The service's name as the platform knows it (logs, metrics, the database's application_name);
# `invoke new-service` rewrites this line, and nothing else in the package names the service.
SERVICE = "worker"
