"""Terminal output is plain text: Slack markup goes to the webhook only, and no message is read as rich markup."""
from __future__ import annotations

import io

from rich.console import Console

from infra.lint.findings import Finding, table
from infra.ops.deploy import notify
from infra.ops.deploy.history import DeployRecord
from infra.ops.deploy.report import Reporter
from infra.ops.deploy.rollout import Reason

FAILED = DeployRecord(service="api", env="dev", action="deploy", tag="abc", image="r/api:abc", who="ci", started="t0",
                      finished="t1", ok=False, verdict=Reason.ImagePullBackOff, rolled_back=True,
                      rollback_verdict="Complete")


def test_headline_for_terminals_and_errors_is_plain_text():
    line = notify.headline(FAILED)
    assert line == "deploy api:abc to dev failed: ImagePullBackOff; rolled back (Complete)"
    assert ":" + "x:" not in line and "*" not in line


def test_only_the_webhook_and_step_summary_get_markup():
    body = notify.payload(FAILED)
    assert body["text"].startswith(":x: deploy api:abc to dev failed")
    assert any("*service* api" == f["text"] for f in body["blocks"][1]["fields"])
    assert notify.step_summary([FAILED]).startswith("### :x: deploy api:abc")


def test_rich_reporter_prints_shortcodes_as_written():
    stream = io.StringIO()
    reporter = Reporter(mode="rich", stream=stream)
    reporter.event("warning", "webhook said :x: for image r/api:abc:latest")
    assert "webhook said :x: for image r/api:abc:latest" in stream.getvalue()


def test_findings_table_shows_messages_verbatim():
    out = io.StringIO()
    finding = Finding("f.yaml", "Deployment/a/b", "rules/security", "keeps caps :x: [bold]b[/bold]",
                      "set capabilities.drop: [ALL]")
    Console(file=out, width=300).print(table([finding]))
    assert "keeps caps :x: [bold]b[/bold]" in out.getvalue() and "capabilities.drop: [ALL]" in out.getvalue()
