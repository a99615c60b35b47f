"""invoke's own parsing under the exit-code contract (infra/cli/parsing.py): a command line invoke cannot parse is
one line and exit 2 for every task; help and task lists into a reader that is already gone end with exit 0; and
empty option values are refused in every task. Pinned against the installed invoke: an upgrade that moves
Program.parse_tasks/parse_cleanup, or stops raising ParseError there, fails here."""
from __future__ import annotations

import inspect
import os

import pytest
from invoke import Context
from invoke.exceptions import Exit
from invoke.program import Program

import tasks
from infra.cli import common, parsing
from tests.support.cli import invoke, one_line_error

TASKS = sorted(tasks.ns.task_names)  # dotted names, as a user types them


@pytest.mark.parametrize("name", TASKS)
def test_an_unknown_option_is_one_line_and_exit_2(name):
    """Two more tokens than any task's positionals: invoke fills positionals with what comes, even `--no-such`."""
    words = (("values are read from stdin only",) if name in parsing.NEVER_ECHO
             else (f"{name} has no option --no-such-option", f"`invoke {name} --help`"))
    one_line_error(invoke(name, "--no-such-option", "x", "y", stdin=""), 2, *words)


def test_in_process_the_installed_invoke_maps_parse_errors_to_exit_2(capsys):
    """The mechanism itself, on invoke's own Program: importing tasks.py wrapped it, and a ParseError exits 2."""
    assert getattr(Program.parse_tasks, "_eks_platform_contract", False), "tasks.py no longer wraps parse_tasks"
    assert getattr(Program.parse_cleanup, "_eks_platform_contract", False)
    program = Program(namespace=tasks.ns, name="invoke", binary="invoke")
    with pytest.raises(SystemExit) as ended:
        program.run(["invoke", "history", "api", "extra"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == ("error: history takes no further argument 'extra'; usage: invoke history "
                                       "SERVICE [--options]\n")


def test_a_value_typed_where_secrets_set_takes_none_is_never_shown():
    """Every way a value can land in argv: the line names the rule, neither stream holds the value."""
    value = "hunter2-value"
    for args in ((value,), (f"--value={value}",), ("--value", value), (f"-{value}",), ("--env", "dev", value)):
        result = invoke("secrets.set", "--env", "dev", "worker", "queue-token", *args, stdin="")
        one_line_error(result, 2, "values are read from stdin only")
        assert value not in result.stdout + result.stderr, args


@pytest.mark.parametrize("argv, said", [
    (["deploy"], "error: deploy needs SERVICE; usage: invoke deploy SERVICE [--options]"),
    (["deploy", "api", "--env"], "error: --env needs a value; see `invoke deploy --help`"),
    (["deploy", "api", "--tiemout", "3"],
     "error: deploy has no option --tiemout (did you mean --timeout?); see `invoke deploy --help`"),
    (["deploy", "api", "x"], "error: deploy takes no further argument 'x'; usage: invoke deploy SERVICE [--options]"),
    (["deploy", "--tag=v1", "api", "x"],
     "error: deploy takes no further argument 'x'; usage: invoke deploy SERVICE [--options]"),
    (["deploy", "--dry", "x"], "error: deploy has no option --dry (did you mean --dry-run?); see `invoke deploy --help`"),
    (["nosuch"], "error: no task named 'nosuch'; `invoke --list` shows the tasks"),
    (["secrets.set", "worker", "queue-token", "s3cr3t"],
     "error: secrets.set got an argument it does not take (not shown): values are read from stdin only; usage: "
     "printf %s \"$VALUE\" | invoke secrets.set --env ENV SERVICE KEY"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_parse_error_lines_for_each_kind_of_mistake(argv, said):
    """The words for each ParseError the installed invoke raises, from its own parser and our contexts."""
    from invoke.exceptions import ParseError
    from invoke.parser import Parser

    parser = Parser(initial=Program(namespace=tasks.ns).initial_context,
                    contexts=tasks.ns.to_contexts(ignore_unknown_help=False))
    with pytest.raises(ParseError) as error:
        parser.parse_argv(argv)
    assert parsing.line(error.value) == said


# -- help and lists into a reader that left ---------------------------------------------------------------------

@pytest.mark.parametrize("args", [("deploy", "--help"), ("deploy", "-h"), ("deploy", "api", "--help"),
                                  ("secrets.set", "--help"), ("secrets.set", "-h"), ("--help", "nodes.migrate"),
                                  ("-h", "plan"), ("--list",), ("--list", "--list-format=json")], ids=" ".join)
def test_help_into_a_closed_pipe_exits_0_quietly(args):
    """`invoke ARGS | head -1` at its worst: the reader is gone before the first write, so every write fails
    (EPIPE); help was still asked for and given as far as anyone reads, so exit 0 and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = invoke(*args, stdout=write_end)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


# -- an empty value is not "not given" ----------------------------------------------------------------------------

def _empty_value_cases():
    for name in TASKS:
        found = tasks.ns[name]
        body = inspect.unwrap(found.body)
        for option in common._value_options(body, found.positional):
            if option not in common.CHECKS_ITS_OWN_EMPTY:
                yield pytest.param(name, option, id=f"{name} --{option}")


@pytest.mark.parametrize("name, option", list(_empty_value_cases()))
def test_every_option_that_takes_a_value_refuses_an_empty_one(name, option):
    """In process: the refusal comes before the task body, so nothing else runs (the body is never called)."""
    found = tasks.ns[name]
    positionals = ["x"] * len(found.positional)
    with pytest.raises(Exit) as refused:
        found.body(Context(), *positionals, **{option: ""})
    flag = option.rstrip("_").replace("_", "-")
    flag = f"-{flag}" if len(flag) == 1 else f"--{flag}"
    assert refused.value.code == 2
    assert refused.value.message == f"error: {flag} is empty; give it a value or leave {flag} out"


def test_the_empty_value_sweep_covers_the_audit_cases():
    swept = {(case.values[0], case.values[1]) for case in _empty_value_cases()}
    assert {("plan", "diff"), ("plan", "against"), ("history", "kubeconfig"), ("deploy", "kubeconfig"),
            ("lint", "only"), ("test", "k")} <= swept
