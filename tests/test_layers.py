"""The dependency rule: `datasets/` and `models/` never import `ssd/` (not even lazily inside a
function, as models' load_weights_file once did through ssd/checkpoint.py), and `harness/`
imports neither of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"datasets": ("ssd",), "models": ("ssd",), "harness": ("ssd", "models", "datasets")}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_upper_ones(package: str) -> None:
    bad = {f"{p.relative_to(REPO)}: {n}" for p in (REPO / package).rglob("*.py") for n in imported(p)
           if n.split(".")[0] in FORBIDDEN[package]}
    assert not bad, sorted(bad)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str = "ssd") -> dict[str, set[str]]:
    """Module → the package's modules it imports anywhere in its text (top level, inside a function,
    or under `if TYPE_CHECKING:`: each is a dependency a reader and a refactoring must follow). A
    submodule importing its own parent package (`from ssd.report import figures`) is not an edge."""
    files = {module_name(p): p for p in (REPO / package).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module if node.level == 0 else ".".join(
                    name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                    + [node.module])
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in files and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import circles: strongly connected components with more than one module."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reach[start] = seen
    comps = {frozenset(m for m in graph if m in reach[n] and n in reach[m]) | {n} for n in graph}
    return [set(c) for c in comps if len(c) > 1]


def test_privacy_audit_is_in_no_import_circle() -> None:
    """The audit receives what it needs from its caller (ssd.privacy.audit.AuditScope) instead of
    importing ssd.experiment, which calls it: no circle may pass through ssd.privacy."""
    graph = import_graph()
    assert "ssd.privacy.audit" in graph["ssd.experiment"]  # the lazy import in run_one is seen
    bad = [sorted(c) for c in cycles(graph) if any(m.startswith("ssd.privacy") for m in c)]
    assert not bad, bad


def test_cycle_finder_sees_a_lazy_circle() -> None:
    """The finder itself: a circle closed only by a function-level or TYPE_CHECKING import counts."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [{"a", "b"}]


def test_backends_are_in_no_import_circle() -> None:
    """The backends run jobs; the sweep and the suite make jobs and drive the backends. A backend
    module importing them (even lazily) closes a circle, as ssd/backends/jobs.py <-> ssd/sweep.py did."""
    graph = import_graph()
    assert "ssd.backends.jobs" in graph["ssd.sweep"]  # the sweep's lazy import of its payload is seen
    bad = [sorted(c) for c in cycles(graph) if any(m.startswith("ssd.backends") for m in c)]
    assert not bad, bad
