"""What every task shares: the exit-code contract around each body, --env and config checks, number options,
the cluster a task may act on, and help strings."""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys

from invoke import task as invoke_task
from invoke.exceptions import Exit


def fail(message: str, code: int = 2) -> Exit:
    """A one-line error for bad input; exit code 2, nothing changed."""
    return Exit(f"error: {message}", code=code)


def _waits_shown():
    """Retry waits (an unreachable API server, AWS throttling) as a spinner on stderr, only when it is a terminal."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from infra.ops.io.retry import shown_on

    return shown_on(sys.stderr)


def task(*args, interrupted: str = "interrupted", **kwargs):
    """invoke's @task around a body that keeps the exit-code contract through `run`; `interrupted` is the line a
    Ctrl-C that reaches it prints (an engine that cleans up on a signal raises its own Interrupted instead). An
    option given an empty value is refused before the body runs (see `refuse_empty`)."""
    def wrap(body):
        options = _value_options(body, kwargs.get("positional"))

        @functools.wraps(body)
        def guarded(*call_args, **call_kwargs):
            def checked():
                refuse_empty(call_kwargs, options)
                return body(*call_args, **call_kwargs)
            return run(checked, interrupted)
        return invoke_task(guarded, **kwargs)
    return wrap(args[0]) if args and callable(args[0]) else wrap


# Options whose own check already says what an empty value means (--env names the stacks, --tag says to omit it to
# build, --kind/--pool/--to/--area list the choices): the generic refusal leaves them to it.
CHECKS_ITS_OWN_EMPTY = frozenset({"env", "tag", "kind", "pool", "to", "area"})


def _value_options(body, positional) -> tuple[str, ...]:
    """The body's options that take a value: keyword parameters that are not positional and not on/off flags."""
    import inspect

    parameters = list(inspect.signature(body).parameters.values())[1:]  # after the invoke Context
    if positional is None:  # invoke's default: parameters without a default are positional
        positional = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    return tuple(p.name for p in parameters if p.name not in positional and not isinstance(p.default, bool))


def refuse_empty(given: dict, options: tuple[str, ...]) -> None:
    """`--diff ''` is not "no --diff": an option given an empty value is exit 2 naming it, so a shell variable
    that expanded to nothing never silently changes what a task does."""
    for name in options:
        if given.get(name) == "" and name not in CHECKS_ITS_OWN_EMPTY:
            bare = name.rstrip("_").replace("_", "-")
            flag = f"-{bare}" if len(bare) == 1 else f"--{bare}"  # invoke makes a one-letter name a short flag
            raise fail(f"{flag} is empty; give it a value or leave {flag} out")


def run(call, interrupted: str = "interrupted"):
    """call() under the exit-code contract (infra.ops.errors), the one mapping from outcome to exit code and line:
    an engine error (Refused 2, Failed 1, Interrupted 130) or a known outside failure (no credentials, unreachable
    API, 401, bad kubeconfig) becomes one line and its exit code, so a new engine cannot forget the mapping; a reader
    closing the pipe (`| head`) ends the task quietly; on a terminal, retry waits show."""
    from infra.ops.errors import explain

    try:
        with _waits_shown(), _guarded_output():
            return call()
    except Exit:
        raise
    except BrokenPipeError:
        _stdout_to_devnull()
        raise Exit(code=0) from None
    except KeyboardInterrupt:
        raise Exit(interrupted, code=130) from None
    except Exception as error:
        mapped = explain(error)
        if mapped is None:
            raise
        raise Exit(line(mapped), code=mapped.exit_code) from None


class _Output:
    """sys.stdout while a task body runs: a write the disk or device refuses (`> /dev/full`) is one line, exit 1."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, write, *args):
        from infra.ops.errors import Failed

        try:
            return write(*args)
        except BrokenPipeError:
            raise
        except OSError as error:
            _stdout_to_devnull()
            raise Failed(f"cannot write the output (stdout): {error.strerror or error}; free space or send it "
                         f"elsewhere") from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _guarded_output():
    """stdout through _Output, flushed before the task ends: a failing write shows inside the contract, not as
    "Exception ignored" when the interpreter flushes at exit."""
    original = sys.stdout
    if original is None:
        yield
        return
    sys.stdout = _Output(original)
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout = original


def _stdout_to_devnull() -> None:
    """Whatever is still buffered for stdout goes nowhere: no second error when the interpreter flushes at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file descriptor (captured, closed)
        pass


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


DAY_S = 86_400  # the bound of every timeout: a rollout or rotation still waiting after a day is not waiting for time
_DIGITS = re.compile(r"[0-9]{1,18}")


def whole(value: object, flag: str, *, default: int | None, minimum: int, what: str, example: int,
          maximum: int = DAY_S) -> int | None:
    """A whole-number option, taken as text: with an int default invoke would parse it before the task runs and end
    `--timeout abc` in a traceback. None (not given) is `default`; anything but ASCII digits (int() would take
    '1_000', '+5' and Arabic-Indic '١') or a number outside minimum..maximum is exit 2 naming the range."""
    if value is None:
        return default
    text = str(value).strip()
    number = int(text) if _DIGITS.fullmatch(text) else None
    if number is None or not minimum <= number <= maximum:
        raise fail(f"{flag} takes {what} from {minimum} to {maximum}, got {str(value)!r}; e.g. {flag} {example}")
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


def console(**options):
    """A rich Console for a task's output whose broken pipe (`| head -1`) reaches `run` as the BrokenPipeError it is,
    ending the task quietly with exit 0; rich's own default exits 1 with no message. Into a pipe or a file a table
    is 160 columns wide unless told otherwise (COLUMNS; rich would squeeze it into 80)."""
    from rich.console import Console

    if "file" not in options and "stderr" not in options and not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        options.setdefault("width", 160)

    class PipedConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipedConsole(**options)


def printer():
    shown = console()
    return shown, lambda event, message: shown.print(f"[bold cyan]{event:>11}[/] {message}")
