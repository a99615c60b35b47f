"""The house rules of tests/, as a check over a tree (the real one in tests/support/tests/test_layout.py, and small
synthetic ones there that break each rule once).

A newcomer finds a test by its capability and a shared piece in one place: test files sit in area folders; what
several test files share (worlds, fakes, helpers) is a module of tests/support/ (or the kubesim package), and a
shared fixture is a module of tests/support/fixtures/ listed in tests/conftest.py's `pytest_plugins`, so no test
module imports another (or a conftest), a conftest holds fixtures and hooks only, and no test rebinds a fixture as a
module global to make pytest see it. Tasks run through one runner (tests/support/cli.py) and `pulumi` is faked
once (tests/support/fake_pulumi.py), so how either behaves is decided in one place. Everything is read from the
syntax tree; nothing is imported or run.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.imports import imported, module_name

SELF_TESTED = ("kubesim", "support")  # what tests import from tests/; their own tests live in tests/<package>/tests/
SHARED = re.compile(rf"tests\.(?:{'|'.join(SELF_TESTED)})(?:\.|$)")
CONFTEST = "tests/conftest.py"
FIXTURES = "tests/support/fixtures"
RUNNER = "tests/support/cli.py"
FAKE_PULUMI = "tests/support/fake_pulumi.py"
CHECKER = "tests/support/layout.py"  # spells what it forbids
FAKE_CLASS = re.compile(r"fake\w*pulumi|pulumi\w*fake", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """One Python file of the tree, parsed once."""

    path: Path
    rel: str
    module: str
    tree: ast.Module

    @property
    def is_test(self) -> bool:
        return self.path.name.startswith("test_") or self.path.name == "conftest.py"


def sources(root: Path) -> list[Source]:
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        if "__pycache__" not in path.parts:
            found.append(Source(path, path.relative_to(root).as_posix(), module_name(path, root),
                                ast.parse(path.read_text(), filename=str(path))))
    return found


def _test_module_name(name: str) -> bool:
    return any(part.startswith("test_") or part == "conftest" for part in name.split("."))


def _plugins(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) for each name a module-level `pytest_plugins` lists."""
    return [(node.lineno, item.value) for node in tree.body if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets)
            and isinstance(node.value, (ast.List, ast.Tuple))
            for item in node.value.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def _docstrings(tree: ast.Module) -> set[int]:
    """id() of every docstring node: prose may say `python -m invoke`, code may not."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_fixture(node: ast.AST) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(target, ast.Attribute) and target.attr == "fixture") or \
                (isinstance(target, ast.Name) and target.id == "fixture"):
            return True
    return False


def _fixtures(source: Source) -> set[str]:
    return {node.name for node in source.tree.body if _is_fixture(node)}


# --- the rules: each yields "file:line: what is wrong" --------------------------------------------------------

def _forbidden_import(source: Source, name: str) -> bool:
    """A test module or conftest is imported by nobody; a test module takes from tests/ only support and kubesim."""
    return _test_module_name(name) or (source.is_test and name.startswith("tests.") and not SHARED.match(name))


def imports_of_test_modules(root: Path, files: list[Source]) -> Iterator[str]:
    """No module of tests/ imports a test module or a conftest (pytest_plugins naming one counts); a test module
    imports from tests/ only tests.support and tests.kubesim."""
    for source in files:
        for line, names in imported(source.path, root, source.tree):
            name = next((name for name in names if _forbidden_import(source, name)), None)
            if name is not None:
                yield f"{source.rel}:{line}: imports {name}; move what it shares to tests/support/"
        for line, name in _plugins(source.tree):
            if _test_module_name(name):
                yield f"{source.rel}:{line}: pytest_plugins names {name}; move its fixtures to {FIXTURES}/"


def invoke_by_hand(root: Path, files: list[Source]) -> Iterator[str]:
    """Only tests/support/cli.py spells out `python -m invoke`."""
    for source in files:
        if source.rel == RUNNER:
            continue
        prose = _docstrings(source.tree)
        for node in ast.walk(source.tree):
            if isinstance(node, (ast.List, ast.Tuple)):
                words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
                if any(a == "-m" and b == "invoke" for a, b in zip(words, words[1:], strict=False)):
                    yield f"{source.rel}:{node.lineno}: runs invoke by hand; use {RUNNER} (invoke, spawn, command)"
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
                  and re.search(r"-m\s+invoke\b", node.value)):
                yield f"{source.rel}:{node.lineno}: runs invoke by hand; use {RUNNER} (invoke, spawn, command)"


def second_fake_pulumi(root: Path, files: list[Source]) -> Iterator[str]:
    """Only tests/support/fake_pulumi.py defines a fake pulumi class or makes a file named `pulumi` (the executable
    a fake puts on PATH); fixtures and variables holding the one fake may be called anything."""
    for source in files:
        if source.rel in (FAKE_PULUMI, CHECKER):
            continue
        for node in ast.walk(source.tree):
            if isinstance(node, ast.ClassDef) and FAKE_CLASS.search(node.name):
                yield f"{source.rel}:{node.lineno}: defines {node.name}; use {FAKE_PULUMI} (FakePulumi, install)"
            if _pulumi_path(node):
                yield f"{source.rel}:{node.lineno}: makes a path named pulumi; use {FAKE_PULUMI} (FakePulumi, install)"


def _pulumi_path(node: ast.AST) -> bool:
    """`x / "pulumi"`, `os.path.join(..., "pulumi")` or a string ending in `/pulumi`."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return isinstance(node.right, ast.Constant) and node.right.value == "pulumi"
    if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("join", "joinpath") and node.args:
        last = node.args[-1]
        return isinstance(last, ast.Constant) and last.value == "pulumi"
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith("/pulumi")


def outside_area_folders(root: Path, files: list[Source]) -> Iterator[str]:
    """A test file sits in tests/<area>/, one level down (or in tests/<package>/tests/ for kubesim and support)."""
    for source in files:
        parts = source.rel.split("/")
        if source.path.name.startswith("test_"):
            in_area = len(parts) == 3 and parts[1] not in SELF_TESTED
            self_tested = len(parts) == 4 and parts[1] in SELF_TESTED and parts[2] == "tests"
            if not (in_area or self_tested):
                yield f"{source.rel}:1: not in an area folder; move it to tests/<area>/ (or tests/<package>/tests/)"


def helpers_in_conftest(root: Path, files: list[Source]) -> Iterator[str]:
    """A conftest holds fixtures and pytest hooks; a helper there is reachable only by importing a conftest."""
    for source in files:
        if source.path.name != "conftest.py":
            continue
        for node in source.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not _is_fixture(node) \
                    and not node.name.startswith("pytest_"):
                yield f"{source.rel}:{node.lineno}: helper {node.name} in a conftest; move it to tests/support/"


def fixtures_unregistered(root: Path, files: list[Source]) -> Iterator[str]:
    """A fixture shared across modules is in a module pytest_plugins lists; in tests/support that module is under
    tests/support/fixtures/, and every module there is listed."""
    conftest = next((source for source in files if source.rel == CONFTEST), None)
    listed = {name for _, name in _plugins(conftest.tree)} if conftest else set()
    for source in files:
        if source.is_test or source.path.name == "__init__.py":
            continue
        fixtures = sorted(_fixtures(source))
        if source.rel.startswith("tests/support/") and not source.rel.startswith(f"{FIXTURES}/") and fixtures:
            yield f"{source.rel}:1: defines fixture {fixtures[0]}; move it to {FIXTURES}/"
        elif (fixtures or source.rel.startswith(f"{FIXTURES}/")) and source.module not in listed:
            yield f"{source.rel}:1: not in {CONFTEST} pytest_plugins; its fixtures are invisible"


def fixtures_rebound(root: Path, files: list[Source]) -> Iterator[str]:
    """No test module brings another module's fixture into its globals (`from m import fixture`, `f = m.fixture`)
    or hands a fixture's value to module code through `global`."""
    fixtures = {source.module: _fixtures(source) for source in files}
    for source in files:
        if not source.is_test:
            continue
        for node in ast.walk(source.tree):
            if isinstance(node, ast.Global):
                yield f"{source.rel}:{node.lineno}: global {', '.join(node.names)}; take the fixture as an argument"
        aliases: dict[str, str] = {}  # a name in this module -> the module it stands for
        for node in source.tree.body:
            if isinstance(node, ast.Import):
                aliases.update({alias.asname or alias.name: alias.name for alias in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    if alias.name in fixtures.get(node.module, ()):
                        yield f"{source.rel}:{node.lineno}: imports fixture {alias.name}; register its module " \
                              f"in {CONFTEST} pytest_plugins"
            elif isinstance(node, ast.Assign):
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for value in values:
                    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and \
                            value.attr in fixtures.get(aliases.get(value.value.id, ""), ()):
                        yield f"{source.rel}:{node.lineno}: rebinds fixture {value.attr} as a global; register " \
                              f"its module in {CONFTEST} pytest_plugins"


Rule = Callable[[Path, list[Source]], Iterator[str]]
RULES: dict[str, Rule] = {"no test module imports another": imports_of_test_modules,
                          "one invoke runner": invoke_by_hand,
                          "one fake pulumi": second_fake_pulumi,
                          "test files in area folders": outside_area_folders,
                          "conftest holds fixtures only": helpers_in_conftest,
                          "fixtures registered through pytest_plugins": fixtures_unregistered,
                          "fixtures not rebound as globals": fixtures_rebound}


def violations(root: Path, rule: str, files: list[Source] | None = None) -> list[str]:
    """What breaks `rule` in the tree at root; `files` are its sources when the caller parsed them already."""
    return list(RULES[rule](root, sources(root) if files is None else files))
