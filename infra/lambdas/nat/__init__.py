"""NAT failover Lambdas: failover, probe, route moves, health state, logged AWS clients."""
