"""Data at rest and its lifetime: KMS keys, log and bucket retention, topics, StorageClasses, Helm pins."""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra.policy.support import (
    ADVISORY,
    MANDATORY,
    as_list,
    document,
    get,
    grants,
    label,
    of_type,
    resource_rule,
    stack_rule,
    statements,
)

KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TOPIC = "aws:sns/topic:Topic"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
LIFECYCLES = ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
              "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")
EBS_PROVISIONERS = ("ebs.csi.aws.com", "kubernetes.io/aws-ebs")
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def _rotation(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    spec = props.get("customerMasterKeySpec") or props.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and props.get("enableKeyRotation") is not True:
        yield "symmetric key without automatic rotation"


kms_rotation = resource_rule(
    "kms-key-rotation",
    "Symmetric customer-managed KMS keys rotate automatically. Source: https://docs.aws.amazon.com/kms/latest/"
    "developerguide/rotate-keys.html (checked 2026-12-05).",
    (KMS_KEY,), _rotation, MANDATORY, "set enable_key_rotation=True")


def _retention(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if not props.get("retentionInDays"):
        yield "log group keeps events forever (no retentionInDays): cost grows without bound"


log_retention = resource_rule(
    "logs-retention",
    "Every CloudWatch log group has a retention period. Source: https://docs.aws.amazon.com/AmazonCloudWatch/latest/"
    "logs/Working-with-log-groups-and-streams.html#SettingLogRetention (checked 2026-12-05).",
    (LOG_GROUP,), _retention, ADVISORY, "set retention_in_days from the stack config")


def _topic(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if not props.get("kmsMasterKeyId"):
        yield "topic messages are stored unencrypted at rest (no kmsMasterKeyId)"


topic_encrypted = resource_rule(
    "sns-topic-encrypted",
    "SNS topics encrypt at rest with a KMS key (sns-alarm-topic-key-usable checks that alarm publishers can use it). "
    "Source: https://docs.aws.amazon.com/sns/latest/dg/sns-server-side-encryption.html (checked 2026-12-05).",
    (TOPIC,), _topic, MANDATORY, "set kms_master_key_id to a customer-managed key CloudWatch may use")

CLOUDWATCH = "cloudwatch.amazonaws.com"
ALARM_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def _alarm_topic_keys(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    for alarm in of_type(resources, ALARM):
        topics = [d for d in alarm.dependencies if d.resource_type == TOPIC and d.props.get("kmsMasterKeyId")]
        for topic in topics:
            key_id = str(topic.props.get("kmsMasterKeyId"))
            if key_id.startswith("alias/aws/") or ":alias/aws/" in key_id:
                yield alarm.urn, (f"{label(alarm)} notifies {label(topic)}, encrypted with the AWS-managed {key_id}, "
                                  f"whose policy no one can extend to CloudWatch: every notification is dropped")
                continue
            key = next((d for d in topic.dependencies if d.resource_type == KMS_KEY), None)
            policy = document(key.props.get("policy")) if key is not None else None
            if key is None or policy is None:
                continue  # a key the stack does not declare, or its default policy: nothing to read here
            usable = [s for s in statements(policy) if CLOUDWATCH in as_list(get(s, "Principal.Service"))]
            missing = [a for a in ALARM_KEY_ACTIONS if not any(grants(s, a) for s in usable)]
            if missing:
                yield alarm.urn, (f"{label(alarm)} notifies {label(topic)}, whose key {label(key)} does not let "
                                  f"{CLOUDWATCH} {', '.join(missing)}: every notification is dropped silently")


alarm_topic_key_usable = stack_rule(
    "sns-alarm-topic-key-usable",
    "A CloudWatch alarm that notifies an encrypted SNS topic needs the topic's key to let cloudwatch.amazonaws.com "
    "kms:GenerateDataKey* and kms:Decrypt (not possible with the AWS-managed alias/aws/sns); otherwise alarms fire and "
    "nothing is delivered. Source: https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html, 'compatibility "
    "with AWS services' (checked 2026-12-05).",
    _alarm_topic_keys, MANDATORY, "give the topic a customer-managed key whose policy allows cloudwatch.amazonaws.com")


def _buckets(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    managed = {d.urn for policy in of_type(resources, *LIFECYCLES) for d in policy.dependencies}
    managed |= {str(policy.props.get("bucket")) for policy in of_type(resources, *LIFECYCLES)}
    for bucket in of_type(resources, *BUCKETS):
        if bucket.urn not in managed and str(bucket.props.get("bucket") or bucket.name) not in managed \
                and not bucket.props.get("lifecycleRules"):
            yield bucket.urn, f"{label(bucket)} has no lifecycle rules: objects (and old versions) are kept forever"


bucket_lifecycle = stack_rule(
    "s3-bucket-lifecycle",
    "Every S3 bucket has lifecycle rules that bound what it keeps. Source: https://docs.aws.amazon.com/AmazonS3/"
    "latest/userguide/object-lifecycle-mgmt.html (checked 2026-12-05).",
    _buckets, ADVISORY, "declare an aws.s3.BucketLifecycleConfigurationV2 for the bucket")


def _ebs_class(props: Mapping[str, Any]) -> bool:
    return props.get("provisioner") in EBS_PROVISIONERS


def _storage_encrypted(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if _ebs_class(props) and str(get(props, "parameters.encrypted")).lower() != "true":
        yield f"StorageClass {get(props, 'metadata.name')} provisions unencrypted EBS volumes"


storage_class_encrypted = resource_rule(
    "k8s-storageclass-encrypted",
    "EBS StorageClasses set parameters.encrypted \"true\" (volumes are not encrypted unless the account default "
    "is). Source: aws-ebs-csi-driver parameters, https://github.com/kubernetes-sigs/aws-ebs-csi-driver/blob/master/"
    "docs/parameters.md (checked 2026-12-05).",
    (STORAGE_CLASS,), _storage_encrypted, MANDATORY, 'add parameters.encrypted: "true"')


def _storage_gp3(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if not _ebs_class(props):
        return
    if props.get("provisioner") == "kubernetes.io/aws-ebs":
        yield "uses the in-tree kubernetes.io/aws-ebs provisioner (migrated to the CSI driver; use ebs.csi.aws.com)"
    if get(props, "parameters.type", "gp2") == "gp2":
        yield "gp2 volumes: gp3 gives 3000 IOPS regardless of size at about 20% lower price"


storage_class_gp3 = resource_rule(
    "k8s-storageclass-gp3",
    "EBS StorageClasses use the CSI driver and gp3. Source: https://aws.amazon.com/ebs/general-purpose/ and the "
    "EKS EBS CSI docs (checked 2026-12-05).",
    (STORAGE_CLASS,), _storage_gp3, ADVISORY, "provisioner ebs.csi.aws.com, parameters.type gp3")


def _helm_pinned(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    version = str(props.get("version") or "")
    if not _EXACT_VERSION.match(version):
        yield (f"chart {props.get('chart')} is not pinned to an exact version ({version or 'latest'}): the next "
               f"`up` can install a different chart")


helm_pinned = resource_rule(
    "helm-chart-pinned",
    "Helm releases pin an exact chart version, so an `up` never changes software by itself. Source: project rule "
    "(infra/charts.py catalogue).",
    HELM, _helm_pinned, MANDATORY, "pin version in infra/charts.py or the stack's platform.charts")

POLICIES = [kms_rotation, log_retention, topic_encrypted, alarm_topic_key_usable, bucket_lifecycle, storage_class_encrypted, storage_class_gp3,
            helm_pinned]
