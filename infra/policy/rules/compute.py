"""EC2 and Lambda: who can reach what from the internet, instance metadata, disks, and Lambda safety nets."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra.policy.support import ADVISORY, MANDATORY, as_list, get, label, of_type, resource_rule, stack_rule

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
GROUP = "aws:autoscaling/group:Group"
VOLUME = "aws:ebs/volume:Volume"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
WORLD = ("0.0.0.0/0", "::/0")
WEB_PORTS = (80, 443)


def _world_rule(rule: Mapping[str, Any]) -> str | None:
    """'tcp 22' etc. when an ingress rule opens anything but exactly 80 or 443 to the whole internet."""
    cidrs = [*as_list(rule.get("cidrBlocks")), *as_list(rule.get("ipv6CidrBlocks")), rule.get("cidrIpv4"),
             rule.get("cidrIpv6")]
    if not any(cidr in WORLD for cidr in cidrs):
        return None
    protocol = str(rule.get("protocol") or rule.get("ipProtocol") or "-1")
    low, high = rule.get("fromPort"), rule.get("toPort")
    if protocol in ("-1", "all") or low is None or high is None:
        return "all traffic"
    if low == high and int(low) in WEB_PORTS:
        return None
    return f"{protocol} {int(low)}" + (f"-{int(high)}" if high != low else "")


def _world_ingress(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == SECURITY_GROUP:
        rules = as_list(props.get("ingress"))
    elif args.resource_type == SG_RULE:
        rules = [props] if props.get("type") == "ingress" else []
    else:
        rules = [props]
    for rule in rules:
        opened = _world_rule(rule)
        if opened:
            yield f"ingress from the whole internet on {opened}; only 80 and 443 may face 0.0.0.0/0"


no_world_ingress = resource_rule(
    "sg-no-world-ingress",
    "Security groups open to 0.0.0.0/0 or ::/0 only on 80/443. Source: AWS Foundational Security Best Practices "
    "EC2.18/EC2.19, https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html (checked 2026-12-05).",
    (SECURITY_GROUP, SG_RULE, SG_INGRESS), _world_ingress, MANDATORY,
    "allow the VPC CIDR or a source security group instead")


def _imds(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == INSTANCE and props.get("launchTemplate") is not None:
        return  # the template's metadata options apply (checked on the template)
    options = props.get("metadataOptions")
    if get(options, "httpTokens") != "required":
        yield "instance metadata accepts IMDSv1 (httpTokens not required): an SSRF in any pod reads node credentials"
    if get(options, "httpPutResponseHopLimit") != 1:
        yield (f"metadata hop limit is {get(options, 'httpPutResponseHopLimit') or 'the default'}, not 1: pods on "
               f"the node can reach the node role's credentials (they get their own through IRSA)")


imdsv2_hop_limit = resource_rule(
    "ec2-imdsv2-hop-limit-1",
    "Launch templates and instances require IMDSv2 with hop limit 1. Source: EKS best practices, 'Restrict access to "
    "the instance profile assigned to the worker node', https://docs.aws.amazon.com/eks/latest/best-practices/"
    "identity-and-access-management.html (checked 2026-12-05).",
    (LAUNCH_TEMPLATE, INSTANCE), _imds, MANDATORY,
    'metadata_options http_tokens="required", http_put_response_hop_limit=1')


def _group_templates(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    for group in of_type(resources, GROUP):
        if group.props.get("launchConfiguration"):
            yield group.urn, (f"{label(group)} launches from a launch configuration: no IMDSv2 guarantee here and no "
                              f"new instance types (AWS ends launch configurations); use a launch template")
            continue
        templates = [d for d in group.dependencies if d.resource_type == LAUNCH_TEMPLATE]
        if not templates:
            yield group.urn, (f"{label(group)} launches from a template the stack does not declare: whether its "
                              f"instances require IMDSv2 cannot be known")
        for template in templates:
            options = template.props.get("metadataOptions")
            if get(options, "httpTokens") != "required":
                yield group.urn, (f"{label(group)} launches from {label(template)}, which accepts IMDSv1: every "
                                  f"replacement the group makes answers an SSRF with its role's credentials")


group_template_imdsv2 = stack_rule(
    "asg-launch-template-imdsv2",
    "Auto Scaling groups (the NAT instances' groups among them) launch from a launch template the stack declares, "
    "and that template requires IMDSv2: the group replaces instances with no one watching. Source: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/create-launch-template.html and "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/launch-configurations.html (checked 2026-12-05).",
    _group_templates, MANDATORY, 'launch_template=GroupLaunchTemplateArgs(id=<template>.id, ...) with http_tokens="required"')


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _ebs(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == VOLUME:
        disks = [("volume", props)]
    elif args.resource_type == LAUNCH_TEMPLATE:
        disks = [(str(get(m, "deviceName")), get(m, "ebs")) for m in as_list(props.get("blockDeviceMappings"))
                 if get(m, "ebs") is not None]
    elif props.get("launchTemplate") is None:
        disks = [("root", props.get("rootBlockDevice") or {}), *(
            (str(get(d, "deviceName")), d) for d in as_list(props.get("ebsBlockDevices")))]
    else:
        disks = []
    for device, disk in disks:
        if not _truthy(get(disk, "encrypted")):
            yield f"EBS {device} is not encrypted"


ebs_encrypted = resource_rule(
    "ebs-encrypted",
    "Every EBS volume the stack declares (launch-template block devices, volumes, instance disks) is encrypted. "
    "Source: https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html (checked 2026-12-05).",
    (LAUNCH_TEMPLATE, VOLUME, INSTANCE), _ebs, MANDATORY, 'set encrypted="true" on the EBS block device')


def _reserved(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    reserved = props.get("reservedConcurrentExecutions")
    if reserved is None or reserved == -1:
        yield ("no reserved concurrency: a burst elsewhere in the account can throttle it to zero, and a runaway "
               "trigger can use the whole account's concurrency")


lambda_reserved_concurrency = resource_rule(
    "lambda-reserved-concurrency",
    "Functions should reserve concurrency: a floor for themselves and a ceiling for everyone else. Source: "
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html (checked 2026-12-05).",
    (FUNCTION,), _reserved, ADVISORY, "set reserved_concurrent_executions to what the function needs")


def _dead_letter(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if not get(props, "deadLetterConfig.targetArn"):
        yield "asynchronous invocations that fail all retries are dropped without a trace (no dead-letter target)"


lambda_dead_letter = resource_rule(
    "lambda-dead-letter",
    "Functions invoked asynchronously should send failed events to a dead-letter queue or topic. Source: "
    "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html (checked 2026-12-05).",
    (FUNCTION,), _dead_letter, ADVISORY, "set dead_letter_config target_arn (an SQS queue or SNS topic)")


def _function_logs(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    groups = {str(group.props.get("name")) for group in of_type(resources, LOG_GROUP)}
    for function in of_type(resources, FUNCTION):
        name = function.props.get("name")
        if not name:
            yield function.urn, (f"{label(function)} is auto-named, so its log group cannot be declared ahead: "
                                 f"Lambda creates /aws/lambda/<name> itself, kept forever")
        elif f"/aws/lambda/{name}" not in groups:
            yield function.urn, (f"{label(function)} has no declared /aws/lambda/{name} log group: Lambda creates "
                                 f"one with no retention and Pulumi never deletes it")


lambda_log_group = stack_rule(
    "lambda-log-group-declared",
    "Each function's /aws/lambda/<name> log group is declared (with retention) before the function. Source: "
    "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html (checked 2026-12-05).",
    _function_logs, ADVISORY, "name the function and declare its log group with retention_in_days")

POLICIES = [no_world_ingress, imdsv2_hop_limit, group_template_imdsv2, ebs_encrypted, lambda_reserved_concurrency, lambda_dead_letter,
            lambda_log_group]
