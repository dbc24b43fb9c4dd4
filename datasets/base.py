"""In-memory image data: uint8 tensors, batched on the device, augmented per batch.

Every dataset here fits in memory, so we hold it as one uint8 tensor and never run a
per-image Python transform: batches are sliced, normalised and (for training)
randomly cropped and flipped on whatever device holds the tensor.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from harness.errors import UserError, one_line

Augment = str  # "crop_flip" (CIFAR: 4-px padded random crop + horizontal flip) or "none"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: what a model needs to be built for it."""

    name: str
    classes: tuple[str, ...]  # names of the labels a model is trained on
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment = "none"
    # Coarse datasets (Cifar20, *Coarse): the fine classes and each one's coarse label.
    fine_classes: tuple[str, ...] | None = None
    fine_to_coarse: tuple[int, ...] | None = None
    # Extra names accepted on the command line (e.g. the authors' "vehicle2").
    aliases: dict[str, int] = field(default_factory=dict)
    fine_aliases: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its static info and how to load one split of it."""

    info: DatasetInfo
    load: Callable[[Path, bool, bool], ImageData]  # (root, train, download) -> data
    needs_files: bool = True  # False for data bundled with a package (Digits)


@dataclass
class ImageData:
    """Images (uint8, N×C×H×W) with labels; `indices` are positions in the original split."""

    info: DatasetInfo
    images: torch.Tensor
    targets: torch.Tensor
    fine_targets: torch.Tensor | None = None
    indices: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N×C×H×W, got {self.images.dtype} {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if self.targets.shape != (n,):
            raise ValueError("targets must have one label per image")
        self.targets = self.targets.long()
        if self.fine_targets is not None:
            self.fine_targets = self.fine_targets.long()
        if self.indices is None:
            self.indices = torch.arange(n)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def subset(self, idx: torch.Tensor | Sequence[int]) -> ImageData:
        """Rows `idx` (positions in this object), keeping original indices."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        dev_idx = idx.to(self.images.device)
        return ImageData(
            info=self.info,
            images=self.images[dev_idx],
            targets=self.targets[dev_idx],
            fine_targets=None if self.fine_targets is None else self.fine_targets[dev_idx],
            indices=self.indices[idx.to(self.indices.device)],
        )

    def to(self, device: torch.device | str) -> ImageData:
        """Move images and labels once, so every batch is sliced where it is used."""
        device = torch.device(device)
        return ImageData(
            info=self.info,
            images=self.images.to(device),
            targets=self.targets.to(device),
            fine_targets=None if self.fine_targets is None else self.fine_targets.to(device),
            indices=self.indices,
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        order: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield `(x, y)`: x normalised float32 on `device` (default: where the data is).

        Rows come in `order` (positions in this object) when given, e.g. the authors'
        class-sorted order for SSD importances; else shuffled or as stored. Nothing here
        waits for the device: data held elsewhere is moved once per call, the order is put
        on the device once, and a `generator` on the data's device (`device_generator`)
        draws the shuffle and the augmentation there. A generator elsewhere still works,
        at the cost of a copy of its draws per batch.
        """
        n = len(self)
        dev = torch.device(device) if device is not None else self.device
        data = self if same_device(dev, self.device) else self.to(dev)  # one copy, not one per batch
        if order is not None:
            if order.numel() != n:
                raise ValueError(f"order has {order.numel()} rows, data has {n}")
            order = on_device(order.long(), data.device)
        elif shuffle:
            order = on_device(torch.randperm(n, generator=generator, device=draw_device(generator, data.device)),
                              data.device)
        else:
            order = torch.arange(n, device=data.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield prepare(data.images[idx], self.info, augment=augment, generator=generator), data.targets[idx]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)


def device_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` seeded with `seed`, for shuffles and augmentation drawn where the
    data is (no host-to-device copy per batch). On the CPU it is `torch.Generator().manual_seed(seed)`,
    the same stream as before; a CUDA generator draws other numbers than a CPU one of that seed."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def draw_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """Where draws from `generator` are made: its own device (`fallback` for torch's default)."""
    return generator.device if generator is not None else fallback


def same_device(a: torch.device, b: torch.device) -> bool:
    """`cuda` and `cuda:0` are one device while cuda:0 is the current one."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" else 0
        return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
    return a.index == b.index


def on_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` itself when it is already on `device`, else a copy there."""
    return t if same_device(t.device, device) else t.to(device)


@functools.lru_cache(maxsize=64)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as 1×C×1×1 tensors on `device`, made once per device (not per batch)."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def prepare(
    x: torch.Tensor,
    info: DatasetInfo,
    *,
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 batch → float in [0, 1] → (augmented) → normalised, all on x's device."""
    x = x.float().div_(255.0)
    if augment and info.augment == "crop_flip":
        x = random_crop_flip(x, padding=4, generator=generator)
    mean, std = _normalisation(tuple(info.mean), tuple(info.std), x.device)
    return (x - mean) / std


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-image random crop from a zero-padded copy, then a random horizontal flip.

    Matches torchvision's RandomCrop(size, padding) + RandomHorizontalFlip applied
    before ToTensor/Normalize (padding is black), but vectorised over the batch. The
    random numbers are drawn on the generator's device (x's for torch's default), in the
    order offsets-y, offsets-x, flips: a CPU generator of one seed gives the same crops on
    every device, a generator on x's device costs no copy.
    """
    n, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    gdev = draw_device(generator, x.device)
    oy = on_device(torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev), x.device)
    ox = on_device(torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev), x.device)
    flip = on_device(torch.rand(n, generator=generator, device=gdev) < 0.5, x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # n×h
    cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # n×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # n×h×w×c
    return out.permute(0, 3, 1, 2).contiguous()


def resolve_data_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """`--data-root`, else $SSD_DATA_ROOT, else ./data."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("SSD_DATA_ROOT")
    return Path(env) if env else Path("data")


def missing_data(name: str, root: Path) -> UserError:
    return UserError(
        f"{name} data not found under {root.resolve()}; "
        "pass --download to fetch it (or --data-root / SSD_DATA_ROOT to point at a copy)"
    )


def open_torchvision(
    cls: Callable[..., Any],
    name: str,
    root: Path,
    folder: Path,
    *,
    train: bool,
    download: bool,
    corrupt: tuple[type[BaseException], ...],
) -> Any:
    """torchvision's loader `cls`, with its failures turned into one-line UserErrors.

    `corrupt` lists what its parser raises on truncated or foreign files.
    """
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as err:
        if not download and "not found" in str(err):
            raise missing_data(name, root) from None
        what = f"download {name} into" if download else f"load {name} from"
        raise UserError(f"could not {what} {folder}: {one_line(err)}") from None
    except OSError as err:  # no network on --download, unreadable file
        verb = "download" if download else "read"
        raise UserError(f"could not {verb} {name} under {folder}: {one_line(err)}") from None
    except corrupt as err:
        raise UserError(f"{name} files under {folder} are corrupt ({one_line(err)}); "
                        "delete them and pass --download") from None


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def resolve_class(spec: str | int, names: Sequence[str], aliases: dict[str, int] | None = None) -> int:
    """A class given by index (`2`) or by name (`rocket`, case and `-`/space insensitive)."""
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        idx = int(text)
        if not 0 <= idx < len(names):
            raise UserError(f"class index {idx} out of range 0..{len(names) - 1}")
        return idx
    table = {_norm(n): i for i, n in enumerate(names)}
    table.update({_norm(k): v for k, v in (aliases or {}).items()})
    if _norm(text) in table:
        return table[_norm(text)]
    raise UserError(f"unknown class {text!r}; choose an index or one of: {', '.join(names)}")


def concat_data(*parts: ImageData) -> ImageData:
    """Stack several ImageData of one dataset (e.g. forget + a slice of retain)."""
    if not parts:
        raise ValueError("concat_data needs at least one part")
    fines = [p.fine_targets for p in parts]
    return ImageData(
        info=parts[0].info,
        images=torch.cat([p.images for p in parts]),
        targets=torch.cat([p.targets for p in parts]),
        fine_targets=None if any(f is None for f in fines) else torch.cat(fines),  # type: ignore[arg-type]
        indices=torch.cat([p.indices for p in parts]),  # type: ignore[misc]
    )


def with_targets(data: ImageData, targets: torch.Tensor) -> ImageData:
    """The same images with other labels (relabelling methods such as amnesiac)."""
    return ImageData(data.info, data.images, targets.to(data.targets.device), data.fine_targets, data.indices)


def balanced_subset(data: ImageData, n: int, seed: int = 0) -> ImageData:
    """`n` rows, as equal a share per class as `n` allows (the first classes get the remainder),
    drawn with `seed`, kept in their original order. Classes are the fine labels when there
    are any, so a coarse dataset's subset holds the same images as its fine twin's."""
    if not 0 < n <= len(data):
        raise ValueError(f"a subset of {n} rows cannot be drawn from {len(data)}")
    labels = (data.fine_targets if data.fine_targets is not None else data.targets).cpu()
    classes = torch.unique(labels).tolist()
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=gen)
    pools = {c: perm[labels[perm] == c] for c in classes}
    share, extra = divmod(n, len(classes))
    want = {c: share + (i < extra) for i, c in enumerate(classes)}
    short = {c: want[c] - len(pools[c]) for c in classes if want[c] > len(pools[c])}
    if short:
        raise ValueError(f"classes {sorted(short)} have too few rows for a balanced subset of {n}")
    picked = torch.cat([pools[c][: want[c]] for c in classes])
    return data.subset(torch.sort(picked).values)
