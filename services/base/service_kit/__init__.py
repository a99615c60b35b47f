"""service_kit: what every service needs to keep the service contract (docs/service-contract.md).

JSON logs whose level follows the mounted logging config, SIGTERM with a deadline, dependencies connected in the
background with backoff, and a small health/metrics server for services that do not serve HTTP themselves.
"""
from service_kit.deps import Dependency
from service_kit.health import HealthServer
from service_kit.lifecycle import Shutdown
from service_kit.logs import configure_logging, trace
from service_kit.settings import grace_seconds, port

__all__ = ["Dependency", "HealthServer", "Shutdown", "configure_logging", "grace_seconds", "port", "trace"]
