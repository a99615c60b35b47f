"""`invoke lint` wall time on the real tree (target: under 30 s), with what the parts cost.

Baselines in the same run: a bare `python -c pass` start and a plain `kubectl kustomize` of every overlay,
so the ratios show what the checks add on top of rendering. Each measurement is a fresh process, as a user
runs it; checkov's venv is prepared first so its one-off install is not counted.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 30.0


def timed(*command: str) -> float:
    start = time.perf_counter()
    subprocess.run(list(command), cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    from infra.lint import checkov as checkov_scan
    from infra.ops.io import manifests

    checkov_scan.ensure_env()
    bare = timed(sys.executable, "-c", "pass")
    render = sum(timed("kubectl", "kustomize", str(manifests.K8S_ROOT / "overlays" / env))
                 for env in manifests.overlays())
    rows = [("invoke lint", timed(sys.executable, "-m", "invoke", "lint")),
            ("invoke lint --skip checkov", timed(sys.executable, "-m", "invoke", "lint", "--skip", "checkov")),
            ("invoke lint --only checkov", timed(sys.executable, "-m", "invoke", "lint", "--only", "checkov"))]
    print(f"{'command':<28} {'wall s':>7} {'vs kustomize':>13} {'vs bare python':>15}")
    for name, wall in rows:
        print(f"{name:<28} {wall:7.2f} {wall / render:12.1f}x {wall / bare:14.1f}x")
    full = rows[0][1]
    print(f"baselines: kubectl kustomize of {len(manifests.overlays())} overlays {render:.2f} s, bare python "
          f"{bare:.3f} s; invoke lint {full:.2f} s vs target {TARGET_S:.0f} s (ratio {full / TARGET_S:.2f}) "
          f"{'ok' if full < TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
