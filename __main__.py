"""Pulumi entry point: validate the stack config, then declare the platform."""
import pulumi

from infra.config import ConfigError
from infra.stack import build, load_from_pulumi

try:
    config = load_from_pulumi()
except ConfigError as error:
    raise pulumi.RunError(error.render()) from None
build(config)
