"""The registered unlearning methods, the tasks each supports, and every setting with its default.

    python scripts/methods.py            all methods
    python scripts/methods.py ssd scrub  just these

A setting is any field of the method's config dataclass: `--set NAME=VALUE` on a main,
`[method_settings.METHOD]` in a suite (docs/first-study.md). Your own method file in
ssd/methods/ shows up here once it is there.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMMON = ("seed", "device", "progress")  # set by the run itself, not per method


def describe(name: str) -> str:
    from ssd.methods.registry import METHODS

    entry = METHODS.get(name)
    lines = [f"{entry.name}: {entry.description or '(no description)'}",
             f"  tasks: {', '.join(entry.tasks)}"]
    for f in dataclasses.fields(entry.config):
        if f.name in COMMON:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  {f.name} = {default!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="methods to show (default: all)")
    args = p.parse_args(argv)
    import ssd.methods  # noqa: F401  (registers them all)
    from ssd.methods.registry import METHODS

    print("\n\n".join(describe(n) for n in (args.names or METHODS.names())))


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
