"""What `pulumi preview|up --policy-pack infra/policy` runs: the pack's policies served to the Pulumi engine.

PolicyPack(...) starts the analyzer's gRPC server and blocks, so it lives here and nowhere else.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `import infra`

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from infra.policy import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.ADVISORY, policies=POLICIES)
