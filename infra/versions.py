"""Kubernetes minor versions as EKS supports them, and the skew rules between them.

Which minors exist and whether AL2 AMIs do come from the EKS version calendar (infra/eks_calendar.py), shared by
config validation and the upgrade planner, so both refuse the same things; whether a minor is still creatable
is a question of the day, asked of the calendar with a date.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from infra.eks_calendar import CALENDAR

_VERSION = re.compile(r"^1\.(\d{1,2})$")

# The minors the calendar has a row for: the only ones this toolkit can judge, create or upgrade to.
SUPPORTED_MINORS = CALENDAR.minors


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
        """EKS publishes AL2 AMIs for this version (the calendar's AL2 column; unknown minors: no)."""
        release = CALENDAR.get(self.minor)
        return bool(release and release.al2)

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
