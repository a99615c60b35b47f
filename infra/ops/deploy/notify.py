"""Tell people how a deploy ended: a Slack-compatible webhook and the GitHub Actions step summary.

Both are best effort: a broken webhook must never turn a good deploy into a failed one, so errors come
back as a warning line. The webhook URL carries a token, so it is never printed - only its host.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from infra.ops.deploy.history import DeployRecord
from infra.ops.errors import Failed

WEBHOOK_ENV = "DEPLOY_WEBHOOK_URL"
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


class _Retryable(Failed):
    """A webhook answer worth another try (429, 5xx, no connection); never leaves post_webhook."""


def headline(record: DeployRecord) -> str:
    """The outcome in plain text, for terminals, logs and errors (no Slack markup there)."""
    outcome = "succeeded" if record.ok else f"failed: {record.verdict}"
    tail = f"; rolled back ({record.rollback_verdict})" if record.rolled_back else ""
    return f"{record.action} {record.service}:{record.tag} to {record.env} {outcome}{tail}"


def marked_headline(record: DeployRecord) -> str:
    """The headline with an emoji shortcode, which Slack and GitHub Markdown render and a terminal would not."""
    return f"{':white_check_mark:' if record.ok else ':x:'} {headline(record)}"


def payload(record: DeployRecord) -> dict:
    """Slack-compatible body: `text` for plain webhooks, `blocks` for a richer Slack message."""
    facts = [f"*service* {record.service}", f"*env* {record.env}", f"*image* `{record.image}`",
             f"*by* {record.who}", f"*started* {record.started}", f"*finished* {record.finished}"]
    text = marked_headline(record) + (f"\n{record.message}" if record.message else "")
    return {"text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                       {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]}],
            "deploy": {k: v for k, v in record.__dict__.items()}}


def post_webhook(record: DeployRecord, url: str | None = None, budget_s: float = 10.0) -> str | None:
    """POST the payload to $DEPLOY_WEBHOOK_URL; returns a warning line on failure, None when sent or unset."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return None
    body = json.dumps(payload(record)).encode()

    def send() -> None:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - URL is the operator's own setting
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}") from None
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise _Retryable(str(getattr(exc, "reason", exc))) from None

    try:
        for attempt in Retrying(retry=retry_if_exception_type(_Retryable), stop=stop_after_delay(budget_s),
                                wait=wait_exponential_jitter(multiplier=0.2, max=2, jitter=0.1), reraise=True):
            with attempt:
                send()
    except (_Retryable, urllib.error.HTTPError, ValueError) as exc:
        detail = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else str(exc)
        return f"warning: deploy webhook to {urlsplit(url).hostname or '?'} failed ({detail}); deploy result stands"
    return None


def step_summary(records: list[DeployRecord]) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: a headline per record and a table of facts."""
    lines = []
    for record in records:
        lines += [f"### {marked_headline(record)}", "", "| | |", "| --- | --- |"]
        for key in ("service", "env", "tag", "image", "who", "started", "finished", "verdict", "rollback_verdict",
                    "message"):
            value = getattr(record, key)
            if value:
                lines.append(f"| {key.replace('_', ' ')} | {str(value).replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def write_step_summary(records: list[DeployRecord], path: str | None = None) -> str | None:
    """Append the summary to $GITHUB_STEP_SUMMARY when running in GitHub Actions; a warning line when it cannot be
    written (a directory, no permission, a full disk), None when written or unset."""
    path = path or os.environ.get(SUMMARY_ENV)
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(step_summary(records) + "\n")
    except OSError as exc:
        return f"warning: step summary not written to {SUMMARY_ENV}={path} ({exc.strerror or exc}); deploy result stands"
    return None
