"""Damaging files the way disks and kills do, for the integrity tests."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zero_largest_tensor(path: Path) -> None:
    """Overwrite the bytes of the largest tensor stored in a torch.save file with zeros, leaving
    the zip container intact (a bad sector or a half-synced copy; torch.load does not notice)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    off = info.header_offset
    name_len = int.from_bytes(raw[off + 26:off + 28], "little")
    extra_len = int.from_bytes(raw[off + 28:off + 30], "little")
    start = off + 30 + name_len + extra_len
    raw[start:start + info.file_size] = bytes(info.file_size)
    path.write_bytes(bytes(raw))


def flip_bytes_of(path: Path, content: bytes, n: int) -> None:
    """Flip (invert) the first `n` bytes of `content` where it is stored in `path`: a tensor's
    bytes damaged in place, whatever the file's layout, the file still loading."""
    raw = bytearray(path.read_bytes())
    at = raw.find(content)
    assert at >= 0, "content not found in the file"
    raw[at:at + n] = bytes(b ^ 0xFF for b in raw[at:at + n])
    path.write_bytes(bytes(raw))
