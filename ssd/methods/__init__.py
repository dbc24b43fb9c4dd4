"""Unlearning methods. Importing this package registers every built-in method."""

from ssd.methods import basic as _basic  # noqa: F401
from ssd.methods.registry import METHODS, MethodConfig, MethodEntry, register_method

__all__ = ["METHODS", "MethodConfig", "MethodEntry", "register_method"]
