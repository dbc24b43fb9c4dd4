"""The phases of scripts/gpu_check.py: each `fn(check, deadline) -> dict` (see that file)."""

from __future__ import annotations

import copy
import gc
import json
import os
import platform
import sys
import tarfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAPER_METHODS = ("baseline", "retrain", "finetune", "blindspot", "amnesiac", "UNSIR", "fisher", "ssd", "lfssd",
                 "scrub", "salun", "neggrad_plus", "jit")
# The long methods, capped so three tasks fit the phase: about one epoch over Dr each.
CAPS = {"retrain": {"epochs": 1}, "finetune": {"epochs": 1}, "amnesiac": {"epochs": 1}, "salun": {"epochs": 1},
        "neggrad_plus": {"epochs": 1}, "scrub": {"epochs": 1, "msteps": 1}, "fisher": {"max_samples": 1000}}


# The device sizes, and the tiny ones the CPU test runs (the same code at a few images).
FULL = {"width": 64, "train": 60000, "test": 10000, "budget": 1.0, "train_batches": (64, 256),
        "fwd_batches": (128, 512), "chunk": 32, "base_epochs": 2, "shadows": 8, "shadow_images": 4000}
TINY = {"width": 4, "train": 200, "test": 100, "budget": 0.02, "train_batches": (8,), "fwd_batches": (16,),
        "chunk": 2, "base_epochs": 1, "shadows": 4, "shadow_images": 64}
TINY_CAPS = {"fisher": {"max_samples": 10}, "UNSIR": {"noise_steps": 2, "samples_per_class": 5},
             "jit": {"n_samples": 2}, "salun": {"epochs": 1}, "scrub": {"epochs": 1, "msteps": 1}}


def size(check: Any, name: str) -> Any:
    return (TINY if check.args.tiny else FULL)[name]


def torch_device(check: Any) -> Any:
    import torch

    return torch.device(check.args.device)


def sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def free(dev: Any) -> None:
    import torch

    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- data
def fashion_root(check: Any) -> Path | None:
    """The folder holding FashionMNIST/raw: --data itself, or the archive unpacked under --out."""
    if not check.args.data:
        return None
    path = Path(check.args.data)
    if path.is_dir():
        return path
    dest = Path(check.args.out) / "data"
    if not (dest / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file():
        with tarfile.open(path, "r:xz") as tar:
            tar.extractall(dest, filter="data") if sys.version_info >= (3, 12) else tar.extractall(dest)
    return dest


def read_idx(path: Path) -> Any:
    import torch

    raw = path.read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def fashion(check: Any, name: str, train: bool) -> Any:
    """The dataset through the harness's loader, else (no torchvision) read from the idx files;
    synthetic images of its shape when no data was given."""
    import torch

    from datasets import dataset_info, load_dataset
    from datasets.base import ImageData

    root = fashion_root(check)
    info = dataset_info(name)
    if root is None:
        n = size(check, "train" if train else "test")
        g = torch.Generator().manual_seed(int(train))
        fine = torch.randint(0, 10, (n,), generator=g)
        images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    else:
        try:
            return load_dataset(name, train=train, root=str(root))
        except Exception:  # noqa: BLE001  (torchvision missing on the device: read the files directly)
            prefix = "train" if train else "t10k"
            raw = root / "FashionMNIST" / "raw"
            images = read_idx(raw / f"{prefix}-images-idx3-ubyte").unsqueeze(1).contiguous()
            fine = read_idx(raw / f"{prefix}-labels-idx1-ubyte").long()
    if info.fine_to_coarse is None:
        return ImageData(info, images, fine)
    return ImageData(info, images, torch.tensor(info.fine_to_coarse)[fine], fine_targets=fine)


def sized(check: Any, data: Any, train: bool) -> Any:
    """All of it on the device; a class-balanced few at --tiny."""
    from datasets.base import balanced_subset

    n = size(check, "train" if train else "test")
    return balanced_subset(data, n) if len(data) > n else data


# ---------------------------------------------------------------- phases
def env(check: Any, deadline: float) -> dict[str, Any]:
    from importlib import metadata, util

    import torch

    mods: dict[str, str | None] = {}
    for m, dist in (("numpy", "numpy"), ("tqdm", "tqdm"), ("sklearn", "scikit-learn"), ("scipy", "scipy"),
                    ("torchvision", "torchvision"), ("transformers", "transformers"), ("ray", "ray")):
        try:  # found, not imported (ray and transformers take seconds to import)
            mods[m] = metadata.version(dist) if util.find_spec(m) else None
        except (ImportError, ValueError, metadata.PackageNotFoundError):
            mods[m] = "?" if util.find_spec(m) else None
    if mods["tqdm"] is None:  # progress bars only: a stand-in that iterates
        sys.path.append(str(REPO / "scripts" / "gpu_check_shims"))
        mods["tqdm"] = "shim (scripts/gpu_check_shims)"
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cpus": os.cpu_count(), "modules": mods, "device": check.args.device}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                   cudnn=torch.backends.cudnn.version())
    check.say(f"  python {out['python']}, torch {out['torch']} (CUDA {out['cuda']}), {out.get('gpu', 'no GPU')}; "
              f"modules: {', '.join(f'{k} {v}' for k, v in mods.items())}")
    return out


def throughput(check: Any, deadline: float) -> dict[str, Any]:
    """Images/s of each net per precision (and channels_last for the conv net): train at the
    method batch sizes' ends, forward; the first setting of each net also times SSD's fp32
    importances, per-sample gradients and a matmul (they do not depend on the setting). Each net
    gets an equal share of the phase. The fastest train setting per net goes to the summary's
    "rates" (what `--dry-run --rates` prices a grid with)."""
    from ssd.suite.probe import probe

    dev = torch_device(check)
    tiny = check.args.tiny
    nets = [("ResNet18", {"width": size(check, "width")}, "FashionMNIST" if tiny else "Cifar10", True),
            ("SmallViT" if tiny else "ViT", {}, "FashionMNIST" if tiny else "Cifar10", False)]
    settings = [("fp32", False), ("bf16", False), ("tf32", False), ("bf16", True), ("tf32", True)]
    if tiny:  # each code path once
        settings = [("fp32", False), ("bf16", True)]
    budget = size(check, "budget")
    out: dict[str, Any] = {}
    for i, (net, options, dataset, conv) in enumerate(nets):
        net_deadline = time.monotonic() + (deadline - time.monotonic()) / (len(nets) - i)
        best, first = None, None
        for prec, cl in settings:
            if cl and not conv:
                continue
            key = f"{net} {prec}{' channels_last' if cl else ''}"
            if time.monotonic() > net_deadline:
                out[key] = {"status": "skipped", "why": "phase time ran out"}
                continue
            extra = {} if first else {"psg_chunk": size(check, "chunk"), "flops": True,
                                      "imp_batches": size(check, "train_batches")[:1]}
            try:
                r = probe(net, dataset, device=str(dev), model_options=options, precision=prec, budget=budget,
                          train_batches=size(check, "train_batches"), fwd_batches=size(check, "fwd_batches"),
                          channels_last=cl, **extra)
            except Exception as err:  # noqa: BLE001  (e.g. no transformers for ViT: the other settings still run)
                out[key] = {"status": "error", "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
                check.say(f"  {key}: {out[key]['error']}")
                free(dev)
                continue
            first = first or r
            r.psg, r.imp, r.flops = first.psg, first.imp, first.flops
            out[key] = r.to_dict()
            top = max(r.train.items())[1]
            check.say(f"  {key}: train {', '.join(f'b{b} {v:,.0f}' for b, v in sorted(r.train.items()))} img/s; "
                      f"forward {max(r.fwd.items())[1]:,.0f}; fp32 importances {max(r.imp.items())[1]:,.0f}; "
                      f"per-sample grads {max(r.psg.items())[1]:,.0f}/s")
            if best is None or top > best[0]:
                best = (top, key, r)
            free(dev)
        if best is not None:
            check.summary["rates"][net] = {**best[2].to_dict(), "setting": best[1]}
    return out


def estimate(check: Any, deadline: float) -> dict[str, Any]:
    """The paper grid priced with the rates just measured (`--dry-run --rates`): hours on one
    device and on 8 Ray workers, per (net, method) in the JSON. --tiny: ResNet18, one seed."""
    import contextlib
    import io

    from ssd.errors import UserError
    from ssd.suite.run import run_suite

    if not check.summary["rates"]:
        return {"status": "skipped", "why": "no rates were measured"}
    check.write()  # the rates block the dry run reads
    out = Path(check.args.out) / "paper_estimate.json"
    argv = ["--suite", "paper", "--dry-run", "--rates", str(check.path), "--estimate-json", str(out),
            "--results", str(Path(check.args.out) / "paper.jsonl"), "--no-sweeps",
            "--cache-dir", str(Path(check.args.out) / "cache")]
    if check.args.tiny:
        argv += ["--nets", "ResNet18", "--seeds", "1"]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        with contextlib.suppress(UserError):  # the paper's data and ViT weights are not on the device: MISSING
            run_suite(argv)
    doc = json.loads(out.read_text())
    hours = {f"{k} workers": round(v / 3600, 2) for k, v in doc["totals_s"].items()}
    check.say(f"  the paper grid at these rates: {hours['1 workers']} h on one device, "
              f"{hours.get('8 workers', float('nan'))} h on 8 Ray workers ({len(doc['runs'])} runs)")
    return {"hours": hours, "runs": len(doc["runs"]), "file": str(out),
            "lines": [line for line in text.getvalue().splitlines() if line.startswith(("estimate", "probe"))]}


def count_syncs(fn: Callable[[], None]) -> int:
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def syncs(check: Any, deadline: float) -> dict[str, Any]:
    """Host syncs per step in the hot loops: counted over n and 2n batches, so the fixed ones
    (set-up, the end of an epoch) cancel out."""
    dev = torch_device(check)
    from datasets import dataset_info
    from models import build_model
    from ssd.importance import compute_importances
    from ssd.metrics import predict_logits
    from ssd.schedules import load_schedule
    from ssd.suite.probe import synthetic
    from ssd.train import fit

    info = dataset_info("Cifar10")
    b = size(check, "train_batches")[0]
    model = build_model("ResNet18", info, width=size(check, "width")).to(dev)
    data = synthetic(info, b * 30, dev)
    sched = load_schedule("ResNet18", "Cifar10", epochs=1, batch_size=b)
    loops = {"training (fit, progress on)": lambda d: fit(model, d, sched, progress=True),
             "SSD importances": lambda d: compute_importances(model, d, mode="batch", batch_size=b, device=dev),
             "evaluation (predict_logits)": lambda d: predict_logits(model, d, batch_size=b)}
    if dev.type != "cuda":  # the loops run once (so this phase cannot rot), uncounted
        for loop in loops.values():
            loop(data.subset(range(2 * b)))
        return {"status": "skipped", "why": "torch.cuda.set_sync_debug_mode counts CUDA syncs only (loops ran)"}
    out = {}
    for name, loop in loops.items():
        if time.monotonic() > deadline:
            out[name] = "skipped: phase time ran out"
            continue
        small, big = data.subset(range(b * 10)), data.subset(range(b * 30))
        loop(small)  # warm-up
        a, b = count_syncs(lambda f=loop, d=small: f(d)), count_syncs(lambda f=loop, d=big: f(d))
        out[name] = {"syncs_10_batches": a, "syncs_30_batches": b, "per_step": (b - a) / 20}
        check.say(f"  {name}: {(b - a) / 20:.2f} syncs per step ({a} over 10 batches, {b} over 30)")
    return out


def ssd_ratio(check: Any, deadline: float) -> dict[str, Any]:
    """SSD's time (importances on D and Df, dampening) ÷ one forward+backward over D, with D's
    importances computed (cold) and from the cache (cached)."""
    import shutil

    import torch
    import torch.nn.functional as F

    from models import build_model
    from ssd.methods.registry import METHODS
    from ssd.splits import make_splits

    dev = torch_device(check)
    train = sized(check, fashion(check, "FashionMNIST", True), True).to(dev)
    test = sized(check, fashion(check, "FashionMNIST", False), False).to(dev)
    torch.manual_seed(0)
    model = build_model("ResNet18", train.info, width=size(check, "width")).to(dev).eval()
    from ssd.precision import precision_scope

    sync(dev)
    t0 = time.perf_counter()
    with precision_scope(check.args.precision, dev):
        for x, y in train.batches(64):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
    sync(dev)
    fb = time.perf_counter() - t0
    cache = Path(check.args.out) / "ssd_cache"
    shutil.rmtree(cache, ignore_errors=True)
    splits = make_splits("full_class", train, test, forget_class=1, seed=0,
                         context={"cache_dir": str(cache), "checkpoint_sha256": f"gpu-check-{time.time()}"})
    entry = METHODS.get("ssd")
    out: dict[str, Any] = {"images": len(train), "forward_backward_s": fb}
    for kind in ("cold", "cached"):
        m = copy.deepcopy(model)
        sync(dev)
        t0 = time.perf_counter()
        with precision_scope(check.args.precision, dev):  # as run_one
            entry.fn(m, splits, entry.config(device=str(dev)))
        sync(dev)
        out[f"ssd_{kind}_s"] = time.perf_counter() - t0
        out[f"ratio_{kind}"] = out[f"ssd_{kind}_s"] / fb
    check.say(f"  one forward+backward over {len(train):,} images: {fb:.2f} s; SSD cold {out['ssd_cold_s']:.2f} s "
              f"(×{out['ratio_cold']:.2f}), cached {out['ssd_cached_s']:.2f} s (×{out['ratio_cached']:.2f})")
    return out


from gpu_check_tasks import ray_phase, tasks, ulira  # noqa: E402

PHASES = [("env", env), ("throughput", throughput), ("estimate", estimate), ("syncs", syncs), ("ssd_ratio", ssd_ratio), ("tasks", tasks),
          ("ulira", ulira), ("ray", ray_phase)]
