"""Method names without importing torch (for fast `--help`): the authors' aliases and the
names the built-in method files register (the registry stays the authority at run time)."""

from __future__ import annotations

import re
from pathlib import Path

# The authors' -method names, kept working verbatim.
METHOD_ALIASES = {"ssd_tuning": "ssd", "lfssd_tuning": "lfssd", "FisherForgetting": "fisher", "NTK": "ntk"}
_REGISTER = re.compile(r"""@register_method\(\s*["']([^"']+)["']""")


def method_names() -> list[str]:
    """Every name a file in ssd/methods/ registers with `@register_method("name", ...)`, in file order."""
    names: list[str] = []
    for path in sorted((Path(__file__).parent / "methods").glob("*.py")):
        names += [n for n in _REGISTER.findall(path.read_text(encoding="utf-8")) if n not in names]
    return names
