"""Settings from the environment, the only place a service reads them (the manifests set them)."""
from __future__ import annotations

import os

# Kubernetes' default terminationGracePeriodSeconds with no preStop: what a pod gets when nothing is set.
DEFAULT_GRACE_SECONDS = 30.0


class SettingError(ValueError):
    """An environment variable is set to something unusable; the message names it."""


def number(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r} is below {minimum:g}")
    return value


def port(default: int) -> int:
    """PORT: where the service listens (HTTP, or health and metrics for workers and jobs)."""
    value = int(number("PORT", default, minimum=1))
    if value > 65535:
        raise SettingError(f"PORT={value} is not a TCP port")
    return value


def grace_seconds() -> float:
    """GRACE_SECONDS: time from SIGTERM to SIGKILL (terminationGracePeriodSeconds minus the preStop sleep)."""
    return number("GRACE_SECONDS", DEFAULT_GRACE_SECONDS)


def secret(name: str) -> str:
    """NAME, else the content of the file NAME_FILE names (a mounted Secret: re-read on every call, so a rotated
    value is used at the next connect)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        raise SettingError(f"neither {name} nor {name}_FILE is set")
    try:
        value = open(path).read().strip()  # noqa: SIM115 - small file, read whole
    except OSError as error:
        raise SettingError(f"{name}_FILE={path}: {error.strerror}") from None
    if not value:
        raise SettingError(f"{name}_FILE={path} is empty")
    return value


def database(name: str = "DATABASE_URL") -> str:
    """A libpq connection string from the secret `name`: a URL or conninfo as is, or the JSON login the platform's
    Secrets Manager secret holds (host, port, dbname, username, password, tls; what the rotation Lambda keeps), so
    a rotated password is used at the next connect."""
    import json

    from psycopg.conninfo import make_conninfo

    value = secret(name)
    if not value.startswith("{"):
        return value
    try:
        login = json.loads(value)
        missing = [key for key in ("host", "dbname", "username", "password") if not login.get(key)]
    except (ValueError, AttributeError):
        raise SettingError(f"{name} is neither a URL nor a JSON database login") from None
    if missing:
        raise SettingError(f"{name}'s database login lacks {', '.join(missing)}")
    return make_conninfo(host=login["host"], port=str(login.get("port") or 5432), dbname=login["dbname"],
                         user=login["username"], password=login["password"],
                         sslmode="verify-full" if login.get("tls") == "verify-full" else "require")
