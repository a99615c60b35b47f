"""invoke's own command-line parsing under the exit-code contract: bad arguments are one line and exit 2.

invoke 3.0.3 parses the task part of the command line in `Program.parse_tasks` and prints help and task lists in
`Program.parse_cleanup`, both after tasks.py is imported; its `Program.run` prints any ParseError (unknown task or
flag, a missing or extra positional) as invoke words it, echoing the token it did not understand, and exits 1. The
contract says bad input is one line naming the fix and exit 2, and a stray argument to secrets.set may be the secret
itself. Both methods are the override points invoke documents for a Program, so `install` wraps them on the class:
a ParseError becomes our one line (Exit, code 2), never echoing a token for a task in NEVER_ECHO, and help or a task
list meeting a closed pipe (`invoke deploy --help | head -1`) ends with exit 0. tests/cli/test_parse_errors.py runs
the installed invoke through it, so an invoke upgrade that moves these points fails there, loudly.
"""
from __future__ import annotations

import ast
import difflib
import os
import re
import sys
from typing import Any

# Tasks whose stray arguments may be a secret value typed where it does not belong: never shown in an error.
NEVER_ECHO = frozenset({"secrets.set"})
_WRAPPED = "_eks_platform_contract"

_UNKNOWN = re.compile(r"^No idea what (?P<token>.+) is!$", re.S)
_MISSING = re.compile(r"did not receive required positional arguments")
_NEEDS_VALUE = re.compile(r"^Flag <Argument: (?P<name>[^ >]+).*needed value", re.S)
_NO_VALUE = re.compile(r"^Flag <Argument: (?P<name>[^ >]+).*doesn't take any value", re.S)


def install(program_class: Any = None) -> None:
    """Wrap Program.parse_tasks and Program.parse_cleanup (once) so parsing keeps the exit-code contract."""
    from invoke.exceptions import Exit, ParseError
    from invoke.program import Program

    cls: type[Any] = program_class or Program  # Any: its methods are replaced below, which mypy forbids on Program
    if getattr(cls.parse_tasks, _WRAPPED, False):
        return
    parse_tasks, parse_cleanup = cls.parse_tasks, cls.parse_cleanup

    def contract_parse_tasks(self: Any) -> None:
        try:
            parse_tasks(self)
        except ParseError as error:
            raise Exit(line(error, self), code=2) from None

    def contract_parse_cleanup(self: Any) -> None:
        try:
            try:
                parse_cleanup(self)
            finally:  # help and lists print here: a reader gone mid-write shows now, not at interpreter exit
                if sys.stdout is not None:
                    sys.stdout.flush()
        except ParseError as error:
            raise Exit(line(error, self), code=2) from None
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise Exit(code=0) from None

    for wrapper in (contract_parse_tasks, contract_parse_cleanup):
        setattr(wrapper, _WRAPPED, True)
    cls.parse_tasks, cls.parse_cleanup = contract_parse_tasks, contract_parse_cleanup


def line(error: Exception, program: Any = None) -> str:
    """The one line for invoke's ParseError `error`; `program` (the running Program) gives the command's tokens and
    the task names for a suggestion."""
    context = getattr(error, "context", None)
    task = getattr(context, "name", None) or None
    text = str(error)
    tokens = list(getattr(getattr(program, "core", None), "unparsed", None) or ())
    quiet = task in NEVER_ECHO or any(token in NEVER_ECHO for token in tokens)
    see = f"see `invoke {task} --help`" if task else "`invoke --list` shows the tasks"
    if _MISSING.search(text) and context is not None:
        missing = [arg.name.upper() for arg in context.missing_positional_args]
        return f"error: {task} needs {' and '.join(missing)}; usage: {usage(context)}"
    for pattern, words in ((_NEEDS_VALUE, "needs a value"), (_NO_VALUE, "takes no value")):
        found = pattern.search(text)
        if found:
            return f"error: {flag_of(context, found['name'])} {words}; {see}"
    unknown = _UNKNOWN.match(text)
    if quiet:  # the token may be the secret: say what is allowed, show nothing that was typed
        name = task or next(token for token in tokens if token in NEVER_ECHO)
        return (f"error: {name} got an argument it does not take (not shown): values are read from stdin only; "
                f"usage: printf %s \"$VALUE\" | invoke {name} --env ENV SERVICE KEY")
    if unknown is None:
        return f"error: {text}; {see}"
    token = _token(unknown["token"])
    eaten = [arg.value for arg in getattr(context, "positional_args", ()) if str(arg.value or "").startswith("-")]
    if eaten and eaten[0] not in ("-h", "--help"):  # an unknown option filled a positional, so a later token was extra
        token = eaten[0]
    if task is None or context is None:  # a task name comes from a parser context: both or neither
        if token.startswith("-"):
            return f"error: unknown option {token}; see `invoke --help`"
        names = sorted(getattr(getattr(program, "parser", None), "contexts", None) or ())
        return f"error: no task named {token!r}{_suggest(token, names)}; `invoke --list` shows the tasks"
    if token.startswith("-"):
        flags = [name for name in context.flags if name.startswith("--")]
        return f"error: {task} has no option {token.split('=')[0]}{_suggest(token, flags)}; {see}"
    return f"error: {task} takes no further argument {token!r}; usage: {usage(context)}"


def usage(context: Any) -> str:
    positionals = " ".join(arg.name.upper() for arg in context.positional_args)
    return " ".join(part for part in ("invoke", context.name, positionals, "[--options]") if part)


def flag_of(context: Any, name: str) -> str:
    """The long flag invoke shows for the argument named `name` (e.g. readiness-grace -> --readiness-grace)."""
    flags = getattr(context, "flags", None) or {}
    found = [flag for flag, arg in flags.items() if getattr(arg, "name", None) == name and flag.startswith("--")]
    return found[0] if found else f"--{name}"


def _token(shown: str) -> str:
    """invoke shows the token as repr(); read it back (a quote inside changes repr's quoting)."""
    try:
        value = ast.literal_eval(shown)
    except (ValueError, SyntaxError):
        return shown
    return value if isinstance(value, str) else shown


def _suggest(token: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(token, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
