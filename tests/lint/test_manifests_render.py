"""Overlays render with the right namespace, images, replicas and shared config; deprecation table lookups."""
from __future__ import annotations

import pytest

from infra import deprecations
from infra.ops.io import manifests
from infra.ops.io.manifests import K8S_ROOT, Manifest, RenderError
from infra.versions import KubeVersion
from tests.support.k8s_tree import copy_tree, edit

REGISTRY = {"dev": "111111111111.dkr.ecr.eu-west-1.amazonaws.com",
            "prod": "222222222222.dkr.ecr.eu-west-1.amazonaws.com"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {env: manifests.render(K8S_ROOT / "overlays" / env) for env in ("dev", "prod")}


def find(objects: list[Manifest], kind: str, name: str) -> dict:
    return next(m.obj for m in objects if m.kind == kind and m.name == name)


def pod_spec(obj: dict) -> dict:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["spec"]


def test_tree_lists_services_and_overlays():
    assert manifests.services() == ["api", "scheduler", "worker"]
    assert manifests.overlays() == ["dev", "prod"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_object_lands_in_the_env_namespace(rendered, env):
    assert {m.namespace for m in rendered[env]} == {f"apps-{env}"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_images_point_at_the_env_registry_with_a_pinned_tag(rendered, env):
    images = {obj_name: pod_spec(find(rendered[env], kind, obj_name))["containers"][0]["image"]
              for kind, obj_name in (("Deployment", "api"), ("Deployment", "worker"), ("CronJob", "scheduler"))}
    assert images == {svc: f"{REGISTRY[env]}/{svc}:0.1.0" for svc in ("api", "worker", "scheduler")}


@pytest.mark.parametrize("env, worker, hpa_min, hpa_max, host", [
    ("dev", 1, 1, 3, "api.dev.example.com"), ("prod", 3, 3, 10, "api.example.com")])
def test_replicas_autoscaling_and_hosts_per_env(rendered, env, worker, hpa_min, hpa_max, host):
    objects = rendered[env]
    assert find(objects, "Deployment", "worker")["spec"]["replicas"] == worker
    assert "replicas" not in find(objects, "Deployment", "api")["spec"]  # the HPA owns it
    hpa = find(objects, "HorizontalPodAutoscaler", "api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (hpa_min, hpa_max)
    ingress = find(objects, "Ingress", "api")
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"] == [{"hosts": [host]}]  # the certificate comes from the class (ACM), no Secret
    assert ingress["spec"]["ingressClassName"] == "alb"


def test_prod_gets_more_resources_than_dev(rendered):
    memory = {env: pod_spec(find(rendered[env], "Deployment", "api"))["containers"][0]["resources"]["requests"]
              ["memory"] for env in rendered}
    assert memory == {"dev": "192Mi", "prod": "512Mi"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_pod_mounts_the_one_generated_logging_config(rendered, env):
    configmaps = [m.name for m in rendered[env] if m.kind == "ConfigMap"]
    # No hash suffix: a level change updates the ConfigMap in place and the services re-read it without a restart.
    assert configmaps == ["logging-config"]
    for kind, name in (("Deployment", "api"), ("Deployment", "worker"), ("CronJob", "scheduler")):
        volumes = {v["name"]: v for v in pod_spec(find(rendered[env], kind, name))["volumes"]}
        assert volumes["logging-config"]["configMap"]["name"] == configmaps[0]


def test_sources_point_at_the_files_in_the_tree(rendered):
    sources = {m.resource: m.source for m in rendered["dev"]}
    assert sources["Deployment/apps-dev/api"] == "infra/k8s/base/api/deployment.yaml"
    assert sources["NetworkPolicy/apps-dev/default-deny"] == "infra/k8s/base/shared/networkpolicy.yaml"
    assert all("config.kubernetes.io/origin" not in (m.obj["metadata"].get("annotations") or {})
               for m in rendered["dev"])


def test_image_override_sets_the_deployed_tag():
    objects = manifests.render(K8S_ROOT / "overlays/prod", images={f"{REGISTRY['prod']}/api": ":3f2a9c1"})
    assert pod_spec(find(objects, "Deployment", "api"))["containers"][0]["image"] == f"{REGISTRY['prod']}/api:3f2a9c1"
    assert pod_spec(find(objects, "Deployment", "worker"))["containers"][0]["image"].endswith("/worker:0.1.0")
    moved = manifests.render(K8S_ROOT / "overlays/dev", images={f"{REGISTRY['dev']}/worker": "registry.local/w@sha256:"
                                                                + "a" * 64})
    assert pod_spec(find(moved, "Deployment", "worker"))["containers"][0]["image"] == "registry.local/w@sha256:" + "a" * 64


def test_service_objects_are_the_service_plus_shared(rendered):
    names = {(m.kind, m.name.split("-")[0] if m.kind == "ConfigMap" else m.name)
             for m in manifests.service_objects(rendered["dev"], "worker")}
    assert names == {("ServiceAccount", "worker"), ("Deployment", "worker"), ("PodDisruptionBudget", "worker"),
                     ("NetworkPolicy", "worker"), ("NetworkPolicy", "default-deny"), ("NetworkPolicy", "allow-dns"),
                     ("ConfigMap", "logging")}


def test_broken_overlay_raises_render_error_with_kustomize_reason(tmp_path):
    root = copy_tree(tmp_path)
    edit(root / "overlays/dev/kustomization.yaml", lambda docs: docs[0]["resources"].append("../../base/nope"))
    with pytest.raises(RenderError, match="nope"):
        manifests.render(root / "overlays/dev")
    with pytest.raises(RenderError, match="no kustomization.yaml"):
        manifests.render(root / "overlays/staging")


V = KubeVersion.parse


@pytest.mark.parametrize("api_version, kind, target, removed, since", [
    ("policy/v1beta1", "PodDisruptionBudget", "1.31", True, "1.25"),
    ("batch/v1beta1", "CronJob", "1.29", True, "1.25"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "1.31", False, "1.29"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "1.32", True, "1.32"),
    ("v1", "Endpoints", "1.33", False, "1.33"),
])
def test_deprecation_table_states(api_version, kind, target, removed, since):
    hit = deprecations.check({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "n"}},
                             V(target))
    assert hit is not None and (hit.removed, hit.since) == (removed, V(since))
    assert hit.resource == f"{kind}/n/x" and hit.replacement


def test_current_apis_and_not_yet_deprecated_ones_pass():
    assert deprecations.check({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}, V("1.35")) is None
    assert deprecations.check({"apiVersion": "v1", "kind": "Endpoints"}, V("1.32")) is None
    objects = [{"apiVersion": "apps/v1", "kind": "Deployment"}, {"apiVersion": "autoscaling/v2beta2",
                                                                 "kind": "HorizontalPodAutoscaler"}]
    assert [f.api_version for f in deprecations.scan(objects, V("1.26"))] == ["autoscaling/v2beta2"]
    assert not deprecations.scan(objects, V("1.22"))  # v2beta2 is deprecated from 1.23
    assert [f.removed for f in deprecations.scan(objects, V("1.23"))] == [False]
