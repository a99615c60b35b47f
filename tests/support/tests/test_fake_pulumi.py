"""The fake `pulumi`'s call log is read while another process appends to it: readers see whole lines only."""
from __future__ import annotations

import json
import threading

import yaml

from tests.support import fake_pulumi


def test_calls_never_read_a_line_still_being_written(tmp_path):
    log = tmp_path / "pulumi-calls.jsonl"
    first = {"argv": ["up"], "stack": "dev", "file": {"k": "v"}, "failed": False}
    second = json.dumps({"argv": ["stack", "output"], "stack": "dev", "file": {}, "failed": False}) + "\n"
    torn = (json.dumps(first) + "\n").encode() + second.encode()[:7]
    log.write_bytes(torn)  # what a reader sees while the writer's second line is half on disk
    assert fake_pulumi.calls(log) == [first]
    log.write_bytes((json.dumps(first) + "\n" + second).encode())
    assert [c["argv"] for c in fake_pulumi.calls(log)] == [["up"], ["stack", "output"]]


def test_each_call_is_appended_as_one_whole_line(tmp_path, monkeypatch):
    fake = fake_pulumi.install(tmp_path, monkeypatch)
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  eks-platform:big: " + "x" * 20000 + "\n")
    monkeypatch.chdir(tmp_path)
    writes = []
    real_write = fake_pulumi.os.write
    monkeypatch.setattr(fake_pulumi.os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    for argv in (["up", "--stack", "dev"], ["stack", "output", "--stack", "dev"]):
        assert fake_pulumi.main(argv, fake.home) == 0
    assert [json.loads(w)["argv"][0] for w in writes] == ["up", "stack"] and all(w.endswith(b"\n") for w in writes)
    assert [c["argv"][0] for c in fake_pulumi.calls(fake.log)] == ["up", "stack"]


def test_follower_plays_an_up_logged_during_a_sync_before_it_stops(tmp_path, monkeypatch):
    log = tmp_path / "pulumi-calls.jsonl"
    config = yaml.safe_load((fake_pulumi.ROOT / "Pulumi.dev.yaml").read_text())["config"]
    up = {"argv": ["up", "--yes"], "stack": "dev", "file": config, "failed": False}
    fake_pulumi._append(log, up)
    syncing, release, synced = threading.Event(), threading.Event(), []

    def sync(cfg):
        syncing.set()
        release.wait(60)
        synced.append(cfg.cluster.name)
    monkeypatch.setattr(fake_pulumi, "sync_eks", sync)
    follower = fake_pulumi.EksFollower(log)
    with follower:
        assert syncing.wait(60)
        fake_pulumi._append(log, up)  # the engine's next up, logged while the follower plays the first
        follower.stop.set()  # the test body ends before the follower reads the log again
        release.set()
    assert synced == ["eks-dev", "eks-dev"]
