"""The longer phases of scripts/gpu_check.py: the three tasks, U-LiRA's ensemble, Ray."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from gpu_check_phases import (
    CAPS,
    PAPER_METHODS,
    TINY_CAPS,
    fashion,
    free,
    size,
    sized,
    sync,
    torch_device,
)

from ssd.precision import precision_scope

TASKS = (("full_class", "FashionMNIST", {"forget_class": "Trouser"}),
         ("sub_class", "FashionMNISTCoarse", {"forget_class": "Pullover"}),
         ("random", "FashionMNIST", {"n_forget": 100}))


def base_model(check: Any, dataset: str, train: Any, test: Any) -> tuple[Any, float, float]:
    """ResNet18 (width 64; 8 at --tiny) fitted for a short schedule: (model, seconds, test accuracy)."""
    import torch

    from models import build_model
    from ssd.metrics import accuracy, predict_logits
    from ssd.schedules import load_schedule
    from ssd.train import fit

    dev = torch_device(check)
    torch.manual_seed(0)
    model = build_model("ResNet18", train.info, width=size(check, "width")).to(dev)
    sync(dev)
    t0 = time.perf_counter()
    with precision_scope(check.args.precision, dev):
        fit(model, train, load_schedule("ResNet18", dataset, epochs=size(check, "base_epochs"), batch_size=128),
            progress=False)
    sync(dev)
    return model.eval(), time.perf_counter() - t0, accuracy(predict_logits(model, test), test.targets)


def tasks(check: Any, deadline: float) -> dict[str, Any]:
    """ResNet18 on Fashion-MNIST (all 60,000 images; --tiny: 1,000) through the three tasks
    with the paper's methods, the long ones capped (CAPS): seconds and Df/Dr accuracies."""
    from datasets import resolve_class
    from models import build_model
    from ssd.methods.registry import METHODS
    from ssd.metrics import accuracy, predict_logits
    from ssd.splits import make_splits

    dev = torch_device(check)
    out: dict[str, Any] = {"caps": CAPS}
    for task, dataset, kw in TASKS:
        if time.monotonic() > deadline:
            out[task] = "skipped: phase time ran out"
            continue
        train = sized(check, fashion(check, dataset, True), True).to(dev)
        test = sized(check, fashion(check, dataset, False), False).to(dev)
        model, fit_s, acc = base_model(check, dataset, train, test)
        info = train.info
        if "forget_class" in kw:
            names, aliases = ((info.fine_classes, info.fine_aliases) if task == "sub_class" else (info.classes, info.aliases))
            kw = {"forget_class": resolve_class(kw["forget_class"], names, aliases)}
        options = {"width": size(check, "width")}
        splits = make_splits(task, train, test, seed=0, model_factory=lambda i=info, o=options: build_model("ResNet18", i, **o).to(dev),
                             context={"net": "ResNet18", "dataset": dataset, "cache_dir": str(Path(check.args.out) / "cache")},
                             **kw)
        rows: dict[str, Any] = {"base_fit_s": fit_s, "base_test_acc": acc, "n_train": len(train)}
        check.say(f"  {task}: base model {fit_s:.1f} s, test accuracy {acc:.1f} %")
        for method in PAPER_METHODS:
            if time.monotonic() > deadline:
                rows[method] = "skipped: phase time ran out"
                continue
            entry = METHODS.get(method)
            if task not in entry.tasks:
                continue
            caps = {**CAPS.get(method, {}), **(TINY_CAPS.get(method, {}) if check.args.tiny else {})}
            cfg = entry.config(device=str(dev), **caps)
            m = copy.deepcopy(model)
            sync(dev)
            t0 = time.perf_counter()
            try:
                with precision_scope(check.args.precision, dev):  # as run_one: the run's precision
                    m = entry.fn(m, splits, cfg)
            except Exception as err:  # noqa: BLE001  (one method's failure is a finding, not the end)
                rows[method] = f"error: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
                check.say(f"    {method}: {rows[method]}")
                continue
            sync(dev)
            secs = time.perf_counter() - t0
            df = accuracy(predict_logits(m, splits.forget), splits.forget.targets)
            dr = accuracy(predict_logits(m, splits.retain_test), splits.retain_test.targets)
            rows[method] = {"seconds": secs, "Df": df, "DrTest": dr}
            check.say(f"    {method:13} {secs:7.2f} s  Df {df:5.1f}  DrTest {dr:5.1f}")
            del m
        out[task] = rows
        free(dev)
    return out


def ulira(check: Any, deadline: float) -> dict[str, Any]:
    """K shadow ResNets trained as one vmapped ensemble against K plain fits, one epoch each."""
    import torch

    from models import build_model
    from ssd.privacy.ensemble import Ensemble, fit_ensemble
    from ssd.schedules import load_schedule
    from ssd.train import fit

    dev = torch_device(check)
    k = size(check, "shadows")
    data = fashion(check, "FashionMNIST", True)
    data = data.subset(range(size(check, "shadow_images"))).to(dev)
    width = size(check, "width")
    sched = load_schedule("ResNet18", "FashionMNIST", epochs=1)
    g = torch.Generator().manual_seed(0)
    members = torch.zeros(k, len(data), dtype=torch.bool)  # exact halves, as the audit's
    for i in range(k):
        members[i, torch.randperm(len(data), generator=g)[: len(data) // 2]] = True

    def factory() -> Any:
        return build_model("ResNet18", data.info, width=width)

    sync(dev)
    t0 = time.perf_counter()
    fit_ensemble(Ensemble(factory, k, seed=0, device=dev), data, members.to(dev), sched, progress=False)
    sync(dev)
    ens_s = time.perf_counter() - t0
    loop_s, done = 0.0, 0
    for i in range(k):
        if time.monotonic() > deadline:
            break
        m = factory().to(dev)
        sync(dev)
        t0 = time.perf_counter()
        fit(m, data.subset(members[i].nonzero().flatten()), sched, progress=False)
        sync(dev)
        loop_s += time.perf_counter() - t0
        done += 1
    loop_est = loop_s * k / max(done, 1)
    check.say(f"  {k} shadows, one epoch on halves of {len(data):,}: ensemble {ens_s:.2f} s, loop {loop_est:.2f} s "
              f"({done} of {k} timed) → ×{loop_est / ens_s:.2f}")
    return {"shadows": k, "images": len(data), "ensemble_s": ens_s, "loop_s": loop_est, "loop_timed": done,
            "speedup": loop_est / ens_s}


def ray_phase(check: Any, deadline: float) -> dict[str, Any]:
    """Two runs sharing one GPU through the harness's Ray backend (helper F's; `--gpus-per-run
    0.5`): both ran, at the same time, on the device Ray assigned each; their throughput
    against one run alone."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"status": "skipped", "why": "ray is not importable on this machine"}
    from ssd.backends.base import Job
    from ssd.backends.ray_backend import RayBackend
    from ssd.suite.probe import ProbeJob, probe_job

    dev = torch_device(check)
    cuda = dev.type == "cuda"
    payload = ProbeJob("ResNet18", "Cifar10", "cuda" if cuda else "cpu", {"width": size(check, "width")},
                       2 * size(check, "budget"))

    def jobs(n: int, tag: str) -> list[Any]:
        return [Job(key=f"{tag}{i}", label=f"probe {tag}{i}", cell=f"probe {tag}", fn=probe_job, payload=payload,
                    device=payload.device) for i in range(n)]

    backend = RayBackend(cache_dir=str(Path(check.args.out) / "cache"), cpus_per_run=1.0, gpus_per_run=0.5,
                         num_cpus=4)
    try:
        def rows(batch: list[Any]) -> list[dict[str, Any]]:
            got = []
            for kind, job, outcome in backend.run(batch):
                if kind == "end":
                    if outcome.status != "done":
                        raise RuntimeError(f"{job.label}: {outcome.status}: {outcome.error}")
                    got += outcome.rows
            return got

        alone = rows(jobs(1, "alone"))[0]
        pair = rows(jobs(2, "pair"))
    finally:
        backend.close()
    overlap = min(p["end"] for p in pair) > max(p["start"] for p in pair)
    total = sum(p["train_img_s"] for p in pair)
    check.say(f"  alone {alone['train_img_s']:,.0f} img/s; two at 0.5 GPU: {total:,.0f} img/s together, "
              f"overlapping: {overlap}, devices {[(p['CUDA_VISIBLE_DEVICES'], p['current_device']) for p in pair]}")
    return {"alone": alone, "pair": pair, "overlap": overlap, "pair_total_img_s": total,
            "gain": total / alone["train_img_s"]}
