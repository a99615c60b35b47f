"""pytest fixtures: `kubesim` (a started Cluster with three Ready nodes) and `kubesim_factory`.

Registered from tests/conftest.py with `pytest_plugins = ["tests.kubesim.fixtures"]`.
A test fails if the emulator itself hit an internal error, so emulator bugs never pass silently.
"""
from __future__ import annotations

import pytest

from .cluster import DEFAULT_TIME_FACTOR, Cluster, start


def _finish(clusters: list[Cluster]) -> None:
    problems = []
    for c in clusters:
        c.stop()
        problems += c.internal_errors
    if problems:
        pytest.fail("kubesim internal error(s):\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def kubesim(tmp_path):
    """A running emulated cluster: nodes general/blue in eu-west-1a/b/c, kubeconfig at `.kubeconfig`."""
    cluster = start(DEFAULT_TIME_FACTOR, nodes=True, workdir=str(tmp_path))
    yield cluster
    _finish([cluster])


@pytest.fixture
def kubesim_factory(tmp_path):
    """Start extra or differently configured clusters: `kubesim_factory(time_factor=0.02, nodes=False)`."""
    clusters: list[Cluster] = []

    def make(time_factor: float = DEFAULT_TIME_FACTOR, nodes: bool = True) -> Cluster:
        c = start(time_factor, nodes, workdir=str(tmp_path / f"kubesim{len(clusters)}"))
        clusters.append(c)
        return c
    yield make
    _finish(clusters)
