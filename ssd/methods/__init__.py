"""Unlearning methods. Importing this package registers every built-in method."""

from ssd.methods.registry import METHODS, MethodConfig, MethodEntry, register_method

__all__ = ["METHODS", "MethodConfig", "MethodEntry", "register_method"]
