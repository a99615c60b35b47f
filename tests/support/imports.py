"""The imports a Python file makes, read from its syntax tree (including those inside functions, relative ones and
`importlib.import_module("...")` with a literal name): what the import contract and the tests' layout rules
check (tests/support/tests/test_import_contract.py, tests/support/layout.py)."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path, tree: ast.AST | None = None) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line, absolute module names) per import statement; `from a import b` names a, then a.b."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree or ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield node.lineno, tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, (base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*"))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")):
            yield node.lineno, (node.args[0].value,)
