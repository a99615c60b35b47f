"""The images: hadolint-clean Dockerfiles (`invoke lint` check `dockerfiles`), and `invoke deploy` from source
building the shared base first, then the service FROM it (fake docker, ECR on moto, the cluster on kubesim)."""
from __future__ import annotations

import json
import sys

from infra.identity import BASE_REPOSITORY, repository_name
from infra.lint import runner
from infra.ops.deploy import pipeline as deploy
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.deploy_world import push

BASE = repository_name("dev", BASE_REPOSITORY)  # the stack's base repository, beside eks-platform/dev/<service>


def test_service_dockerfiles_are_hadolint_clean_and_problems_are_findings(tmp_path):
    assert runner.dockerfiles(REPO_ROOT / "services") == []
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Dockerfile").write_text("FROM python\nUSER root\nRUN pip install flask\n")
    found = {f.rule for f in runner.dockerfiles(tmp_path)}
    assert {"dockerfiles/DL3006", "dockerfiles/DL3013", "dockerfiles/DL3042", "dockerfiles/DL3002"} <= found
    done = invoke("lint", "--only", "dockerfiles")
    assert done.returncode == 0 and "checks dockerfiles" in " ".join(done.stdout.split()), done.stdout + done.stderr


def test_deploy_from_source_builds_the_base_first_then_the_service_from_it(deploy_env, fake_docker, monkeypatch):
    deploy_env.ecr.create_repository(repositoryName=BASE)
    monkeypatch.setattr(deploy, "git_tag", lambda repo, allow_dirty=False: "0a1b2c3d")
    deploy_env.cluster.script_image(deploy_env.image("0a1b2c3d"), "Ready")
    engine = deploy_env.engine(None)  # build this commit: services/api
    record = engine.run()
    assert record.ok and record.image == deploy_env.image("0a1b2c3d")
    login, base, api = [json.loads(line)["argv"] for line in fake_docker.read_text().splitlines()]
    base_image = deploy_env.uri.replace("/api", f"/{BASE_REPOSITORY}") + ":0a1b2c3d"
    assert login[0] == "login"
    assert base[:2] == ["buildx", "build"] and base[-1] == str(REPO_ROOT / "services/base")
    assert base[base.index("--tag") + 1] == base_image and "--push" in base
    assert api[-1] == str(REPO_ROOT / "services/api") and api[api.index("--tag") + 1] == deploy_env.image("0a1b2c3d")
    assert api[api.index("--build-arg") + 1] == f"BASE_IMAGE={base_image}"
    assert deploy_env.running_images() == {deploy_env.image("0a1b2c3d")}


def test_base_already_in_ecr_is_not_rebuilt(deploy_env, fake_docker, monkeypatch):
    deploy_env.ecr.create_repository(repositoryName=BASE)
    push(deploy_env.ecr, BASE, "4e5f6a7b")
    monkeypatch.setattr(deploy, "git_tag", lambda repo, allow_dirty=False: "4e5f6a7b")
    engine = deploy_env.engine(None, service="worker")
    engine.image()
    builds = [json.loads(line)["argv"] for line in fake_docker.read_text().splitlines()][1:]
    assert len(builds) == 1 and builds[0][-1] == str(REPO_ROOT / "services/worker")
    assert any(arg.startswith("BASE_IMAGE=") and arg.endswith(f"/{BASE_REPOSITORY}:4e5f6a7b") for arg in builds[0])


def test_service_check_runs_the_container_where_a_docker_engine_answers(tmp_path, monkeypatch):
    """With an engine (a fake `docker` that answers `info`), the check builds the base, then the service FROM it,
    and runs the image read-only as 10001 on the host network (where the check's relays listen)."""
    import os
    import stat

    from infra.ops.service import contract
    from infra.ops.service.launch import ContainerLauncher, launcher

    log = tmp_path / "docker.log"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) "
                    f"+ '\\n')\nif sys.argv[1] == 'info':\n    print('27.3.1')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    chosen = launcher(contract.load(REPO_ROOT, "worker"), tmp_path)
    assert isinstance(chosen, ContainerLauncher)
    run = chosen.start({"PORT": "18081", "LOG_CONFIG": str(tmp_path / "logging" / "logging.yaml")})
    assert run.wait(30) == 0
    info, base, service, started = [json.loads(line) for line in log.read_text().splitlines()]
    assert info[0] == "info" and base[-1] == str(REPO_ROOT / "services/base")
    assert service[service.index("--build-arg") + 1] == f"BASE_IMAGE={base[base.index('--tag') + 1]}"
    assert service[-1] == str(REPO_ROOT / "services/worker")
    assert started[0] == "run" and started[-1] == "worker:contract-check"
    for flag in ("--read-only", "--cap-drop", "--network"):
        assert flag in started
    assert started[started.index("--user") + 1] == "10001:10001" and started[started.index("--tmpfs") + 1] == "/tmp"
    assert "PORT=18081" in started
    run.kill()
    assert json.loads(log.read_text().splitlines()[-1])[:2] == ["rm", "--force"]  # stopped by its name
