"""`invoke plan` wall time per stack (target: under 10 s each), with the share spent importing providers.

Baseline in the same run: a bare `python -c pass` start, so the ratio shows what the plan itself costs.
Each measurement is a fresh process, as a user runs it.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 10.0


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    baseline = timed("-c", "pass")
    imports = timed("-c", "import pulumi, pulumi_aws, pulumi_eks, pulumi_kubernetes")
    print(f"{'stack':<6} {'wall s':>7} {'providers import s':>19} {'import share':>13} {'vs bare python':>15} {'target':>8}")
    worst = 0.0
    for env in ("dev", "prod"):
        wall = timed("-m", "invoke", "plan", "--env", env)
        worst = max(worst, wall)
        print(f"{env:<6} {wall:7.2f} {imports:19.2f} {imports / wall:12.0%} {wall / baseline:14.1f}x "
              f"{'ok' if wall < TARGET_S else 'MISSED':>8}")
    print(f"bare python start: {baseline:.3f} s; worst stack {worst:.2f} s vs target {TARGET_S:.0f} s "
          f"(ratio {worst / TARGET_S:.2f})")


if __name__ == "__main__":
    main()
