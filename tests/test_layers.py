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
