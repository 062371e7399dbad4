"""The layers of ``fundtrail``: no import cycle between top-level packages, no guarded sibling imports.

The graph is built from the source with ``ast``: every ``import`` and ``from ... import`` statement,
at module level and inside functions (a function-level import is still a dependency). A cycle between
packages means a concept sits in the wrong room (ARCHITECTURE.md, "Layers"). ``importlib`` and
``try: import ... except ImportError`` are for real optional extras only, which say how to install them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fundtrail"

LAYERS = ("domain", "chains", "store", "analysis", "intel", "cases", "sharing", "audit", "scenarios", "api",
          "web", "cli", "watch")
"""The top-level packages whose imports must not form a cycle."""

NOT_IN_GRAPH = ("cases/migrations/",)
"""Run as scripts, not imported: the Alembic environment composes every layer's tables."""

PENDING: dict[tuple[str, str], str] = {}
"""Known imports (file, module or its prefix) that break the rules, each with why it is still there. The
list only shrinks: :func:`test_pending_exceptions_are_still_needed` fails once one is fixed."""


def _pending(rel: str, name: str) -> bool:
    return any(rel == f and (name == m or name.startswith(m + ".")) for f, m in PENDING)

EXTRAS = {"pyspark", "argon2", "stix2", "followthemoney", "openmined_psi", "private_set_intersection",
          "playwright", "psycopg", "psycopg2", "docx", "weasyprint", "reportlab", "uvicorn", "medallion",
          "taxii2client", "sklearn", "lightgbm", "xgboost", "torch", "yaml", "tomllib", "tomli", "resource",
          "fcntl", "msvcrt", "orjson", "jwt", "uvloop"}
"""Optional third-party extras (and platform modules) that may be imported behind a guard."""

DYNAMIC_IMPORTS: dict[str, str] = {
    "scenarios/demo.py": "checks that the extras a demo step needs are installed (names from DemoStep.needs)",
    "cli/main.py": "the fixed list of the CLI's command modules (COMMAND_MODULES), one per noun",
}
"""Modules allowed to import by a computed name, with why."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return [target] + [f"{target}.{a.name}" for a in node.names if target.startswith("fundtrail")]


def _sources() -> list[tuple[str, Path, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(NOT_IN_GRAPH):
            continue
        out.append((rel, path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return out


def _edges() -> dict[str, dict[str, list[str]]]:
    """package -> package -> the imports (``file: module``) that make the edge."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rel, path, tree in _sources():
        source = rel.split("/")[0].removesuffix(".py")
        module = _module_name(path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(node, module, path.name == "__init__.py"):
                parts = name.split(".")
                if parts[0] != "fundtrail" or len(parts) < 2:
                    continue
                target = parts[1]
                if target != source and not _pending(rel, name):
                    edges[source][target].append(f"{rel}: {name}")
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            visit(v)
    return found


def test_no_import_cycle_between_packages() -> None:
    edges = _edges()
    graph = {a: {b for b in targets if b in LAYERS} for a, targets in edges.items() if a in LAYERS}
    cycles = _cycles(graph)
    if cycles:
        lines = []
        for component in cycles:
            for a in component:
                for b in component:
                    if b in graph.get(a, ()):
                        lines.append(f"{a} -> {b}: " + "; ".join(edges[a][b][:4]))
        raise AssertionError("import cycles between packages " + str(cycles) + ":\n" + "\n".join(lines))


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _guarded_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Imports inside a ``try`` whose handlers catch ImportError (or ModuleNotFoundError)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught |= {t.id for t in types if isinstance(t, ast.Name)}
        if not caught & {"ImportError", "ModuleNotFoundError"}:
            continue
        for stmt in node.body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Import):
                    found += [(sub.lineno, a.name) for a in sub.names]
                elif isinstance(sub, ast.ImportFrom) and not sub.level:
                    found.append((sub.lineno, sub.module or ""))
                elif isinstance(sub, ast.ImportFrom):
                    found.append((sub.lineno, "." * sub.level + (sub.module or "")))
    return found


def _dynamic_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls of ``importlib.import_module``, ``importlib.util.find_spec`` or ``__import__``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name not in ("import_module", "find_spec", "__import__"):
            continue
        arg = node.args[0] if node.args else None
        found.append((node.lineno, arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                      else "<computed>"))
    return found


def test_no_guarded_or_dynamic_import_of_fundtrail_modules() -> None:
    problems = []
    for rel, _path, tree in _sources():
        for line, name in _guarded_imports(tree):
            top = name.split(".")[0]
            if _pending(rel, name):
                continue
            if name.startswith((".", "fundtrail")) or top not in EXTRAS:
                problems.append(f"{rel}:{line}: import {name} guarded by except ImportError")
        for line, name in _dynamic_imports(tree):
            if (name == "<computed>" and rel in DYNAMIC_IMPORTS) or _pending(rel, name):
                continue
            if name == "<computed>" or name.startswith("fundtrail") or name.split(".")[0] not in EXTRAS:
                problems.append(f"{rel}:{line}: importlib/__import__ of {name}")
    assert not problems, "import a sibling directly (guards are for optional extras):\n" + "\n".join(problems)


def test_pending_exceptions_are_still_needed() -> None:
    """Each known exception still names a real import: remove it from PENDING once it is fixed."""
    present = set()
    for rel, path, tree in _sources():
        module = _module_name(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                present |= {(rel, n) for n in _imported(node, module, path.name == "__init__.py")}
        present |= {(rel, n) for _line, n in _dynamic_imports(tree)}
    stale = [(f, m) for f, m in PENDING
             if not any(rel == f and (n == m or n.startswith(m + ".")) for rel, n in present)]
    assert not stale, f"fixed, remove from PENDING: {stale}"


def test_errors_are_defined_in_errors_py_or_listed() -> None:
    """ARCHITECTURE.md: the error tree is errors.py; the few other exception classes are listed there."""
    allowed = {
        ("api/errors.py", "Unauthenticated"), ("api/errors.py", "TooManyRequests"),
        ("api/errors.py", "FieldError"),
        ("audit/verifier.py", "BadInput"), ("scenarios/steps.py", "StepSkipped"),
        ("scenarios/ledger.py", "LedgerError"), ("chains/evm/rpc.py", "_ChunkChanged"),
        ("chains/bitcoin/raw.py", "_Malformed"), ("testing/rpc_replay.py", "RpcFault"),
        ("chains/bitcoin/etl_arrow.py", "NotPlain"),
    }
    builtin = {"Exception", "ValueError", "RuntimeError", "LookupError", "KeyError", "TypeError"}
    found = set()
    for rel, _path, tree in _sources():
        if rel == "errors.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id in builtin for b in node.bases):
                found.add((rel, node.name))
    assert found <= allowed, f"define errors in errors.py (or list them in ARCHITECTURE): {found - allowed}"
