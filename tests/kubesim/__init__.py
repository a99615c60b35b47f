"""kubesim: a local Kubernetes API emulator for tests (never imported by production code).

Start one with the `kubesim` pytest fixture (tests/kubesim/fixtures.py) or `kubesim.start()`.
See README.md in this directory for the handle API.
"""
from .behaviors import Behavior
from .cluster import DEFAULT_TIME_FACTOR, Cluster, node_group_name, start

__all__ = ["Behavior", "Cluster", "DEFAULT_TIME_FACTOR", "node_group_name", "start"]
