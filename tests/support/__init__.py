"""Shared test support: the one invoke runner, worlds and fakes."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
