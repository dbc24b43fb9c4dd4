"""`--dry-run`'s cost estimate: the grid's runs priced by the probe (ssd.suite.cost, ssd.suite.probe).

Prints, per (net, method), the runs, the seconds one run takes and their total; the
checkpoints to pretrain, the sweeps and the U-LiRA audits; and the whole grid on one device
and on N workers (the Ray backend, one run per device at a time).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ssd.suite.cost import (
    EVAL_BATCH,
    KNOWN_SIZES,
    RUN_OVERHEAD_S,
    RunCost,
    Sizes,
    Work,
    eval_work,
    hours,
    method_work,
    price,
    schedule,
)
from ssd.suite.probe import Rates

RatesFor = Callable[[str, str, dict[str, Any], set[int], set[int], int | None, bool, set[int]], Rates]


def base_sizes(dataset: str, data_root: str | None) -> tuple[int, int]:
    if dataset in KNOWN_SIZES:
        return KNOWN_SIZES[dataset]
    from datasets import load_dataset

    return len(load_dataset(dataset, train=True, root=data_root)), len(load_dataset(dataset, train=False, root=data_root))


def checkpoint_facts(suite: dict[str, Any], spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model options, data subset) of the run's checkpoint: its metadata when it exists,
    else what the suite will pretrain it with."""
    from ssd.suite.checkpoints import net_options

    if Path(spec.weight_path).is_file():
        from ssd.checkpoint import check_meta, model_options, read_meta

        meta = read_meta(spec.weight_path)
        check_meta(spec.weight_path, meta)
        return model_options(meta), dict(meta.get("data_subset") or {})
    return net_options(suite, spec.net), {"train": suite.get("train_subset"), "test": suite.get("test_subset")}


def spec_sizes(suite: dict[str, Any], spec: Any) -> Sizes:
    from datasets import dataset_info

    info = dataset_info(spec.dataset)
    n_train, n_test = base_sizes(spec.dataset, spec.data_root)
    subset = checkpoint_facts(suite, spec)[1]
    n_train, n_test = min(n_train, subset.get("train") or n_train), min(n_test, subset.get("test") or n_test)
    fine = len(info.fine_classes) if info.fine_classes else None
    return Sizes.of(spec.task, n_train, n_test, info.num_classes, fine, spec.n_forget, spec.retain_eval_size)


def ssd_cache_key(spec: Any, cfg: Any) -> tuple[Any, ...] | None:
    """What D's cached importances depend on (ssd_methods.ssd_importances' key); None: not SSD."""
    if not hasattr(cfg, "mode") or not hasattr(cfg, "reference"):
        return None
    from ssd.methods.alpha_select import effective_reference
    from ssd.methods.ssd_methods import effective_order

    mode = "lf" if spec.method == "lfssd" else cfg.mode
    return (spec.weight_path, mode, effective_reference(cfg), effective_order(cfg), cfg.seed,
            None if mode == "sample" else cfg.batch_size, cfg.params, cfg.exclude_norm)


def ulira_work(spec: Any, cfg: Any, z: Sizes, method: str, first: bool) -> list[Work]:
    """U-LiRA (ssd/privacy/audit.py): K shadows and K references trained once per cell on
    halves of the pool (`first`), then K shadows unlearned with the method and scored."""
    from ssd.methods.registry import METHODS
    from ssd.privacy.audit import UliraSettings
    from ssd.schedules import load_schedule

    st = UliraSettings.from_dict(spec.ulira, dict(spec.ulira_settings))
    pool = st.pool or min(2 * z.train, 2000)
    half = pool // 2
    sched = load_schedule(spec.net, spec.dataset, epochs=st.epochs)
    if spec.task == "random":
        cand = st.candidates or 2 * z.forget
    else:  # the class's share of the pool (ssd/privacy/audit.py: every class image in it)
        cand = max(2, round(pool * z.forget / max(z.train, 1)))
    zs = dataclasses.replace(z, train=half, forget=cand // 2, retain=half - cand // 2,
                             retain_eval=min(z.retain_eval, half - cand // 2))
    out = [Work("train", 2 * st.shadows * sched.epochs * half, sched.batch_size, "U-LiRA shadows",
                 2 * st.shadows * sched.epochs)] if first else []
    shadow_cfg = cfg
    if method == "retrain":
        shadow_cfg = dataclasses.replace(cfg, epochs=sched.epochs)
    METHODS.get(method)
    for w in method_work(method, shadow_cfg, zs, task=spec.task, net=spec.net, dataset=spec.dataset):
        out.append(dataclasses.replace(w, images=w.images * st.shadows, passes=w.passes * st.shadows,
                                       what=f"U-LiRA: {w.what}"))
    out.append(Work("fwd", 2 * st.shadows * cand, EVAL_BATCH, "U-LiRA scoring"))
    return out


_PARAMS: dict[tuple[Any, ...], int] = {}


def param_count(suite: dict[str, Any], spec: Any) -> int:
    """The run's model's parameter count (built once per net, dataset and options, on the CPU)."""
    from datasets import dataset_info
    from models import build_model

    options = checkpoint_facts(suite, spec)[0]
    key = (spec.net, spec.dataset, tuple(sorted(options.items())))
    if key not in _PARAMS:
        _PARAMS[key] = sum(p.numel() for p in build_model(spec.net, dataset_info(spec.dataset), **options).parameters())
    return _PARAMS[key]


def grid_work(suite: dict[str, Any], grid: Sequence[Any], cfgs: Sequence[Any]) -> list[tuple[Any, list[Work]]]:
    """Each run's work, in grid order (D's importances paid by the first SSD run of a key)."""
    from ssd.experiment import METHOD_ALIASES

    seen: set[tuple[Any, ...]] = set()
    audited: set[tuple[Any, ...]] = set()
    unknown: set[str] = set()
    out = []
    for spec, cfg in zip(grid, cfgs, strict=True):
        method = METHOD_ALIASES.get(spec.method, spec.method)
        z = spec_sizes(suite, spec)
        key = ssd_cache_key(spec, cfg)
        try:
            work = method_work(method, cfg, z, task=spec.task, net=spec.net, dataset=spec.dataset,
                               d_cached=key is not None and key in seen,
                               params=param_count(suite, spec) if method == "ntk" else 0)
        except KeyError:  # a method added without its passes in ssd/suite/cost.py (tests/test_cost.py fails)
            if method not in unknown:
                print(f"note: no cost model for method {method!r}: its runs are priced as evaluation only")
            unknown.add(method)
            work = []
        if key is not None:
            seen.add(key)
        work += eval_work(z, spec.task)
        if spec.ulira:
            cell = (spec.net, spec.dataset, spec.task, spec.seed, spec.n_forget)
            work += ulira_work(spec, cfg, z, method, cell not in audited)
            audited.add(cell)
        out.append((spec, work))
    return out


def pretrain_work(suite: dict[str, Any], grid: Sequence[Any]) -> list[tuple[Any, list[Work]]]:
    """Missing checkpoints: the pretraining schedule on D, with a test evaluation each epoch."""
    from ssd.schedules import load_schedule

    out = []
    for spec in {(s.net, s.dataset, s.weight_path): s for s in grid}.values():
        if Path(spec.weight_path).is_file():
            continue
        z = spec_sizes(suite, spec)
        sched = load_schedule(spec.net, spec.dataset, epochs=suite.get("pretrain_epochs"))
        out.append((spec, [Work("train", sched.epochs * z.train, sched.batch_size, "pretraining", sched.epochs),
                           Work("fwd", sched.epochs * z.test, EVAL_BATCH, "per-epoch test", sched.epochs),
                           Work("fwd", z.train, EVAL_BATCH, "train accuracy")]))
    return out


def probe_key(suite: dict[str, Any], spec: Any) -> tuple[Any, ...]:
    from datasets import dataset_info

    info = dataset_info(spec.dataset)
    options = checkpoint_facts(suite, spec)[0]
    return spec.net, info.channels, info.image_size, tuple(sorted(options.items()))


def measure(suite: dict[str, Any], priced: Sequence[tuple[Any, list[Work]]], device: str,
            rates_for: RatesFor) -> dict[tuple[Any, ...], Rates]:
    """One probe per (net, input shape, options), at the batch sizes the work uses (their min and max)."""
    needs: dict[tuple[Any, ...], tuple[Any, dict[str, set[int]]]] = {}
    for spec, work in priced:
        _, kinds = needs.setdefault(probe_key(suite, spec), (spec, {"train": set(), "fwd": set(), "psg": set(),
                                                                     "flop": set(), "imp": set()}))
        for w in work:
            kinds["train" if w.kind == "grad" else w.kind].add(w.effective_batch)
    out = {}
    for k, (spec, kinds) in needs.items():
        options = checkpoint_facts(suite, spec)[0]
        ends = lambda s: {min(s), max(s)} if s else set()  # noqa: E731
        out[k] = rates_for(spec.net, spec.dataset, options, ends(kinds["train"]) or {64},
                           ends(kinds["fwd"]) or {EVAL_BATCH}, min(kinds["psg"]) if kinds["psg"] else None,
                           bool(kinds["flop"]), ends(kinds["imp"]))
    return out


def estimate(suite: dict[str, Any], grid: Sequence[Any], cfgs: Sequence[Any], rates_for: RatesFor,
             *, sweeps: Sequence[tuple[Any, list[Work]]] = ()) -> dict[str, Any]:
    """Every run's seconds and the totals (see `print_estimate`)."""
    from ssd.backends.jobs import _split_of
    from ssd.experiment import METHOD_ALIASES

    priced = grid_work(suite, grid, cfgs)
    extra = pretrain_work(suite, grid)
    device = grid[0].device if grid else "cpu"
    rates = measure(suite, [*priced, *extra, *sweeps], device, rates_for)

    def work_s(spec: Any, work: list[Work]) -> float:
        return price(work, rates[probe_key(suite, spec)].rate)

    def seconds(spec: Any, work: list[Work]) -> float:
        r = rates[probe_key(suite, spec)]
        return work_s(spec, work) + RUN_OVERHEAD_S + r.build_s + r.copy_s

    runs = [RunCost(s.net, s.label or s.method, s.task, s.dataset, seconds(s, w), _split_of(s),
                    METHOD_ALIASES.get(s.method, s.method) == "retrain", w, work_s(s, w)) for s, w in priced]
    pre = sum(seconds(s, w) for s, w in extra)
    sw = sum(seconds(s, w) for s, w in sweeps)
    return {"runs": runs, "pretrain_s": pre, "sweeps_s": sw, "rates": rates}


def print_estimate(est: dict[str, Any], workers: Sequence[int], *, note: str = "") -> dict[str, float]:
    """The table and totals; returns {"1": seconds, "N": seconds, …} (pretraining and sweeps
    run before and after the grid, on one device)."""
    runs: list[RunCost] = est["runs"]
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in runs:
        by[(r.net, r.method)].append(r.seconds)
    for r in est["rates"].values():
        tr = ", ".join(f"b{b} {v:,.0f}" for b, v in sorted(r.train.items()))
        fw = ", ".join(f"b{b} {v:,.0f}" for b, v in sorted(r.fwd.items()))
        ps = ", ".join(f"chunk {b} {v:,.0f}" for b, v in sorted(r.psg.items()))
        im = ", ".join(f"b{b} {v:,.0f}" for b, v in sorted(r.imp.items()))
        print(f"probe {r.net} on {r.device}: train {tr} img/s; forward {fw} img/s"
              f"{'; per-sample grads ' + ps + '/s' if ps else ''}{'; importances (fp32) ' + im + ' img/s' if im else ''}; build {r.build_s:.2f} s ({r.probe_s:.1f} s probe)")
    print(f"{'net':9} {'method':16} {'runs':>5} {'per run':>10} {'total':>10}")
    for (net, method), secs in by.items():
        print(f"{net:9} {method:16} {len(secs):5d} {hours(sum(secs) / len(secs)):>10} {hours(sum(secs)):>10}")
    fixed = est["pretrain_s"] + est["sweeps_s"]
    if est["pretrain_s"]:
        print(f"pretraining missing checkpoints: {hours(est['pretrain_s'])}")
    if est["sweeps_s"]:
        print(f"sweeps: {hours(est['sweeps_s'])}")
    totals = {}
    for n in workers:
        totals[str(n)] = schedule(runs, n) + fixed
        where = "one device" if n == 1 else f"{n} Ray workers (one device each)"
        print(f"estimate on {where}: {hours(totals[str(n)])}{note}")
    return totals


def sweep_work(suite: dict[str, Any], args: Any, device: str) -> list[tuple[Any, list[Work]]]:
    """The suite's [[sweeps]]: SSD-like importances once per sweep (D once per checkpoint and
    mode), then one dampening and one evaluation per point."""
    from ssd.experiment import RunSpec, method_config
    from ssd.suite.checkpoints import checkpoint_for
    from ssd.suite.grid import suite_seeds
    from ssd.sweep import DEFAULT_METHODS

    seed = suite_seeds(suite, args)[0]
    seen: set[tuple[Any, ...]] = set()
    out = []
    for sw in suite.get("sweeps", []):
        net = sw.get("net", (suite.get("nets") or ["ConvNet"])[0])
        spec = RunSpec(task=sw["task"], net=net, dataset=sw["dataset"], weight_path=checkpoint_for(suite, net, sw["dataset"]),
                       method="ssd", forget_class=sw.get("forget_class"), n_forget=sw.get("n_forget", 100), seed=seed,
                       device=device, data_root=args.data_root, retain_eval_size=suite.get("retain_eval_size", 5000))
        z = spec_sizes(suite, spec)
        work: list[Work] = []
        points = 1  # the baseline row
        for m in sw.get("methods", DEFAULT_METHODS):
            if m in ("ssd", "lfssd"):
                cfg = method_config(m, dataclasses.replace(spec, method=m))
                key = ssd_cache_key(dataclasses.replace(spec, method=m), cfg)
                work += method_work(m, cfg, z, task=spec.task, net=net, dataset=spec.dataset, d_cached=key in seen)
                seen.add(key)
                points += len(sw.get("alphas", [10.0])) * len(sw.get("lambdas", [1.0]))
            else:
                points += len(sw.get("baseline_alphas") or sw.get("alphas", [10.0]))
        out.append((spec, work + [dataclasses.replace(w, images=w.images * points, passes=w.passes * points)
                                  for w in eval_work(z, spec.task, references=False)]))
    return out


def rates_from_file(path: str | Path) -> dict[str, Rates]:
    """Rates per net from a JSON file ({net: Rates.to_dict()}; scripts/gpu_check.py writes one
    under "rates"), to price a grid with another device's numbers."""
    import json

    from ssd.errors import UserError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"--rates {path}: not a readable JSON file ({err})") from None
    data = data.get("rates", data)
    out = {}
    for net, d in data.items():
        if not isinstance(d, dict):
            continue
        conv = {k: {int(b): float(v) for b, v in d.get(k, {}).items()} for k in ("train", "fwd", "psg", "imp")}
        out[net] = Rates(net=net, device=str(d.get("device", path)), build_s=float(d.get("build_s", 0.0)),
                         copy_s=float(d.get("copy_s", 0.0)), flops=float(d.get("flops", 0.0)),
                         params=int(d.get("params", 0)), **conv)
    return out


def dry_run_estimate(suite: dict[str, Any], grid: Sequence[Any], cfgs: Sequence[Any], args: Any) -> dict[str, float]:
    """What `--dry-run` prints after the needs: the probe on the grid's device (or `--rates`)."""
    from ssd.errors import UserError
    from ssd.suite.probe import probe

    device = grid[0].device
    given = rates_from_file(args.rates) if args.rates else None
    precision, channels_last = grid[0].precision, grid[0].channels_last  # the suite's (ssd/precision.py)

    def rates_for(net: str, dataset: str, options: dict[str, Any], train: set[int], fwd: set[int],
                  psg: int | None, flops: bool, imp: set[int]) -> Rates:
        if given is not None:
            if net not in given:
                raise UserError(f"--rates {args.rates} has no rates for {net} (it has {', '.join(given) or 'none'})")
            return given[net]
        return probe(net, dataset, device=device, model_options=options, precision=precision,
                     budget=args.probe_budget, train_batches=tuple(sorted(train)), fwd_batches=tuple(sorted(fwd)),
                     psg_chunk=psg, flops=flops, channels_last=bool(channels_last), imp_batches=tuple(sorted(imp)))

    sweeps = [] if args.no_sweeps else sweep_work(suite, args, device)
    est = estimate(suite, grid, cfgs, rates_for, sweeps=sweeps)
    where = f" (rates from {args.rates})" if given is not None else ""
    totals = print_estimate(est, sorted({1, args.estimate_workers}), note=where)
    if args.estimate_json:
        write_json(args.estimate_json, est, totals)
    return totals


def write_json(path: str | Path, est: dict[str, Any], totals: dict[str, float]) -> None:
    import json

    from ssd.utils import atomic_write_bytes

    doc = {"totals_s": totals, "pretrain_s": est["pretrain_s"], "sweeps_s": est["sweeps_s"],
           "rates": {r.net: r.to_dict() for r in est["rates"].values()},
           "runs": [{"net": r.net, "method": r.method, "task": r.task, "dataset": r.dataset, "seconds": r.seconds,
                     "work_s": r.work_s, "work": [dataclasses.asdict(w) for w in r.work]} for r in est["runs"]]}
    atomic_write_bytes(Path(path), json.dumps(doc, indent=1).encode())
