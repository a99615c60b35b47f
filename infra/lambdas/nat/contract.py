"""What the NAT failover Lambda, the Pulumi component and the ops engines must agree on, defined once.

Plain names and two small codecs: no pulumi, no boto3, so the Lambda package (stdlib + boto3), the
Pulumi program (infra/components/nat.py) and the engines (infra/ops/nat) all import the same values.
"""
from __future__ import annotations

import math

NAMESPACE = "EksPlatform/NAT"

# EC2 instance states in which a NAT instance carries no traffic; the state-change rule matches these.
FAILING_STATES = ("stopping", "stopped", "shutting-down", "terminated")

# Tags on the NAT instances. The health and drain tags are written at run time (Lambda, nat.rotate).
STACK_TAG = "eks-platform:nat-stack"
AZ_TAG = "eks-platform:nat-az"
HEALTH_TAG = "eks-platform:nat-health"
DRAIN_TAG = "eks-platform:nat-drain"
GROUP_TAG = "aws:autoscaling:groupName"  # set by EC2 Auto Scaling on every instance it launches

# EventBridge detail types the failover function handles.
STATE_CHANGE = "EC2 Instance State-change Notification"
LAUNCH_ACTION = "EC2 Instance-launch Lifecycle Action"
LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"


class Metric:
    """Custom metrics the failover function publishes (namespace NAMESPACE); alarms are declared on them."""

    HEALTHY = "HealthyInstances"  # dimension Stack
    FAILOVERS, FAILBACKS, REPAIRS = "Failovers", "Failbacks", "Repairs"  # dimension Stack
    PROBE_LATENCY, PROBE_FAILURES = "ProbeLatency", "ProbeFailures"  # dimensions Stack, AZ
    PROBE_UNKNOWN = "ProbeUnknown"  # dimensions Stack, AZ: probes that could not judge their path
    AWS_ERRORS = "AwsErrors"  # dimension Stack: AWS calls that failed after their retries


def drain_mark(until: float, reason: str = "rotate") -> str:
    """The drain tag's value: why, and the epoch second after which the mark no longer counts."""
    return f"{reason};until={until:.0f}"


def drain_until(value: str | None) -> float | None:
    """The epoch second a drain mark lasts until; None for no mark or one without a readable `until`
    (a mark that cannot say when it ends does not pin routes: it counts as expired)."""
    for part in (value or "").split(";"):
        key, _, raw = part.partition("=")
        if key.strip() == "until":
            try:
                until = float(raw)
            except ValueError:
                return None
            return until if math.isfinite(until) else None
    return None
