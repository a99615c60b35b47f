"""One error contract: every engine error is a Refused (exit 2), Failed (exit 1) or Interrupted (exit 130), and the
one wrapper every task body runs in (infra.cli.common.run) turns any of them into its exit code and one line, so an
engine added tomorrow cannot forget the mapping."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap

import pytest

import infra.lint
import infra.ops
import infra.sections
from infra.ops import errors
from tests.support.cli import invoke, one_line_error

CONTRACT = (errors.Refused, errors.Failed, errors.Interrupted)


def _engine_modules() -> list[str]:
    names = ["infra.config"]
    for package in (infra.ops, infra.lint, infra.sections):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return sorted(names)


def _exceptions_defined_in(module_name: str) -> list[type[BaseException]]:
    module = importlib.import_module(module_name)
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module_name]


def test_the_walk_sees_the_engines():
    """The walk below is only as good as what it finds: the packages' modules and their known error classes."""
    modules = _engine_modules()
    assert {"infra.config", "infra.sections.base", "infra.ops.secrets", "infra.ops.io.kube", "infra.ops.deploy.pipeline",
            "infra.lint.scaffold"} <= set(modules)
    found = {cls.__name__ for name in modules for cls in _exceptions_defined_in(name)}
    assert {"ConfigError", "SecretInputError", "KubeError", "DeployFailed", "ScaffoldError", "ToolFailure"} <= found


def test_every_engine_error_is_refused_failed_or_interrupted():
    outside = [f"{cls.__module__}.{cls.__qualname__}{tuple(base.__name__ for base in cls.__mro__[1:-2])}"
               for name in _engine_modules()
               for cls in _exceptions_defined_in(name)
               if cls is not errors.PlatformError and not issubclass(cls, CONTRACT)]
    assert not outside, "derive these from infra.ops.errors.Refused, Failed or Interrupted:\n" + "\n".join(outside)


def test_no_engine_error_is_two_outcomes_at_once():
    """A class that were both Refused and Failed would exit with whichever its MRO happens to put first."""
    both = [cls for name in _engine_modules() for cls in _exceptions_defined_in(name)
            if sum(issubclass(cls, kind) for kind in CONTRACT) > 1]
    assert not both


# A task module a new engine's author might write: no try/except, no mapper, just the shared @task.
TASKS = textwrap.dedent('''
    from invoke import Collection

    from infra.cli.common import task
    from infra.ops.errors import Failed, Interrupted, Refused


    class MadeUpRefusal(Refused):
        """An engine error nobody wrote a mapper for."""


    class MadeUpFailure(Failed):
        pass


    class MadeUpStop(Interrupted):
        pass


    @task
    def refuse(c):
        raise MadeUpRefusal("the made-up engine refuses --size 0; pass --size 1 or more")


    @task
    def failing(c):
        raise MadeUpFailure("the made-up backend is down; retry in a minute")


    @task
    def stopped(c):
        raise MadeUpStop("made-up run stopped after step 2 of 3; rerun to finish")


    @task
    def ctrl_c(c):
        raise KeyboardInterrupt


    ns = Collection(refuse, failing, stopped, ctrl_c)
''')


@pytest.mark.parametrize("name, code, line", [
    ("refuse", 2, "error: the made-up engine refuses --size 0; pass --size 1 or more"),
    ("failing", 1, "error: the made-up backend is down; retry in a minute"),
    ("stopped", 130, "interrupted: made-up run stopped after step 2 of 3; rerun to finish"),
    ("ctrl-c", 130, "interrupted"),
])
def test_a_new_engine_error_raised_in_a_task_body_exits_with_its_code_and_one_line(tmp_path, name, code, line):
    (tmp_path / "tasks.py").write_text(TASKS)
    result = invoke("--search-root", str(tmp_path), name)
    assert one_line_error(result, code) == line
