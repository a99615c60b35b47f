"""worker: the queue consumer of the reference set. Applies ledger entries from RabbitMQ to PostgreSQL."""
