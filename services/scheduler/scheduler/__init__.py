"""scheduler: the CronJob of the reference set. Snapshots every account's balance once per schedule window."""

# The service's name as the platform knows it (logs, metrics, the database's application_name);
# `invoke new-service` rewrites this line, and nothing else in the package names the service.
SERVICE = "scheduler"
