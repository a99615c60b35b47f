"""Kubernetes minor versions as EKS supports them, and the skew rules between them.

One table shared by config validation and the upgrade planner, so both refuse the same things.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^1\.(\d{1,2})$")

# EKS versions this toolkit can create or upgrade to (standard + extended support).
SUPPORTED_MINORS = range(29, 36)  # 1.29 .. 1.35
# AL2 AMIs are not published for these versions and later.
AL2_LAST_MINOR = 32


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes minor version such as 1.31 (EKS versions are minors only)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: object) -> KubeVersion:
        match = _VERSION.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a Kubernetes minor version; write it as a quoted string like \"1.31\"")
        return cls(1, int(match.group(1)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def next(self) -> KubeVersion:
        return KubeVersion(self.major, self.minor + 1)

    @property
    def supported(self) -> bool:
        return self.minor in SUPPORTED_MINORS

    @property
    def allows_al2(self) -> bool:
        return self.minor <= AL2_LAST_MINOR

    @property
    def max_kubelet_lag(self) -> int:
        """Kubelets may lag the control plane by three minors since 1.28, two before."""
        return 3 if self.minor >= 28 else 2


def supported_range() -> str:
    return f"1.{SUPPORTED_MINORS.start}..1.{SUPPORTED_MINORS.stop - 1}"


def skew_problem(control_plane: KubeVersion, kubelet: KubeVersion) -> str | None:
    """Why this kubelet may not join this control plane, or None when the skew is allowed."""
    if kubelet > control_plane:
        return f"kubelet {kubelet} is newer than the control plane {control_plane}"
    lag = control_plane.minor - kubelet.minor
    if lag > control_plane.max_kubelet_lag:
        return (f"kubelet {kubelet} lags the control plane {control_plane} by {lag} minors "
                f"(at most {control_plane.max_kubelet_lag} allowed)")
    return None
