"""Names and paths without importing torch (for a fast `--help`): the authors' method aliases, the
names the built-in method files register, the precisions and backends, the repository root (the
registries stay the authority at run time; tests check these lists against them)."""

from __future__ import annotations

import re
from pathlib import Path

# The authors' -method names, kept working verbatim.
METHOD_ALIASES = {"ssd_tuning": "ssd", "lfssd_tuning": "lfssd", "FisherForgetting": "fisher", "NTK": "ntk"}
REPO_ROOT = Path(__file__).resolve().parent.parent
BACKEND_NAMES = ("serial", "ray")  # ssd.backends.BACKENDS
# --precision's choices (ssd/precision.py applies them; here so that --help needs no torch).
PRECISIONS = ("fp32", "tf32", "bf16")
_REGISTER = re.compile(r"""@register_method\(\s*["']([^"']+)["']""")


def method_names() -> list[str]:
    """Every name a file in ssd/methods/ registers with `@register_method("name", ...)`, in file order."""
    names: list[str] = []
    for path in sorted((Path(__file__).parent / "methods").glob("*.py")):
        names += [n for n in _REGISTER.findall(path.read_text(encoding="utf-8")) if n not in names]
    return names
