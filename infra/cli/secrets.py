"""`invoke secrets.*`: service secrets in Secrets Manager; values only ever from stdin."""
from __future__ import annotations

import json

from invoke import Collection

from infra.cli.common import console, fail, help_fills_positionals, help_if_asked, stack_config, task


@task(name="set", klass=help_fills_positionals(), positional=["service", "key"], help={
    "env": "stack: dev or prod", "service": "service owning the secret, e.g. worker",
    "key": "secret key under the service, e.g. queue-token",
    "multiline": "store a value that spans lines as is (a PEM key); without it such a value is refused"})
def secrets_set(c, service, key=None, env=None, multiline=False):
    """Set one secret's value, read from stdin (piped, or typed without echo); never from arguments.

    Example: pass show broker/token | invoke secrets.set --env prod worker queue-token
    """
    from infra.ops import identity, secrets

    help_if_asked(service, "secrets.set")
    help_if_asked(key, "secrets.set")
    if service.startswith("-") or not key:
        raise fail("usage: invoke secrets.set --env ENV SERVICE KEY (value on stdin); options: "
                   "`invoke --help secrets.set`")
    cfg = stack_config(env)
    secrets.lookup(cfg, service, key)  # a wrong name and a bad value are refused before AWS is asked anything
    value = secrets.read_value(multiline=multiline)
    identity.prove_secrets(cfg)
    version = secrets.set_value(secrets.SetSecret(cfg, service, key, value))
    print(f"set {service}/{key} in {env} (version {version}); pods get it at the next ExternalSecret refresh "
          f"({cfg.secrets.refresh_interval})")


@task(name="list", positional=[], help={"env": "stack: dev or prod", "json": "print JSON instead of a table"})
def secrets_list(c, env=None, json_=False):
    """List a stack's secrets: name, kind, rotation, last rotation, which service reads it. Never values."""
    from infra.ops import identity, secrets

    cfg = stack_config(env)
    identity.prove_secrets(cfg)
    rows = secrets.list_rows(cfg)
    if json_:
        print(json.dumps([{**row.__dict__, "last_rotated": str(row.last_rotated or ""),
                           "last_changed": str(row.last_changed or "")} for row in rows], indent=2))
        return

    console(width=180).print(secrets.table(rows, env))



ns = Collection("secrets", secrets_set, secrets_list)
