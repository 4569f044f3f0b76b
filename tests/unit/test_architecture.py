"""The floors of the house (ARCHITECTURE.md), checked on the source: every import, at module level or inside a
function, and every module name handed to importlib, points down or sideways within its own package, never up.

    libs/podbrief            imports no service, app, test support, benchmark or test
    services/<name>          imports libs and itself, never another service, an app, test support or pytest
    apps/<package>           imports libs and services (the top floor of production code), never test support
    testing/podbrief_testing imports anything production has, never a benchmark or a test
    bench/, tests/, services/*/tests/, conftest.py   import anything

and within each package no two modules import each other, directly or round a longer loop."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = tuple(sorted(p.name for p in (ROOT / "services").iterdir() if (p / "app.py").is_file()))
SERVICE_PACKAGES = tuple(f"podbrief_{s}" for s in SERVICES)
APP_PACKAGES = tuple(sorted(p.name for p in (ROOT / "apps").iterdir() if (p / "__init__.py").is_file()))
# Everything first-party, by top-level import name; anything else is the standard library or a dependency.
FIRST_PARTY = ("podbrief", *SERVICE_PACKAGES, *APP_PACKAGES, "podbrief_testing", "bench", "tests", "conftest")
TEST_FRAMEWORKS = ("pytest", "_pytest")


@dataclass(frozen=True)
class Module:
    name: str  # the import name: podbrief.bus.core, podbrief_ingest.crawler
    path: Path
    floor: str  # libs | service | app | testing
    package: str  # the top-level import name


@dataclass(frozen=True)
class Import:
    target: str  # the imported module (or module.attribute, for `from module import attribute`)
    line: int
    top_level: bool  # at module level (not inside a function or an `if TYPE_CHECKING:` block)
    dynamic: bool = False  # a name handed to importlib / __import__


def _modules(base: Path, package: str, floor: str, skip: tuple[str, ...] = ()) -> Iterator[Module]:
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if any(part in skip for part in rel.parts):
            continue
        parts = [package, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield Module(".".join(parts), path, floor, package)


def production_modules() -> list[Module]:
    found = list(_modules(ROOT / "libs" / "podbrief", "podbrief", "libs"))
    for service in SERVICES:
        # A service's tests and migrations are not part of its import graph (tests import anything; Alembic
        # loads migration scripts by path).
        found += _modules(ROOT / "services" / service, f"podbrief_{service}", "service", skip=("tests", "migrations"))
    for app in APP_PACKAGES:
        found += _modules(ROOT / "apps" / app, app, "app")
    found += _modules(ROOT / "testing" / "podbrief_testing", "podbrief_testing", "testing")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _literal_prefix(node: ast.expr) -> str | None:
    """The text a module-name argument starts with: "podbrief_ingest.app", or "podbrief_" of f"podbrief_{x}"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def imports_of(module: Module) -> list[Import]:
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    out: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend(Import(alias.name, node.lineno, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if module.path.name == "__init__.py" else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            out.append(Import(base, node.lineno, top))
            out.extend(Import(f"{base}.{alias.name}", node.lineno, top) for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__", "find_spec") and node.args:
                prefix = _literal_prefix(node.args[0])
                if prefix:
                    out.append(Import(prefix, node.lineno, False, dynamic=True))
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                inner = False
            visit(child, inner)

    visit(tree, True)
    return out


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def forbidden(module: Module, target: str) -> str | None:
    """Why `module` must not import `target`, or None when it may."""
    top = _top(target)
    if top in TEST_FRAMEWORKS:
        return None if module.floor == "testing" else "production code never imports the test framework"
    # A name handed to importlib may be only a prefix (f"podbrief_{name}.app" gives "podbrief_"): still first-party.
    if not (top in FIRST_PARTY or top.startswith("podbrief_")) or top in ("podbrief", module.package):
        return None
    if module.floor == "libs":
        return "the library imports nothing above it"
    if module.floor == "service":
        if top in SERVICE_PACKAGES:
            return "a service never imports another service: events are the only way between them"
        return "a service imports the library and itself only"
    if module.floor == "app":
        if top in ("podbrief_testing", "bench", "tests", "conftest"):
            return "apps are production code: they never import test support, benchmarks or tests"
        return None
    if top in ("bench", "tests", "conftest"):
        return "test support never imports a benchmark or a test"
    return None


def test_the_tree_is_where_this_test_looks() -> None:
    """The checks below are only as good as the files they find."""
    names = {m.name for m in production_modules()}
    for expected in (
        "podbrief.bus.core",
        "podbrief_ingest.app",
        "podbrief_delivery.handlers",
        "podbrief_cli.cli",
        "podbrief_run.runner",
        "podbrief_testing",
    ):
        assert expected in names
    assert set(SERVICES) == {"ingest", "transcription", "extraction", "clustering", "delivery"}


def test_every_import_points_down() -> None:
    violations: dict[tuple[Path, int], str] = {}
    for module in production_modules():
        for imp in imports_of(module):
            why = forbidden(module, imp.target)
            where = (module.path.relative_to(ROOT), imp.line)
            # One line per statement: `from a import b` is reported as `a`, not again as `a.b`.
            if why is not None and where not in violations:
                how = "hands importlib" if imp.dynamic else "imports"
                violations[where] = f"{where[0]}:{where[1]} {how} {imp.target!r}: {why}"
    assert not violations, "imports against the floors (ARCHITECTURE.md):\n" + "\n".join(sorted(violations.values()))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles_within_a_package() -> None:
    """Counted with the imports inside functions too: a lazy import that dodges a cycle at start-up is still a
    cycle in the design (two modules that need each other are one module, or miss a third)."""
    modules = production_modules()
    names = {m.name for m in modules}
    graph: dict[str, set[str]] = {m.name: set() for m in modules}
    for module in modules:
        for imp in imports_of(module):
            if imp.dynamic or _top(imp.target) != module.package:
                continue
            # `from pkg import name` names pkg and, when it is a module, pkg.name: both are edges.
            if imp.target in names and imp.target != module.name:
                graph[module.name].add(imp.target)
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)
