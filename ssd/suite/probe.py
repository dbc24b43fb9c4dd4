"""A short throughput probe: images per second of one network on one device, per kind of pass.

The probe runs the harness's own hot loop on synthetic images of the dataset's shape — the
real `ImageData.batches` pipeline (normalisation, augmentation, index handling, so the host
syncs it has are paid as a run pays them), a real SGD step, `predict_logits`-style
evaluation, and `torch.func` per-sample gradients — for a few batches each, after one
warm-up step. A batch whose first step would take longer than the budget is shrunk (a ViT
on a CPU), so the probe stays in seconds on any device. `--no-probe` skips it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssd.precision import importance_scope, memory_format, precision_scope

TRAIN_BATCHES = (64, 256)  # train rates between are interpolated in log(batch)
FWD_BATCHES = (128, 512)
PSG_CHUNK = 32


@dataclass
class Rates:
    """Images per second per kind and batch size, plus the seconds a run spends on building
    and copying the model (its fixed overhead)."""

    net: str
    device: str
    train: dict[int, float] = field(default_factory=dict)
    fwd: dict[int, float] = field(default_factory=dict)
    psg: dict[int, float] = field(default_factory=dict)
    imp: dict[int, float] = field(default_factory=dict)  # SSD's importance passes (true float32)
    build_s: float = 0.0
    copy_s: float = 0.0
    probe_s: float = 0.0
    flops: float = 0.0  # fp32 matmul FLOP/s (NTK's kernel), when probed
    params: int = 0

    def rate(self, kind: str, batch: int) -> float:
        if kind == "flop":
            return self.flops or 1e10  # not probed: 10 GFLOP/s
        table = {"train": self.train, "grad": self.train, "imp": self.imp, "fwd": self.fwd, "psg": self.psg}[kind]
        if not table and kind in ("psg", "imp"):  # not probed: at least a train image's cost
            table = self.train
        return interpolate(table, batch)

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net, "device": self.device, "train": self.train, "fwd": self.fwd, "psg": self.psg, "imp": self.imp,
                "build_s": self.build_s, "copy_s": self.copy_s, "probe_s": self.probe_s, "flops": self.flops,
                "params": self.params}


def interpolate(table: dict[int, float], batch: int) -> float:
    """Rate at `batch` from measured (batch, rate) points: linear in log(batch), clamped."""
    if not table:
        raise ValueError("no measured rate")
    pts = sorted(table.items())
    if batch <= pts[0][0]:
        return pts[0][1]
    if batch >= pts[-1][0]:
        return pts[-1][1]
    for (b0, r0), (b1, r1) in zip(pts, pts[1:], strict=False):
        if b0 <= batch <= b1:
            t = (math.log(batch) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return r0 + t * (r1 - r0)
    return pts[-1][1]


def synthetic(info: Any, n: int, device: torch.device) -> Any:
    from datasets.base import ImageData

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), dtype=torch.uint8, generator=g)
    targets = torch.randint(0, info.num_classes, (n,), generator=g)
    return ImageData(info=info, images=images, targets=targets).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[int], None], batch: int, device: torch.device, budget: float,
                max_steps: int = 10) -> tuple[int, float]:
    """(batch used, images per second). The batch grows from 2 by doubling up to `batch`
    while the next step would stay under half the `budget` (so a ViT on a CPU is timed at a
    few images; a per-image rate from 2 images overstates a small net's cost several times
    over: measured on this CPU, docs/gpu.md), then one warm-up step at that batch and timed
    steps until `budget` seconds (at least 2, at most `max_steps`)."""
    used = min(batch, 2)
    step(used)  # the first call pays for initialisation, not for the images
    while used < batch:
        sync(device)
        t0 = time.perf_counter()
        step(used)
        sync(device)
        nxt = min(batch, 2 * used)
        if (time.perf_counter() - t0) * nxt / used > budget / 2:
            break
        used = nxt
    step(used)  # warm-up at the batch used (cudnn autotuning, allocator)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < 2 or (n < max_steps and time.perf_counter() - t0 < budget):
        step(used)
        n += 1
    sync(device)
    return used, n * used / (time.perf_counter() - t0)


def _batches_forever(data: Any, batch: int, *, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    from datasets.base import device_generator

    g = device_generator(0, data.device)  # drawn where the data is, as the harness's loops do
    while True:
        yield from data.batches(batch, shuffle=True, generator=g, augment=augment)


def probe(net: str, dataset: str, *, device: str = "cpu", model_options: dict[str, Any] | None = None,
          precision: str | None = None, budget: float = 1.0, train_batches: tuple[int, ...] = TRAIN_BATCHES,
          fwd_batches: tuple[int, ...] = FWD_BATCHES, psg_chunk: int | None = None,
          pretrained: str | None = None, channels_last: bool = False, flops: bool = False,
          imp_batches: tuple[int, ...] = ()) -> Rates:
    """Measure `net`'s rates on `device` (randomly initialised; weights do not change the cost).
    `precision` and `channels_last` as a run has them (ssd/precision.py: None is tf32 on CUDA)."""
    from datasets import dataset_info
    from models import build_model

    start = time.perf_counter()
    dev = torch.device(device)
    info = dataset_info(dataset)
    t0 = time.perf_counter()
    model = memory_format(build_model(net, info, pretrained=pretrained, **(model_options or {})).to(dev),
                          channels_last, dev)
    sync(dev)
    rates = Rates(net=net, device=device, build_s=time.perf_counter() - t0)
    t0 = time.perf_counter()
    copy.deepcopy(model)
    sync(dev)
    rates.copy_s = time.perf_counter() - t0
    data = synthetic(info, max([*train_batches, *fwd_batches, *imp_batches]), dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)  # the cost of a step, not its result
    with precision_scope(precision, dev):  # the run's TF32/cudnn switches and bf16 autocast (ssd/precision.py)
        _measure(rates, model, opt, data, dev, info.augment != "none", budget, train_batches, fwd_batches, psg_chunk,
                 imp_batches)
    if flops:
        rates.flops = matmul_flops(dev, budget)
    rates.params = sum(p.numel() for p in model.parameters())
    rates.probe_s = time.perf_counter() - start
    return rates


def _measure(rates: Rates, model: nn.Module, opt: torch.optim.Optimizer, data: Any, dev: torch.device, augment: bool,
             budget: float, train_batches: tuple[int, ...], fwd_batches: tuple[int, ...], psg_chunk: int | None,
             imp_batches: tuple[int, ...]) -> None:
    for b in train_batches:
        stream = _batches_forever(data, b, augment=augment)
        model.train()

        def train_step(n: int, stream: Iterator[Any] = stream) -> None:
            x, y = next(stream)
            loss = F.cross_entropy(model(x[:n]), y[:n])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        used, r = timed_steps(train_step, b, dev, budget)
        rates.train[used] = r
    model.eval()
    for b in fwd_batches:
        stream = _batches_forever(data, b, augment=False)

        def fwd_step(n: int, stream: Iterator[Any] = stream) -> None:
            x, _ = next(stream)
            with torch.no_grad():
                model(x[:n]).float()  # predict_logits keeps logits on the device until the end

        used, r = timed_steps(fwd_step, b, dev, budget)
        rates.fwd[used] = r
    for b in imp_batches:  # SSD's importances: forward + backward in true float32, eval mode, no step
        stream = _batches_forever(data, b, augment=False)

        def imp_step(n: int, stream: Iterator[Any] = stream) -> None:
            x, y = next(stream)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[:n]), y[:n]).backward()

        with importance_scope(dev):
            used, r = timed_steps(imp_step, b, dev, budget)
        rates.imp[used] = r
    if psg_chunk:  # per-sample gradients in float32, as SSD's importances (vmap + autocast fails in CPU batch norm)
        with importance_scope(dev):
            rates.psg[psg_chunk] = _psg_rate(model, data, psg_chunk, dev, budget)


def _psg_rate(model: nn.Module, data: Any, chunk: int, dev: torch.device, budget: float) -> float:
    """Per-sample gradients per second, squared and summed as Fisher's diagonal does."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def sample_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    stream = _batches_forever(data, chunk, augment=False)

    def step(n: int) -> None:
        x, y = next(stream)
        grads = per_sample(params, x[:n], y[:n])
        for k, g in grads.items():
            acc[k] += g.pow(2).sum(0)

    return timed_steps(step, chunk, dev, budget)[1]


def matmul_flops(dev: torch.device, budget: float) -> float:
    """fp32 FLOP/s of a square matmul (512 on a CPU, 4096 on a GPU)."""
    n = 4096 if dev.type == "cuda" else 512
    a = torch.randn(n, n, device=dev)

    def step(_: int) -> None:
        a @ a

    return timed_steps(step, 1, dev, budget)[1] * 2 * n**3


@dataclass(frozen=True)
class ProbeJob:
    """A probe as a backend job's payload (scripts/gpu_check.py's Ray phase runs two at
    `--gpus-per-run 0.5` through the Ray backend: each on the device Ray assigned it)."""

    net: str
    dataset: str
    device: str
    options: dict[str, Any] = field(default_factory=dict)
    budget: float = 1.0


def probe_job(session: Any, p: ProbeJob) -> list[dict[str, Any]]:
    """Backend job body: one row with the device the job ran on and its training rate."""
    import os

    start = time.time()
    r = probe(p.net, p.dataset, device=p.device, model_options=p.options, budget=p.budget, train_batches=(128,),
              fwd_batches=(512,))
    cuda = torch.device(p.device).type == "cuda"
    return [{"device": p.device, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
             "current_device": torch.cuda.current_device() if cuda else None, "start": start, "end": time.time(),
             "train_img_s": max(r.train.values())}]
