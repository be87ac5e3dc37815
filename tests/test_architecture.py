"""The layering of src/gradfolio, read from the source with ``ast`` (nothing is imported).

Arrows point one way: ``cli -> experiments -> {allocation, backtest, hedging} -> core``. The
core (every other package and module) never imports a pillar, no pillar imports another, no
library module imports ``cli`` or ``experiments``, the two experiment subpackages never import
each other, and the import graph has no cycle: neither the import-time graph (imports executed
when a module loads, i.e. not inside a function nor under ``if TYPE_CHECKING:``) nor the graph
of every import statement, wherever it stands.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "gradfolio"
PILLARS = ("allocation", "backtest", "hedging")


def _module_names() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _module_names()


def _resolve(name: str) -> str | None:
    """The deepest module of ours that ``name`` names (``a.b.c`` -> ``a.b`` if ``c`` is an attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """``(at_import_time, anywhere)``: our modules imported by ``module`` when it loads, and in any place."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    now: set[str] = set()
    every: set[str] = set()

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:  # ``from base import x``: x is a submodule of ours, or an attribute of base
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        found = {_resolve(n) for n in names if n == ROOT or n.startswith(ROOT + ".")}
        return {m for m in found if m is not None and m != module}

    def walk(nodes: list[ast.stmt], at_import: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                hit = targets(node)
                every.update(hit)
                if at_import:
                    now.update(hit)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(node.body, False)  # runs when called, not when the module loads
            elif isinstance(node, ast.If):
                walk(node.body, at_import and not _is_type_checking(node.test))
                walk(node.orelse, at_import)
            else:  # class bodies, try/with/for blocks run at import
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        walk([child], at_import)
                    elif isinstance(child, ast.ExceptHandler):
                        walk(child.body, at_import)

    walk(tree.body, True)
    return now, every


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def layer(module: str) -> str:
    """``cli``, ``experiments``, a pillar's name, or ``core``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("cli", "__main__"):
        return "cli"
    if top == "experiments":
        return "experiments"
    return top if top in PILLARS else "core"


def test_the_graph_is_read() -> None:
    # guards the checks below against an empty or blind graph
    assert len(MODULES) > 50
    assert {"gradfolio.cli.backtest", "gradfolio.cli.hedge_agent"} <= GRAPH["gradfolio.cli.main"][0]
    assert "gradfolio.experiments.backtest.run" in GRAPH["gradfolio.cli.backtest"][1]
    assert "gradfolio.experiments.backtest.run" not in GRAPH["gradfolio.cli.backtest"][0]  # imported in a function
    assert "gradfolio.experiments.backtest.run" not in GRAPH["gradfolio.experiments.backtest"][0]  # TYPE_CHECKING
    assert "gradfolio.risk" in GRAPH["gradfolio.allocation.losses"][0]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert layer("gradfolio.costs") == "core" and layer("gradfolio.hedging.env") == "hedging"


def test_import_time_graph_has_no_cycle() -> None:
    assert find_cycle({m: now for m, (now, _) in GRAPH.items()}) is None


def test_no_cycle_even_through_imports_inside_functions() -> None:
    # stricter: catches a module that imports, from a function it calls at load time, a module
    # that imports it back (the old ``cli/app.py`` ``_register()``)
    assert find_cycle({m: every for m, (_, every) in GRAPH.items()}) is None


def test_cli_modules_register_in_one_direction() -> None:
    # app (consoles, errors, root app) and progress (the rich bars) are shared helpers: they import no
    # other cli module; a command module imports app (and maybe progress), never another command module
    shared = ("gradfolio.cli.app", "gradfolio.cli.progress")
    commands = {m for m in MODULES if m.startswith("gradfolio.cli.") and m not in (*shared, "gradfolio.cli.main")}
    assert commands == {
        "gradfolio.cli.backtest", "gradfolio.cli.data", "gradfolio.cli.hedge", "gradfolio.cli.hedge_agent", "gradfolio.cli.predict",
        "gradfolio.cli.tune",
    }
    for helper in shared:
        assert not {m for m in GRAPH[helper][1] if m.startswith("gradfolio.cli")}, helper
    for module in commands:
        cli_imports = {m for m in GRAPH[module][1] if layer(m) == "cli"}
        assert "gradfolio.cli.app" in cli_imports and cli_imports <= set(shared), f"{module} imports {cli_imports}"
    assert "gradfolio.cli.progress" in GRAPH["gradfolio.cli.backtest"][1] & GRAPH["gradfolio.cli.hedge_agent"][1]


def _violations(rule: str) -> list[str]:
    bad = []
    for module, (_, every) in GRAPH.items():
        src = layer(module)
        for target in sorted(every):
            dst = layer(target)
            if rule == "cli" and src != "cli" and dst == "cli":
                bad.append(f"{module} -> {target}")
            if rule == "experiments" and src not in ("cli", "experiments") and dst == "experiments":
                bad.append(f"{module} -> {target}")
            if rule == "core" and src == "core" and dst in PILLARS:
                bad.append(f"{module} -> {target}")
            if rule == "pillars" and src in PILLARS and dst in PILLARS and src != dst:
                bad.append(f"{module} -> {target}")
            if rule == "experiment pillars":
                sides = [m.split(".")[2] if m.startswith("gradfolio.experiments.") else "" for m in (module, target)]
                if set(sides) == {"backtest", "hedging"}:
                    bad.append(f"{module} -> {target}")
    return bad


@pytest.mark.parametrize("rule", ["cli", "experiments", "core", "pillars", "experiment pillars"])
def test_layering(rule: str) -> None:
    assert _violations(rule) == []


@pytest.mark.parametrize("package", ["gradfolio.experiments.backtest", "gradfolio.experiments.hedging"])
def test_experiment_packages_export_their_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._EXPORTS)
    for name in module.__all__:
        value = getattr(module, name)
        source = importlib.import_module(f"{package}.{module._EXPORTS[name]}")
        assert value is getattr(source, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
