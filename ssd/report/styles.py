"""Line styles of the per-sample figures (U-LiRA scores in ssd/report/privacy.py, CMIA deficits in
ssd/report/class_privacy.py): SSD and the methods read against it stand out, the others take
the next entry of a shared palette in the order they are drawn."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ssd.report.figures import HIGHLIGHT

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
DASHES = ("-", "-.", (0, (5, 1, 1, 1, 1, 1)))  # the palette's colours once per dash pattern
FIXED: dict[str, dict[str, Any]] = {
    "ssd": {"color": HIGHLIGHT, "lw": 2.4},
    "lfssd": {"color": "#7f0000", "lw": 2.0, "ls": "--"},
    "trw": {"color": "#000000", "lw": 2.0, "ls": "--"},
    "baseline": {"color": "#555555", "lw": 1.4, "ls": ":"},
}


def method_styles(fixed: Iterable[str] = tuple(FIXED)) -> Callable[[str], dict[str, Any]]:
    """`style(method)` for one figure: FIXED's style for the methods in `fixed`, the next palette
    entry for any other (call it once per line drawn, in drawing order)."""
    palette = iter([{"color": c, "ls": ls} for ls in DASHES for c in PALETTE])
    keep = set(fixed)

    def style(method: str) -> dict[str, Any]:
        return dict(FIXED[method]) if method in keep else {**next(palette), "lw": 1.3}

    return style
