"""The world and the one assertion behind the bad-input tables (tests/cli/test_bad_input_*.py).

Every case runs `invoke` in a subprocess inside a git copy of the project, so a task that wrongly writes can
damage nothing real and any write shows: the copy's files are hashed before and after. Around it sit the outside
systems a task could change, each watched the same way: a fake `pulumi` on PATH that logs every call (a bad input
must not reach `pulumi up`), a kubesim cluster whose HTTP log must show no write, and moto, whose resources are
listed before and after. AWS credentials and KUBECONFIG are removed from the environment unless the module's world
provides them, so a task that reaches for the cloud before refusing ends in an outside failure, not a pass.

A row is `row(id, "task --flag value", exit_code, "fragment", ...)`: the arguments split like a shell would,
`{placeholders}` (see `World.placeholders`) filled in, and the fragments the single stderr line must contain.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ROOT, invoke, one_line_error
from tests.support.fake_pulumi import FakePulumi

CASE_TIMEOUT_S = 120  # generous bound per case; a bad input is refused in about a second
OUTSIDE_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
               "AWS_DEFAULT_PROFILE", "KUBECONFIG", "PULUMI_ACCESS_TOKEN", "GITHUB_ACTIONS")

Setup = Callable[["World"], None]


@dataclass(frozen=True)
class Case:
    """One row of a table: the command, what it must exit with and say, and what the world holds first."""

    id: str
    args: tuple[str, ...]
    code: int
    fragments: tuple[str, ...]
    stdin: str | None = None
    setup: tuple[Setup, ...] = ()
    lines: int | None = 1  # stderr lines; None: a multi-problem config error (a header plus one line per problem)
    absent: tuple[str, ...] = ()  # text the error must not hold (e.g. a wrong suggestion)
    out: tuple[str, ...] = ()  # fragments of stdout (lint and ci.check print their findings as a table)


CLOSED = "<&-"  # a row's stdin: the task starts with file descriptor 0 closed


def row(id: str, command: str, code: int, *fragments: str, stdin: str | None = None,
        setup: Setup | tuple[Setup, ...] = (), lines: int | None = 1, absent: tuple[str, ...] = (),
        out: tuple[str, ...] = ()) -> Any:
    """A table row as a pytest param whose id says what the case is; `absent` text must be in neither stream."""
    setups = setup if isinstance(setup, tuple) else (setup,)
    case = Case(id, tuple(shlex.split(command)), code, fragments, stdin, setups, lines, absent, out)
    return pytest.param(case, id=id)


def ids_are_unique(table: list[Any]) -> bool:
    names = [param.id for param in table]
    return len(names) == len(set(names))


# --- the project copy --------------------------------------------------------------------------------

GIT = ["git", "-c", "user.email=bad-input@example.com", "-c", "user.name=bad-input", "-c", "commit.gpgsign=false"]


def _git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True, timeout=60).stdout


def copy_project(target: Path) -> Path:
    """The project's files (tracked and untracked, not ignored; no tests or benches) in a fresh git repository."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True, text=True, timeout=60).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if name.startswith(("tests/", "bench/")) or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-qm", "project as the bad-input world found it")
    return target


def file_hashes(root: Path) -> dict[str, str]:
    """Every file under root (not .git, not bytecode) -> sha256 of its content."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] != ".git" and "__pycache__" not in relative.parts:
            hashes[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def reset_project(root: Path) -> None:
    """Back to the committed copy: edits undone, new files (ignored ones too, e.g. .eks-platform/) removed."""
    _git(root, "checkout", "-q", "--", ".")
    _git(root, "clean", "-qfdx")


# --- AWS (moto) inventory ----------------------------------------------------------------------------

def aws_inventory(region: str = "eu-west-1") -> dict[str, Any]:
    """What a task could create or change in AWS: secrets and their versions, EC2 instances, routes and tags,
    EKS clusters and node groups (versions, sizes), ECR repositories and their images, SSM parameters (locks and
    checkpoints)."""
    import boto3

    sm, ec2, eks, ecr, ssm = (boto3.client(name, region_name=region)
                              for name in ("secretsmanager", "ec2", "eks", "ecr", "ssm"))
    secrets = {}
    for secret in sm.list_secrets().get("SecretList", []):
        versions = sm.list_secret_version_ids(SecretId=secret["ARN"], IncludeDeprecated=True)["Versions"]
        secrets[secret["Name"]] = sorted((v["VersionId"], tuple(sorted(v.get("VersionStages", [])))) for v in versions)
    instances = {i["InstanceId"]: (i["State"]["Name"], sorted((t["Key"], t["Value"]) for t in i.get("Tags", [])))
                 for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    routes = {t["RouteTableId"]: sorted(json.dumps(route, sort_keys=True, default=str) for route in t["Routes"])
              for t in ec2.describe_route_tables()["RouteTables"]}
    clusters = {}
    for name in eks.list_clusters()["clusters"]:
        groups = {}
        for group in eks.list_nodegroups(clusterName=name)["nodegroups"]:
            found = eks.describe_nodegroup(clusterName=name, nodegroupName=group)["nodegroup"]
            groups[group] = (found.get("version"), found.get("amiType"), json.dumps(found.get("scalingConfig")))
        clusters[name] = (eks.describe_cluster(name=name)["cluster"].get("version"), groups)
    images = {repository["repositoryName"]: sorted(json.dumps(image, sort_keys=True) for image in ecr.list_images(
        repositoryName=repository["repositoryName"])["imageIds"]) for repository in ecr.describe_repositories()["repositories"]}
    parameters = {p["Name"]: (p["Value"], p["Version"])
                  for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True)
                  for p in page["Parameters"]}
    return {"secrets": secrets, "instances": instances, "routes": routes, "eks": clusters, "ecr": images,
            "ssm parameters": parameters}


# --- kubesim ------------------------------------------------------------------------------------------

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
APP_NAMESPACES = ("apps-dev", "apps-prod")


def seed_cluster(cluster) -> None:
    """What dev's platform cluster holds before any case: its identity ConfigMap (cluster tasks prove they reached
    dev's cluster), the app namespaces and a deployed `api` with two revisions (history and rollback have something
    real to refuse against)."""
    from kubernetes import client

    from tests.support.identity import declare_identity

    declare_identity(cluster, "dev")
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for namespace in APP_NAMESPACES:
        core.create_namespace({"metadata": {"name": namespace}})
    labels = {"app.kubernetes.io/name": "api"}
    body = {"metadata": {"name": "api", "labels": labels}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "api", "image": "api:v1"}]}}}}
    apps.create_namespaced_deployment("apps-dev", body)
    # As in a real cluster, a template changed before the controller saw the first one makes a single ReplicaSet:
    # wait for revision 1's before the change that makes revision 2.
    cluster.wait_for(lambda: apps.list_namespaced_replica_set("apps-dev").items, message="api's first ReplicaSet")
    apps.patch_namespaced_deployment("api", "apps-dev", {"spec": {"template": {"spec": {
        "containers": [{"name": "api", "image": "api:v2"}]}}}})
    # Revision 2's ReplicaSet comes after the patch returns: a case reading the revisions earlier sees only one.
    cluster.wait_for(lambda: len(apps.list_namespaced_replica_set("apps-dev").items) >= 2,
                     message="api's two ReplicaSets (revisions 1 and 2)")


def cluster_writes(cluster) -> list[tuple]:
    """Writes the API server accepted (a refused write or a server-side dry run changes nothing)."""
    return [(method, path, status) for method, path, status in list(cluster.requests)
            if method in WRITE_METHODS and status < 400 and "dryRun=" not in path]


# --- the world ---------------------------------------------------------------------------------------

@dataclass
class World:
    """One case's surroundings. `cluster` and `aws` are None when the module's world has none."""

    root: Path
    pulumi: FakePulumi
    scratch: Path
    monkeypatch: pytest.MonkeyPatch
    cluster: Any = None
    aws: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run after the case, whatever it did

    @property
    def stack_path(self) -> Path:
        return self.root / "Pulumi.dev.yaml"

    def placeholders(self) -> dict[str, str]:
        """What `{name}` in a row's command stands for."""
        return {"kubeconfig": self.cluster.kubeconfig if self.cluster else str(self.scratch / "no-cluster"),
                "garbage_kubeconfig": str(self._write("garbage.kubeconfig", "clusters: [this is: not: yaml\n")),
                "empty_kubeconfig": str(self._write("empty.kubeconfig", "")),
                "unreachable_kubeconfig": str(self._write("unreachable.kubeconfig", _kubeconfig("https://127.0.0.1:9"))),
                "exec_kubeconfig": str(self._write("exec.kubeconfig", _kubeconfig(
                    self.cluster.url if self.cluster else "https://127.0.0.1:9", user={"exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": MISSING_PLUGIN,
                        "args": ["eks", "get-token", "--cluster-name", "eks-dev"]}}))),
                "missing_file": str(self.scratch / "does-not-exist.yaml")}

    def _write(self, name: str, text: str) -> Path:
        path = self.scratch / name
        path.write_text(text)
        return path

    def command(self, case: Case) -> list[str]:
        values = self.placeholders()
        return [arg.format(**values) if "{" in arg else arg for arg in case.args]

    def state(self) -> dict[str, Any]:
        """Everything a bad input must leave as it was."""
        state: dict[str, Any] = {"files": file_hashes(self.root), "pulumi writes": self.pulumi.writes()}
        if self.cluster is not None:
            state["cluster writes"] = cluster_writes(self.cluster)
        if self.aws is not None:
            state["aws"] = aws_inventory()
        return state

    def run(self, case: Case) -> subprocess.CompletedProcess[str]:
        closed = case.stdin == CLOSED
        return invoke(*self.command(case), env=self.env, stdin=None if closed else case.stdin or "",
                      stdin_closed=closed, cwd=self.root, timeout=CASE_TIMEOUT_S)

    # setups a row may name ------------------------------------------------------------------------
    def edit_stack(self, old: str, new: str, env: str = "dev") -> None:
        """Replace one exact snippet of Pulumi.<env>.yaml (it must be there: a stale row fails loudly)."""
        path = self.root / f"Pulumi.{env}.yaml"
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
        path.write_text(text.replace(old, new))

    def without_aws_credentials(self) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            self.monkeypatch.delenv(name, raising=False)


# --- setups: what a row's world holds before the command (each returns a Setup) -----------------------

def stack_edit(old: str, new: str, env: str = "dev") -> Setup:
    """Pulumi.<env>.yaml with one exact snippet replaced."""
    return lambda world: world.edit_stack(old, new, env)


def file_edit(path: str, old: str, new: str) -> Setup:
    """A project file with one exact snippet replaced."""
    def edit(world: World) -> None:
        target = world.root / path
        text = target.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
        target.write_text(text.replace(old, new))
    return edit


def write_file(path: str, text: str) -> Setup:
    def write(world: World) -> None:
        target = world.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return write


def write_bytes(path: str, data: bytes, append: bool = True) -> Setup:
    """A project file with raw bytes added at its end (or written whole): e.g. a Latin-1 byte in a UTF-8 file."""
    def write(world: World) -> None:
        target = world.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((target.read_bytes() if append and target.exists() else b"") + data)
    return write


def make_directory(path: str) -> Setup:
    return lambda world: (world.root / path).mkdir(parents=True)


def remove_file(path: str) -> Setup:
    return lambda world: (world.root / path).unlink()


def outputs(values: dict[str, Any]) -> Setup:
    """The stack outputs `pulumi stack output --json` serves (what the stack last deployed)."""
    return lambda world: world.pulumi.reset(values)


def no_aws_credentials(world: World) -> None:
    world.without_aws_credentials()


def api_answers(status: int) -> Setup:
    """Every request to the kubesim API server fails with `status` (e.g. 401 for expired credentials)."""
    return lambda world: world.cluster.inject_fault(status=status, times=None)


def aws_answers_not_aws(body: str = "html", status: int = 404) -> Setup:
    """AWS_ENDPOINT_URL (of the task only) at a server answering every call `status` with a non-AWS `body`
    (tests/support/not_aws.py), as a proxy or a wrong endpoint does."""
    def answer(world: World) -> None:
        from tests.support.not_aws import NotAws

        server = NotAws(status, body)
        world.cleanups.append(server.stop)
        world.env.update(AWS_ENDPOINT_URL=server.url, EKS_PLATFORM_CONNECT_BUDGET_S="2")
    return answer


def aws_unreachable(world: World) -> None:
    """AWS_ENDPOINT_URL (of the task only) at a local port that refuses connections, retried for 2 s at most."""
    import socket

    held = socket.socket()  # bound, never listening: refuses, and no other server can take the port meanwhile
    held.bind(("127.0.0.1", 0))
    world.cleanups.append(held.close)
    world.env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{held.getsockname()[1]}", EKS_PLATFORM_CONNECT_BUDGET_S="2")


def path_without(*commands: str) -> Setup:
    """The task's PATH holds the fake pulumi, kubectl and the rest of the PATH's commands except `commands`."""
    def strip(world: World) -> None:
        bin_dir = world.scratch / "path-without"
        bin_dir.mkdir(exist_ok=True)
        for directory in os.environ["PATH"].split(os.pathsep):
            folder = Path(directory)
            if not folder.is_dir():
                continue
            for tool in folder.iterdir():
                link = bin_dir / tool.name
                if tool.name not in commands and not link.exists() and os.access(tool, os.X_OK):
                    link.symlink_to(tool)
        world.env["PATH"] = str(bin_dir)
    return strip


def committed_on_branch(branch: str, path: str, text: str | bytes) -> Setup:
    """A branch whose last commit has `path` with `text` (bytes: exactly those), made beside HEAD: the working
    tree, the index and HEAD stay as they were (later rows of the table see the same project)."""
    def commit(world: World) -> None:
        index = world.scratch / f"index-{branch}"
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}

        def git(*args: str, stdin: str | bytes | None = None) -> str:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            return subprocess.run([*GIT, *args], cwd=world.root, env=env, input=data, check=True,
                                  capture_output=True, timeout=60).stdout.decode().strip()
        git("read-tree", "HEAD")
        blob = git("hash-object", "-w", "--stdin", stdin=text)
        git("update-index", "--cacheinfo", f"100644,{blob},{path}")
        commit_id = git("commit-tree", git("write-tree"), "-p", "HEAD", "-m", f"{path} as row {branch} needs it")
        git("update-ref", f"refs/heads/{branch}", commit_id)
        index.unlink(missing_ok=True)
    return commit


MISSING_PLUGIN = "/nonexistent/aws"  # the exec credential plugin {exec_kubeconfig} names


def _kubeconfig(server: str, user: dict[str, Any] | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                       "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                       "users": [{"name": "u", "user": user or {"token": "t"}}],
                       "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]})


def seal(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No credentials or kubeconfig from this machine reach a case; AWS never falls back to instance metadata."""
    for name in OUTSIDE_ENV:
        monkeypatch.delenv(name, raising=False)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # no ~/.aws, ~/.kube or ~/.pulumi of the machine
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables keep rule names on one line


def make_world(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Any = None,
               aws: str | None = None) -> World:
    """A sealed world on the module's project copy; with `cluster`, KUBECONFIG points at it (a user whose
    kubeconfig works); with `aws` (the moto fixture's URL), boto3 reaches moto with dummy credentials."""
    reset_project(project)
    aws_env = {name: os.environ[name] for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                   "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION") if aws and name in os.environ}
    seal(monkeypatch, tmp_path / "home")
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    pulumi = FakePulumi(tmp_path, outputs={})  # a stack never deployed, unless a row says otherwise
    monkeypatch.setenv("PATH", pulumi.path)
    if cluster is not None:
        monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return World(root=project, pulumi=pulumi, scratch=scratch, monkeypatch=monkeypatch, cluster=cluster, aws=aws)


def check(world: World, case: Case) -> None:
    """The contract for a bad input: the exit code, one line (or one line per config problem) without a traceback
    holding every fragment, and nothing changed in the repo, the fake pulumi's stack, the cluster or AWS."""
    try:
        _check(world, case)
    finally:
        for cleanup in world.cleanups:
            cleanup()
        world.cleanups.clear()


def _check(world: World, case: Case) -> None:
    for setup in case.setup:
        setup(world)
    before = world.state()
    if world.cluster is not None:
        world.cluster.requests.clear()
        before["cluster writes"] = []
    result = world.run(case)
    if case.lines == 1:
        one_line_error(result, case.code, *case.fragments)
    else:
        several_line_error(result, case.code, *case.fragments)
    for text in case.absent:
        assert text not in result.stderr + result.stdout, f"{text!r} should not be in {result.stderr.strip()!r}"
    for fragment in case.out:
        assert fragment in result.stdout, f"{fragment!r} not in stdout:\n{result.stdout}"
    after = world.state()
    assert changed_files(before.pop("files"), after.pop("files")) == [], "the task changed files in the repo"
    for what, was in before.items():
        assert after[what] == was, f"the task changed {what}: {was!r} -> {after[what]!r}"


def several_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> list[str]:
    """A config error listing every problem: `error: FILE: N config problems:` then one line per problem, no
    traceback; each fragment on some line."""
    err = result.stderr.strip()
    assert result.returncode == code, f"exit {result.returncode}, wanted {code}\nstdout: {result.stdout}\nstderr: {err}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    if len(lines) > 1:
        count = len(lines) - 1
        assert f"{count} config problem" in lines[0], f"header does not count the {count} problems:\n{err}"
    for fragment in fragments:
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n{err}"
    return lines
