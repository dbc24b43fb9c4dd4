"""Unlearning methods. Importing this package registers every built-in method.

Every module in this folder is imported (in name order), so adding a method is one file with
one `@register_method` in it: nothing to list here.
"""

import importlib
import pkgutil

from ssd.methods.registry import METHODS, MethodConfig, MethodEntry, register_method

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "MethodConfig", "MethodEntry", "register_method"]
