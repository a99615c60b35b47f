"""platform.status edge rows against moto over HTTP: each public hostname, its load balancer, targets and certificate."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from infra.config import load_stack_config
from infra.ops.platform.edge import CLUSTER_TAG, RESOURCE_TAG, STACK_TAG, public_hosts
from tests.support.tls import self_signed

NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture
def cfg():
    return load_stack_config("dev")


def _alb(region: str, cluster: str, group: str, targets: int) -> str:
    ec2, elbv2 = boto3.client("ec2", region), boto3.client("elbv2", region)
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.10.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]
               ["SubnetId"] for i, az in enumerate("ab")]
    balancer = elbv2.create_load_balancer(Name="k8s-public-1", Subnets=subnets, Scheme="internet-facing",
                                          Tags=[{"Key": CLUSTER_TAG, "Value": cluster},
                                                {"Key": STACK_TAG, "Value": group}])["LoadBalancers"][0]
    group_arn = elbv2.create_target_group(Name="k8s-appsdev-api", Protocol="HTTP", Port=8080, VpcId=vpc,
                                          TargetType="instance", Tags=[
                                              {"Key": CLUSTER_TAG, "Value": cluster},
                                              {"Key": RESOURCE_TAG, "Value": "apps-dev/api-api:http"}])[
        "TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}])
    if targets:
        instances = ec2.run_instances(ImageId="ami-12c6146b", MinCount=targets, MaxCount=targets,
                                      SubnetId=subnets[0])["Instances"]
        elbv2.register_targets(TargetGroupArn=group_arn, Targets=[{"Id": i["InstanceId"]} for i in instances])
    return balancer["DNSName"]


def _certificate(region: str, host: str, days: int) -> None:
    cert, key = self_signed([host], not_after=NOW + timedelta(days=days))
    boto3.client("acm", region).import_certificate(Certificate=cert, PrivateKey=key)


def test_each_hostname_shows_its_load_balancer_targets_and_certificate_expiry(aws, cfg):
    dns = _alb(cfg.region, cfg.cluster.name, f"{cfg.cluster.name}-public", targets=2)
    _certificate(cfg.region, "api.dev.example.com", days=80)
    [row] = public_hosts(cfg, NOW)
    assert (row.host, row.service, row.load_balancer, row.state) == ("api.dev.example.com", "api", dns, "active")
    assert sum(row.targets.values()) == 2 and row.targets.get("healthy") == 2
    assert (row.certificate_status, row.days_left) == ("ISSUED", 80)
    assert row.expires == (NOW + timedelta(days=80)).date().isoformat()
    assert row.problems == []


def test_another_stacks_load_balancer_and_an_expiring_certificate_are_problems(aws, cfg):
    _alb(cfg.region, "eks-prod", "eks-prod-public", targets=1)  # not this stack's: not shown as its edge
    _certificate(cfg.region, "api.dev.example.com", days=10)
    [row] = public_hosts(cfg, NOW)
    assert (row.load_balancer, row.state, row.targets) == ("", "no load balancer", {})
    assert row.problems == ["load balancer no load balancer", "no healthy target", "certificate expires in 10 days"]


def test_a_stack_without_an_edge_has_no_rows(aws, cfg):
    assert public_hosts(cfg.model_copy(update={"edge": None}), NOW) == []


def test_the_status_screen_lists_the_edge_and_its_problems_make_it_need_attention(kubesim, aws, cfg):
    from rich.console import Console

    from infra.ops.io.kube import from_kubeconfig
    from infra.ops.platform.status import Scaling, collect
    from infra.ops.platform.view import screen

    kube = from_kubeconfig(kubesim.kubeconfig)
    sizes = lambda names: {name: Scaling(desired=0, min=0, max=3) for name in names}  # noqa: E731
    dns = _alb(cfg.region, cfg.cluster.name, f"{cfg.cluster.name}-public", targets=2)
    _certificate(cfg.region, "api.dev.example.com", days=10)
    status = collect(kube, cfg, sizes, now=NOW, retry_budget_s=1.0, edge=lambda: public_hosts(cfg, NOW))
    assert [row.host for row in status.edge] == ["api.dev.example.com"]
    assert not status.healthy  # the certificate's renewal is stuck
    console = Console(record=True, width=220, color_system=None)
    console.print(screen(status))
    text = console.export_text()
    assert "Public edge" in text and dns in text and "2 healthy" in text
    assert "ISSUED" in text and "certificate expires in 10 days" in text
    assert status.to_json()["edge"][0]["days_left"] == 10


def test_an_unreadable_edge_is_a_problem_line(kubesim, cfg):
    from infra.ops.io.kube import from_kubeconfig
    from infra.ops.platform.status import collect

    def no_aws():
        raise RuntimeError("no AWS credentials found")

    status = collect(from_kubeconfig(kubesim.kubeconfig), cfg, lambda names: {}, retry_budget_s=1.0, edge=no_aws)
    assert status.edge is None
    assert "public edge: no AWS credentials found" in status.problems
