"""The flags shared by the read-only real-data scripts (scripts/cmia_null.py,
scripts/ulira_ssd_selection.py): the checkpoint, its data, the cache folder they read from,
the model and the dataset. They train nothing and write nothing, so every path is required
rather than defaulted."""

from __future__ import annotations

import argparse


def reading_parser(description: str, cache_help: str) -> argparse.ArgumentParser:
    """A parser with --weight-path, --data-root, --cache-dir (`cache_help` says what it must
    hold), --net and --dataset; each script adds its own flags after these."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--weight-path", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--cache-dir", required=True, help=cache_help)
    ap.add_argument("--net", default="ResNet18")
    ap.add_argument("--dataset", default="FashionMNIST")
    return ap
