"""What every task shares: the exit-code contract around each body, --env and config checks, number options,
the cluster a task may act on, and help strings."""
from __future__ import annotations

import functools
import os
import sys

from invoke import task as invoke_task
from invoke.exceptions import Exit


def fail(message: str, code: int = 2) -> Exit:
    """A one-line error for bad input; exit code 2, nothing changed."""
    return Exit(f"error: {message}", code=code)


def _waits_shown():
    """Retry waits (an unreachable API server, AWS throttling) as a spinner on stderr, only when it is a terminal."""
    if not sys.stderr.isatty():
        import contextlib

        return contextlib.nullcontext()
    from infra.ops.io.retry import shown_on

    return shown_on(sys.stderr)


def task(*args, interrupted: str = "interrupted", **kwargs):
    """invoke's @task around a body that keeps the exit-code contract through `run`; `interrupted` is the line a
    Ctrl-C that reaches it prints (an engine that cleans up on a signal raises its own Interrupted instead)."""
    def wrap(body):
        @functools.wraps(body)
        def guarded(*call_args, **call_kwargs):
            return run(lambda: body(*call_args, **call_kwargs), interrupted)
        return invoke_task(guarded, **kwargs)
    return wrap(args[0]) if args and callable(args[0]) else wrap


def run(call, interrupted: str = "interrupted"):
    """call() under the exit-code contract (infra.ops.errors), the one mapping from outcome to exit code and line:
    an engine error (Refused 2, Failed 1, Interrupted 130) or a known outside failure (no credentials, unreachable
    API, 401, bad kubeconfig) becomes one line and its exit code, so a new engine cannot forget the mapping; a reader
    closing the pipe (`| head`) ends the task quietly; on a terminal, retry waits show."""
    from infra.ops.errors import explain

    try:
        with _waits_shown():
            return call()
    except Exit:
        raise
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise Exit(code=0) from None
    except KeyboardInterrupt:
        raise Exit(interrupted, code=130) from None
    except Exception as error:
        mapped = explain(error)
        if mapped is None:
            raise
        raise Exit(line(mapped), code=mapped.exit_code) from None


def line(error) -> str:
    """What a task prints for a contract error: `interrupted: ...` for an Interrupted, `error: ...` otherwise."""
    from infra.ops.errors import Interrupted

    if isinstance(error, Interrupted):
        return f"interrupted: {error}" if str(error) else "interrupted"
    return f"error: {error}"


def help_fills_positionals():
    """A Task class whose positionals, when one is handed `-h`/`--help`, fill the others with "".

    invoke gives `TASK --help` to the first empty positional; with two (`secrets.set SERVICE KEY`) its parser then
    stops at the still-missing second one before the body runs, so help_if_asked never could answer. Built on
    demand: invoke's parser classes are imported only here."""
    from invoke import Task
    from invoke.parser import Argument

    class HelpArgument(Argument):
        others: tuple[Argument, ...] = ()

        def set_value(self, value, cast=True):
            super().set_value(value, cast)
            if value in ("-h", "--help"):
                for other in self.others:
                    if other.value is None:
                        other.set_value("", cast=False)

    class HelpFirstTask(Task):
        def get_arguments(self, ignore_unknown_help=None):
            args = super().get_arguments(ignore_unknown_help)
            positionals = [a for a in args if a.positional]
            helpers = [HelpArgument(names=a.names, kind=a.kind, default=a.default, help=a.help, positional=True,
                                    optional=a.optional, incrementable=a.incrementable, attr_name=a.attr_name)
                       for a in positionals]
            for helper in helpers:
                helper.others = tuple(h for h in helpers if h is not helper)
            swap = dict(zip(map(id, positionals), helpers, strict=True))
            return [swap.get(id(a), a) for a in args]

    return HelpFirstTask


def whole(value: object, flag: str, *, default: int | None, minimum: int, what: str, example: int) -> int | None:
    """A whole-number option, taken as text: with an int default invoke would parse it before the task runs and end
    `--timeout abc` in a traceback. None (not given) is `default`; anything else below `minimum` is exit 2."""
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise fail(f"{flag} takes {what} >= {minimum}, got {str(value)!r}; e.g. {flag} {example}")
    return number


def help_if_asked(value: object, task_name: str) -> None:
    """invoke hands `TASK --help` to a positional argument; show that task's help (exit 0) instead of an error."""
    if value in ("-h", "--help"):
        import subprocess

        subprocess.run([sys.executable, "-m", "invoke", "--help", task_name], check=False)
        raise Exit(code=0)


def require_env(env: str | None, flag: str = "--env") -> str:
    """--env must name a stack file (Pulumi.<env>.yaml); exit 2 listing the valid ones otherwise."""
    from infra.config import known_envs

    valid = known_envs()
    if env not in valid:
        what = f"{flag} is required" if not env else f"{flag} {env!r} is not a stack"
        raise fail(f"{what}; use one of: {', '.join(valid)}")
    return env


def stack_config(env: str | None):
    """Validated StackConfig for --env, or exit 2 listing every config problem."""
    from infra.config import load_stack_config

    return load_stack_config(require_env(env))  # ConfigError is a Refused whose text lists every problem


def confirm(question: str) -> bool:
    """Ask a person at the terminal; anything but yes (or end of input) is no."""
    from rich.prompt import Confirm

    try:
        return Confirm.ask(question, default=False)
    except EOFError:
        return False


def csv_list(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def kube_for(env, kubeconfig):
    """API client from --kubeconfig/KUBECONFIG, else from the stack's EKS cluster, proven to be the stack's cluster
    before any task uses it (exit 2 naming both clusters otherwise); exit 1 when unreachable."""
    from rich.console import Console

    from infra.ops import identity
    from infra.ops.io.kube import connect

    cfg = stack_config(env)
    kube = connect(kubeconfig, cfg.cluster.name, cfg.region)
    with Console(stderr=True).status(f"checking that the cluster is {env}'s ({identity.OBJECT})"):
        identity.prove(kube, cfg, kubeconfig)
    return kube, cfg


KUBE_HELP = "kubeconfig file (default: $KUBECONFIG, else a token for the stack's EKS cluster)"


def printer():
    from rich.console import Console

    console = Console()
    return console, lambda event, message: console.print(f"[bold cyan]{event:>11}[/] {message}")
