"""A project root holding only Pulumi.dev.yaml as an older cluster has it (1.32, an AL2 generation).

Tests of the AL2 -> AL2023 migration and of upgrades that AL2 blocks copy it where the real stack files,
which are at creatable versions with AL2023 only, cannot show them.
"""
from pathlib import Path

LEGACY_ROOT = Path(__file__).resolve().parent
LEGACY_DEV = LEGACY_ROOT / "Pulumi.dev.yaml"
