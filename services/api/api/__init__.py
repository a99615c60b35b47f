"""api: the HTTP service of the reference set. Accounts and balances read from PostgreSQL, behind the ingress."""
