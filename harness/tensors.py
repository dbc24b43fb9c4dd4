"""Content hashes of tensors: checkpoints and caches store one and check it on load."""

from __future__ import annotations

import hashlib

import torch


def sha256_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """Hash a state dict's names, dtypes, shapes and bytes (order-independent of dict order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too
    return h.hexdigest()
