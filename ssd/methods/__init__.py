"""Unlearning methods. Importing this package registers every built-in method."""

from ssd.methods import amnesiac as _amnesiac  # noqa: F401
from ssd.methods import basic as _basic  # noqa: F401
from ssd.methods import blindspot as _blindspot  # noqa: F401
from ssd.methods import dampening_baselines as _dampening_baselines  # noqa: F401
from ssd.methods import fisher as _fisher  # noqa: F401
from ssd.methods import jit as _jit  # noqa: F401
from ssd.methods import neggrad_plus as _neggrad_plus  # noqa: F401
from ssd.methods import ntk as _ntk  # noqa: F401
from ssd.methods import salun as _salun  # noqa: F401
from ssd.methods import scrub as _scrub  # noqa: F401
from ssd.methods import ssd_methods as _ssd_methods  # noqa: F401
from ssd.methods import unsir as _unsir  # noqa: F401
from ssd.methods.registry import METHODS, MethodConfig, MethodEntry, register_method

__all__ = ["METHODS", "MethodConfig", "MethodEntry", "register_method"]
