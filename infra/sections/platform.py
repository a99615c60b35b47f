"""The `platform` section: in-cluster baseline (namespaces, quotas, storage, autoscaler, monitoring)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from infra.sections.base import _CHART_VERSION, Count, Number, Section, Switch, app_namespace
from infra.sections.core import _CLOUDWATCH_RETENTION

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_QUANTITY_SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_PROM_DURATION = re.compile(r"^\d+(h|d|w|y)$")
_GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def quantity(value: str) -> float:
    """A Kubernetes resource quantity ("250m", "2", "512Mi") as a number, for comparing limits."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write it like 500m, 2, 512Mi or 4Gi")
    return float(match.group(1)) * _QUANTITY_SCALE[match.group(2)]


def _quantity_text(value: str) -> str:
    quantity(value)  # raises when it is not a quantity; the text itself is what Kubernetes gets ("0" stays "0")
    return value


Quantity = Annotated[str, AfterValidator(_quantity_text)]


class Quota(Section):
    """ResourceQuota of one application namespace: a runaway deploy cannot starve the others."""

    requests_cpu: Quantity = "4"
    requests_memory: Quantity = "8Gi"
    limits_cpu: Quantity = "8"
    limits_memory: Quantity = "16Gi"
    requests_storage: Quantity = "100Gi"
    pods: Count = Field(default=50, ge=1, le=5000)
    persistent_volume_claims: Count = Field(default=10, ge=0, le=1000)
    services_load_balancers: Count = Field(default=2, ge=0, le=100)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Quota:
        for kind in ("cpu", "memory"):
            if quantity(getattr(self, f"requests_{kind}")) > quantity(getattr(self, f"limits_{kind}")):
                raise ValueError(f"requests_{kind} exceeds limits_{kind}; raise limits_{kind} or lower requests_{kind}")
        return self


class ContainerDefaults(Section):
    """LimitRange: what a container without requests/limits gets, and the most one container may ask for."""

    default_request_cpu: Quantity = "100m"
    default_request_memory: Quantity = "128Mi"
    default_limit_cpu: Quantity = "500m"
    default_limit_memory: Quantity = "256Mi"
    max_cpu: Quantity = "2"
    max_memory: Quantity = "4Gi"

    @model_validator(mode="after")
    def _ordered(self) -> ContainerDefaults:
        for kind in ("cpu", "memory"):
            request, limit, most = (quantity(getattr(self, f"{field}_{kind}"))
                                    for field in ("default_request", "default_limit", "max"))
            if not request <= limit <= most:
                raise ValueError(f"need default_request_{kind} <= default_limit_{kind} <= max_{kind}; adjust them")
        return self


class AppNamespaceConfig(Section):
    quota: Quota = Field(default_factory=Quota)
    limits: ContainerDefaults = Field(default_factory=ContainerDefaults)


class StorageConfig(Section):
    """The default gp3 StorageClass. Retain keeps the EBS volume when a PVC is deleted by mistake."""

    iops: Count = Field(default=3000, ge=3000, le=16000)
    throughput_mibps: Count = Field(default=125, ge=125, le=1000)
    reclaim_policy: Literal["Delete", "Retain"] = "Delete"


class AutoscalerConfig(Section):
    """cluster-autoscaler scale-down behaviour; scale-down always honours PodDisruptionBudgets."""

    expander: Literal["least-waste", "random", "most-pods", "priority", "price"] = "least-waste"
    scale_down_utilization_threshold: Number = Field(default=0.5, gt=0, lt=1)
    scale_down_unneeded_time: str = "10m"
    scale_down_delay_after_add: str = "10m"
    max_graceful_termination_sec: Count = Field(default=600, ge=30, le=3600)

    @field_validator("scale_down_unneeded_time", "scale_down_delay_after_add")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not _GO_DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration; write it like 10m, 1h or 90s")
        return value


class MonitoringConfig(Section):
    """kube-prometheus-stack sizing: metrics kept `retention` long, capped below the volume size."""

    retention: str = "15d"
    storage_gib: Count = Field(default=50, ge=5, le=16384)
    prometheus_replicas: Count = Field(default=1, ge=1, le=3)
    alertmanager_storage_gib: Count = Field(default=5, ge=1, le=1024)
    grafana_storage_gib: Count = Field(default=10, ge=1, le=1024)
    runbook_url: str = "https://github.com/eks-platform/eks-platform/blob/main/infra/observability/runbooks.md"
    # Name of a Secret in `monitoring` whose key `url` is a Slack incoming webhook; unset: alerts only show in
    # Alertmanager, Grafana and `invoke platform.status`. The URL itself never enters config or state.
    slack_webhook_secret: str | None = None

    @field_validator("slack_webhook_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAMESPACE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes Secret name; use lowercase letters, digits and '-'")
        return value

    @field_validator("runbook_url")
    @classmethod
    def _runbook_url(cls, value: str) -> str:
        if not re.match(r"^https://[^\s#]+$", value):
            raise ValueError(f"{value!r} is not an https URL without a fragment; point it at runbooks.md "
                             f"as the team browses it")
        return value

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not _PROM_DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus retention; write it like 15d, 12h, 4w or 1y")
        return value

    @property
    def retention_size(self) -> str:
        """Prometheus deletes old blocks before the volume fills: 85 % of the volume, in GiB."""
        return f"{int(self.storage_gib * 0.85)}GB"


class LogShipperConfig(Section):
    """Optional node agent (DaemonSet) shipping container stdout to CloudWatch Logs."""

    enabled: Switch = False
    retention_days: Count = 30

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in _CLOUDWATCH_RETENTION:
            nearest = min(_CLOUDWATCH_RETENTION, key=lambda allowed: abs(allowed - value))
            raise ValueError(f"CloudWatch does not accept {value} days; use an allowed value such as {nearest}")
        return value


class PlatformConfig(Section):
    """In-cluster baseline: storage, autoscaling, application namespaces, observability, logs."""

    namespaces: dict[str, AppNamespaceConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    autoscaler: AutoscalerConfig = Field(default_factory=AutoscalerConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    log_shipper: LogShipperConfig = Field(default_factory=LogShipperConfig)
    charts: dict[str, str] = Field(default_factory=dict)

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: dict[str, AppNamespaceConfig]) -> dict[str, AppNamespaceConfig]:
        for name in value:
            if not _NAMESPACE.match(name) or name.startswith("kube-"):
                raise ValueError(f"{name!r} is not a usable namespace name; use lowercase letters, digits and '-', "
                                 f"not starting with kube-")
        return value

    @field_validator("charts")
    @classmethod
    def _charts(cls, value: dict[str, str]) -> dict[str, str]:
        from infra.charts import CHARTS

        for chart, version in value.items():
            if chart not in CHARTS:
                raise ValueError(f"unknown chart {chart!r}; use one of {', '.join(CHARTS)}")
            if not _CHART_VERSION.match(str(version)):
                raise ValueError(f"chart {chart} version {version!r} is not an exact version; pin it like 1.2.3")
        return value

    def app_namespaces(self, env: str) -> dict[str, AppNamespaceConfig]:
        """The stack's application namespace (always) plus any extra ones, each with its settings."""
        return {app_namespace(env): AppNamespaceConfig(), **self.namespaces}
