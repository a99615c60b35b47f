"""scheduler: the CronJob of the reference set. Snapshots every account's balance once per schedule window."""
