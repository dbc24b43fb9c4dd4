"""User-facing errors: one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """A problem the user can fix (missing data, wrong checkpoint, bad flag)."""

    exit_code = 2


def one_line(err: BaseException) -> str:
    """An exception's message folded onto one line (its type name when it has none)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run an entry point, turning :class:`UserError` into one line and exit code 2."""
    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
