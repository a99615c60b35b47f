"""Every boto3 client of the engines comes from infra/ops/io/aws.py, so each one has the bounded retry policy and the
wait notices: a client made anywhere else would retry differently (or hang) and wait in silence."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO_ROOT

OPS = REPO_ROOT / "infra" / "ops"
FACTORY = OPS / "io" / "aws.py"
MAKERS = {"client", "resource", "Session"}  # boto3.client(...), session.client(...), boto3.session.Session(...)


def _bypasses(path: Path) -> list[str]:
    """Where `path` imports boto3 or makes a client, resource or session other than through `aws.<maker>`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "boto3" for alias in node.names):
            found.append(f"{node.lineno}: import boto3")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "boto3":
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MAKERS:
            receiver = node.func.value
            if not (isinstance(receiver, ast.Name) and receiver.id == "aws"):
                found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_no_engine_makes_a_boto3_client_outside_the_factory():
    offenders = {str(path.relative_to(REPO_ROOT)): where for path in sorted(OPS.rglob("*.py"))
                 if path != FACTORY and (where := _bypasses(path))}
    assert not offenders, f"make these through infra.ops.io.aws (client/session): {offenders}"


def test_the_check_sees_each_way_round_the_factory(tmp_path):
    """The check is only as good as what it catches: each bypass seen before, and the factory's own use passes."""
    sample = tmp_path / "sample.py"
    sample.write_text("import boto3\nfrom boto3.session import Session\n"
                      "a = boto3.client('eks')\nb = session.client('sts')\nc = boto3.session.Session()\n"
                      "d = aws.client('eks', 'eu-west-1')\ne = aws.session('eu-west-1')\n")
    assert [line.split(":")[0] for line in _bypasses(sample)] == ["1", "2", "3", "4", "5"]
