"""User-facing errors (defined in harness.errors, which datasets/ and models/ import too)."""

from harness.errors import UserError, one_line, run_cli

__all__ = ["UserError", "one_line", "run_cli"]
