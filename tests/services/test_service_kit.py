"""service_kit in process: one JSON object per log line (exceptions included), levels that follow the config file."""
from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest

from tests.support import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "services" / "base"))
from service_kit import logs, settings  # noqa: E402
from service_kit.lifecycle import Shutdown  # noqa: E402


def test_exception_is_one_json_line_with_service_level_message_and_trace():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("api"))
    logger = logging.getLogger("test.kit")
    logger.addHandler(handler)
    try:
        with logs.trace("trace-123"):
            try:
                raise ValueError("bad\nthing")
            except ValueError:
                logger.error("it broke: %s", "twice\nover", exc_info=True)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["service"] == "api" and entry["level"] == "ERROR" and entry["trace_id"] == "trace-123"
    assert entry["message"] == "it broke: twice\nover"
    assert entry["error"]["type"] == "ValueError" and "Traceback" in entry["error"]["stack"][0]


def test_levels_follow_the_file_and_a_bad_file_keeps_them(tmp_path):
    config = tmp_path / "logging.yaml"
    config.write_text("version: 1\nroot:\n  level: WARNING\nloggers:\n  chatty:\n    level: ERROR\n")
    watcher = logs.LevelWatcher(str(config), every_s=60)
    try:
        assert watcher.apply()
        assert logging.getLogger().level == logging.WARNING and logging.getLogger("chatty").level == logging.ERROR
        assert not watcher.apply()  # unchanged content: nothing re-applied
        config.write_text("version: 1\nroot:\n  level: DEBUG\n")
        assert watcher.apply() and logging.getLogger().level == logging.DEBUG
        config.write_text("version: 1\nroot:\n  level: LOUD\n")
        assert not watcher.apply() and logging.getLogger().level == logging.DEBUG
        config.unlink()
        assert not watcher.apply() and logging.getLogger().level == logging.DEBUG
    finally:
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("chatty").setLevel(logging.NOTSET)


def test_settings_secrets_and_the_shutdown_deadline(monkeypatch, tmp_path):
    monkeypatch.setenv("PORT", "9090")
    monkeypatch.setenv("GRACE_SECONDS", "35")
    assert settings.port(8080) == 9090 and settings.grace_seconds() == 35
    monkeypatch.setenv("PORT", "http")
    with pytest.raises(settings.SettingError, match="PORT='http' is not a number"):
        settings.port(8080)
    secret = tmp_path / "database"
    secret.write_text("postgresql://u@db/x\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))
    assert settings.secret("DATABASE_URL") == "postgresql://u@db/x"
    secret.write_text("postgresql://u@db/rotated")  # a rotated Secret: the next read (connect) sees it
    assert settings.secret("DATABASE_URL") == "postgresql://u@db/rotated"
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(settings.SettingError, match="DATABASE_URL_FILE=.*missing: No such file"):
        settings.secret("DATABASE_URL")
    shutdown = Shutdown(grace_s=10, margin_s=1)
    assert shutdown.remaining() == float("inf") and not shutdown.expired
    before = time.monotonic()
    shutdown.request()
    after = time.monotonic()
    assert before + 9 <= shutdown.deadline <= after + 9 and not shutdown.forced.is_set()  # grace less the margin
    shutdown.request()
    assert shutdown.forced.is_set() and shutdown.expired  # a second signal means now


def test_a_database_secret_is_a_url_or_the_platform_s_json_login(monkeypatch, tmp_path):
    """The mounted `database` key holds what Secrets Manager holds (the rotation Lambda's JSON login): the service
    turns it into a libpq connection string, TLS on, and reads it again at each connect (a rotated password)."""
    from psycopg.conninfo import conninfo_to_dict

    secret = tmp_path / "database"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))
    secret.write_text("postgresql://u@db/x")
    assert settings.database() == "postgresql://u@db/x"
    login = {"engine": "postgres", "host": "api-db.dev.internal", "port": 5432, "dbname": "api",
             "username": "worker", "password": "p w'd"}
    secret.write_text(json.dumps(login))
    assert conninfo_to_dict(settings.database()) == {"host": "api-db.dev.internal", "port": "5432", "dbname": "api",
                                                     "user": "worker", "password": "p w'd", "sslmode": "require"}
    secret.write_text(json.dumps({**login, "password": "rotated", "tls": "verify-full"}))
    assert conninfo_to_dict(settings.database())["password"] == "rotated"
    assert conninfo_to_dict(settings.database())["sslmode"] == "verify-full"
    secret.write_text(json.dumps({**login, "password": ""}))
    with pytest.raises(settings.SettingError, match="lacks password"):
        settings.database()
    secret.write_text("{not json")
    with pytest.raises(settings.SettingError, match="neither a URL nor a JSON database login"):
        settings.database()
