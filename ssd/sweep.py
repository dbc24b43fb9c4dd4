"""α / λ sweeps on one checkpoint and forget request, for SSD and the crude dampening baselines.

SSD's importances are computed once (`ssd_sweep`, with D's going through the
ImportanceCache), so each (α, λ) point costs one dampening and one evaluation. The
classroom baselines (`output_dampening`, `global_dampening`) are cheap: each point is a
fresh copy of the weights, the method and an evaluation. Every point becomes a result
row shaped like `run_one`'s plus `"sweep": {"param", "value", "selected", ...}`, which
`ssd.report` draws against α or λ.

For SSD α is a selection threshold (dampen where imp_Df > α·imp_D), λ the dampening
constant; for the baselines α is a multiplicative factor on weights. The same flag
feeds both unless `--baseline-alphas` gives the baselines their own grid.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssd.errors import UserError, run_cli
from ssd.sweep_plan import (  # noqa: F401  (re-exported: callers import the plan from here)
    SSD_LIKE,
    labelled,
    point_key,
    sweep_keys,
    sweep_param,
    sweep_plan,
)

Row = dict[str, Any]
DEFAULT_ALPHAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
DEFAULT_METHODS = ("ssd", "output_dampening", "global_dampening")


def parse_floats(text: str | Sequence[str], flag: str, keywords: Sequence[str] = (),
                 positive: bool = False) -> list[Any]:
    """"1,2,5", "1 2 5" or ["1", "2,5"] → [1.0, 2.0, 5.0] (any of `keywords`, e.g. α's "auto", kept as
    a string); anything else is one UserError line naming the flag. Numbers follow the mains' rule
    (ssd.methods.registry.check_grid): finite and ≥ 0 (α, the baselines' strengths), > 0 with
    `positive` (λ, as --lambda)."""
    from ssd.cli import split_list
    from ssd.methods.registry import check_grid

    try:
        values = [v if v in keywords else float(v) for v in split_list(text)]
    except ValueError:
        extra = f" or {', '.join(keywords)}" if keywords else ""
        raise UserError(f"{flag} expects comma-separated numbers{extra}, got {text!r}") from None
    if not values:
        raise UserError(f"{flag} needs at least one value")
    check_grid(flag, [v for v in values if not isinstance(v, str)] or [0.0], positive=positive)
    return values


def run_sweep(spec: Any, **kwargs: Any) -> list[Row]:
    """:func:`sweep_points` in the run's precision (`spec.precision`, ssd/precision.py)."""
    from ssd.precision import precision_scope

    with precision_scope(spec.precision, spec.device):
        return sweep_points(spec, **kwargs)


def sweep_points(
    spec: Any,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    lambdas: Sequence[float] = (1.0,),
    methods: Sequence[str] = DEFAULT_METHODS,
    baseline_alphas: Sequence[float] | None = None,
    session: Any = None,
    sink: Callable[[Row], None] | None = None,
    log: Callable[[str], None] | None = None,
    done: set[str] | None = None,
) -> list[Row]:
    """Sweep `methods` on `spec`'s checkpoint and forget request; returns (and sinks) the rows.

    `spec` is an `ssd.experiment.RunSpec` (its `method` is ignored; its `overrides` are
    SSD settings such as order="paper"). The first row is the unmodified model
    (method "baseline", sweep param "none"), the reference the figures draw.

    Every point's settings are checked before any work (α = −1 is refused before the
    baseline row is written). Points whose run key is in `done` (already recorded) are
    skipped, so a killed sweep resumes point by point.
    """
    from ssd.experiment import Session, build_splits
    from ssd.methods.alpha_select import describe as describe_alpha
    from ssd.methods.alpha_select import effective_reference
    from ssd.methods.registry import METHODS
    from ssd.methods.ssd_methods import importance_cache, reference_data, ssd_sweep
    from ssd.metrics import evaluate

    session = session or Session()
    say = log or (lambda _s: None)
    for m in methods:
        entry = METHODS.get(m)
        if m not in SSD_LIKE and "alpha" not in {f.name for f in dataclasses.fields(entry.config)}:
            raise UserError(f"method {m!r} has no alpha to sweep; sweepable: ssd, lfssd, output_dampening, "
                            "global_dampening")
    original, meta = session.model(spec)
    splits = build_splits(spec, session, meta["sha256"], meta)
    device = torch.device(spec.device)
    torch.manual_seed(spec.seed)
    untrained = splits.model_factory() if splits.model_factory else None
    rows: list[Row] = []

    def score(model: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
        details: dict[str, Any] = {}
        metrics = evaluate(model, splits, device=device, untrained=untrained, seed=spec.seed, details=details)
        return metrics, details

    def emit(method: str, cfg: Any, metrics: dict[str, Any], details: dict[str, Any], sweep: dict[str, Any]) -> None:
        row = _row(spec, method, cfg, meta, splits, metrics, details, sweep)
        rows.append(row)
        if sink is not None:
            sink(row)
        say(point_line(row))

    done = done or set()
    sha = meta["sha256"]
    param = sweep_param(alphas, lambdas)
    base_cfg, plan = sweep_plan(spec, alphas, lambdas, methods, baseline_alphas)  # every point validated now
    for method in methods:
        if spec.task not in METHODS.get(method).tasks:
            say(f"skipping {method}: not defined for the {spec.task} task")

    if point_key(spec, "baseline", base_cfg, sha, "none") not in done:
        metrics, details = score(original)
        metrics["MethodTime"] = 0.0
        emit("baseline", base_cfg, metrics, details, {"param": "none", "value": None, "selected": 0})

    for method, cfg, point_cfgs in plan:
        method_param = param if method in SSD_LIKE else "alpha"
        todo = [point_key(spec, method, c, sha, method_param) not in done for c in point_cfgs]
        if not any(todo):
            continue
        if method in SSD_LIKE:
            cache = importance_cache(cfg, session.cache_dir)
            clock = [time.perf_counter()]
            point_metrics: list[tuple[dict[str, Any], dict[str, Any]] | None] = []

            def evaluate_point(model: nn.Module, clock: list[float] = clock, todo: list[bool] = todo,
                               store: list[tuple[dict[str, Any], dict[str, Any]] | None] = point_metrics,
                               ) -> dict[str, Any]:
                if not todo[len(store)]:  # recorded already: not scored again
                    store.append(None)
                    clock[0] = time.perf_counter()
                    return {}
                elapsed = time.perf_counter() - clock[0]  # restore + dampen (+ importances, first point)
                metrics, details = score(model)
                metrics["_changed"] = changed_weights(model, original)
                metrics["MethodTime"] = elapsed
                store.append((metrics, details))
                clock[0] = time.perf_counter()
                return {}

            numbers = [a for a in alphas if not isinstance(a, str)]
            model = copy.deepcopy(original)
            points = [] if not numbers else ssd_sweep(
                model, reference_data(splits, effective_reference(cfg)).to(device), splits.forget.to(device),
                cfg, numbers, lambdas, evaluate_point, cache, checkpoint_sha256=sha, task=splits.task)
            for i, (point, scored) in enumerate(zip(points, point_metrics, strict=True)):
                if scored is None:
                    continue
                metrics, details = scored
                if i == 0:  # its window held the importances, and the cache's I/O, which is not the method's
                    metrics["MethodTime"] = max(metrics["MethodTime"] - (point["stats"].get("cache_io_s") or 0.0), 0.0)
                value = point["lam"] if param == "lambda" else point["alpha"]
                emit(method, dataclasses.replace(cfg, alpha=point["alpha"], lam=point["lam"]), metrics, details,
                     {"param": param, "value": value, "alpha": point["alpha"], "lambda": point["lam"],
                      "selected": int(point["selected"]), "changed": int(metrics.pop("_changed")),
                      "includes_importances": i == 0,
                      "cache_hit": point["stats"].get("cache_hit")})
            n_numeric = len(numbers) * len(lambdas)
            for kw_cfg, needed in zip(point_cfgs[n_numeric:], todo[n_numeric:], strict=True):
                if needed:  # alpha "auto"/"search": the method itself, one labelled point (ssd@auto)
                    t0 = time.perf_counter()
                    model = METHODS.get(method).fn(copy.deepcopy(original), splits, kw_cfg)
                    elapsed = time.perf_counter() - t0
                    st = splits.context.pop("ssd_stats")  # numeric points' rows must not carry it
                    metrics, details = score(model)
                    metrics["MethodTime"] = max(elapsed - (st.get("cache_io_s") or 0.0), 0.0)
                    say(describe_alpha(st["alpha_select"]))
                    splits.context["ssd_stats"] = st
                    emit(method, kw_cfg, metrics, details,
                         {"param": param, "value": st["alpha"], "alpha": st["alpha"], "lambda": st["lam"],
                          "alpha_mode": kw_cfg.alpha, "selected": int(st["total_selected"]),
                          "changed": changed_weights(model, original), "includes_importances": True,
                          "cache_hit": st.get("cache_hit")})
                    splits.context.pop("ssd_stats")
            continue
        entry = METHODS.get(method)
        for cfg, needed in zip(point_cfgs, todo, strict=True):
            if not needed:
                continue
            alpha = cfg.alpha
            model = copy.deepcopy(original)
            t0 = time.perf_counter()
            model = entry.fn(model, splits, cfg)
            elapsed = time.perf_counter() - t0
            changed = changed_weights(model, original)
            metrics, details = score(model)
            metrics["MethodTime"] = elapsed
            emit(method, cfg, metrics, details,
                 {"param": "alpha", "value": float(alpha), "alpha": float(alpha), "selected": changed,
                  "changed": changed})
    return rows


def run_sweep_job(session: Any, p: Any) -> list[Row]:
    """A sweep as a backend job (`p` an ssd.backends.jobs.SweepPayload); module-level, so a
    remote worker imports it by name."""
    rows = run_sweep(p.spec, alphas=p.alphas, lambdas=p.lambdas, methods=p.methods,
                     baseline_alphas=p.baseline_alphas, session=session, done=set(p.done))
    if p.suite_sweep is not None:
        for row in rows:
            row["sweep"]["suite_sweep"] = p.suite_sweep
    return rows


def sweep_job(payload: Any, key: str) -> Any:
    from ssd.backends.base import Job

    s = payload.spec
    cell = f"sweep {s.task} {s.dataset} {s.forget_class or ''} {','.join(payload.methods)}"
    return Job(key=key, label=cell, cell=cell, fn=run_sweep_job, payload=payload, device=s.device)


def changed_weights(model: nn.Module, original: nn.Module) -> int:
    """How many weights of `model` differ from `original`'s (same architecture)."""
    ref = dict(original.named_parameters())
    return sum(int((p.detach() != ref[n].detach()).sum()) for n, p in model.named_parameters())


def point_line(row: Row) -> str:
    """One sweep point for the console."""
    m, sweep = row["metrics"], row["sweep"]
    return (f"{row['method']:<17} {sweep['param']}={sweep['value']!s:<8} selected={sweep['selected']!s:<8} "
            f"Df={m['Df']:.2f} DfTest={_num(m.get('DfTest'))} DrTest={m['DrTest']:.2f} MIA={_num(m.get('MIA'))}")


def _num(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{float(v):.3g}"


def _row(spec: Any, method: str, cfg: Any, meta: dict[str, Any], splits: Any, metrics: dict[str, Any],
         details: dict[str, Any], sweep: dict[str, Any]) -> Row:
    """A row like `run_one`'s plus the sweep point; its run_key cannot collide with a suite run's."""
    from ssd.experiment import result_row

    point_spec = labelled(dataclasses.replace(spec, method=method), method, cfg)
    key = point_key(spec, method, cfg, meta["sha256"], sweep["param"])
    return {**result_row(point_spec, method, cfg, meta, splits, metrics, details, key), "sweep": sweep}


def build_parser() -> argparse.ArgumentParser:
    from ssd.cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="scripts/sweep.py", formatter_class=HelpFormatter, allow_abbrev=False,
        description="α/λ sweep of SSD and the dampening baselines on one forget request. List flags take "
                    "1,2,5 or 1 2 5.",
        epilog="example (after ./MAIN_run_experiments.sh --suite quick):\n  python scripts/sweep.py -net ConvNet "
               "-weight_path checkpoints/ConvNet-Digits-seed0/best.pt -dataset Digits -forget_class 2 "
               "--alphas 1,10,100 --results results/sweep.jsonl")
    p.add_argument("-net", required=True, help="model name (ResNet18, ViT, SmallViT, ConvNet)")
    p.add_argument("-weight_path", required=True, help="checkpoint from pretrain_model.py")
    p.add_argument("-dataset", required=True, help="dataset the checkpoint was trained on")
    p.add_argument("-forget_class", default=None, help="class to forget, by name or index (a fine class for sub_class)")
    p.add_argument("-seed", type=int, default=0, help="seed of the split")
    p.add_argument("-b", type=int, default=None, help="batch size for every method")
    p.add_argument("--task", choices=("full_class", "sub_class", "random"), default="full_class", help="task")
    p.add_argument("--n-forget", type=int, default=100, help="random task: samples to forget")
    p.add_argument("--alphas", nargs="+", default=["1,2,5,10,20,50,100"],
                   help="SSD α grid (auto and search add one labelled point each)")
    p.add_argument("--lambdas", "--lambda", nargs="+", default=["1"],
                   help="SSD λ grid; one α and several λ makes a λ sweep")
    p.add_argument("--baseline-alphas", nargs="+", default=None,
                   help="α grid for output/global dampening, where α multiplies weights (default: --alphas)")
    p.add_argument("--methods", nargs="+", default=[",".join(DEFAULT_METHODS)], help="subset to sweep")
    p.add_argument("--data-root", default=None, help="data folder (default: $SSD_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    from ssd.cli import add_precision_flags

    add_precision_flags(p)
    p.add_argument("--retain-eval-size", type=int, default=5000, help="retain-train samples scored")
    p.add_argument("--results", default="results/sweep.jsonl", help="JSON-lines file the rows are appended to")
    p.add_argument("--cache-dir", default="cache", help="where D's importances are cached")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an SSD setting, e.g. --set order=paper --set mode=sample")
    from ssd.backends import add_backend_args

    add_backend_args(p)
    return p


def main(argv: Sequence[str] | None = None) -> list[Row]:
    from ssd.utils import code_version

    code_version()  # pinned before any work: the rows name the code this process started with
    args = build_parser().parse_args(argv)
    from ssd.cli import parse_sets, split_list
    from ssd.experiment import RunSpec, Session
    from ssd.methods.registry import ALPHA_WORDS
    from ssd.results import append_row, done_keys
    from ssd.utils import check_writable, resolve_device

    check_writable(args.results, "results (--results)")  # output locations before any work
    check_writable(args.cache_dir, "cache folder (--cache-dir)", folder=True)
    spec = RunSpec(task=args.task, net=args.net, dataset=args.dataset, weight_path=args.weight_path, method="ssd",
                   forget_class=args.forget_class, n_forget=args.n_forget, seed=args.seed,
                   device=str(resolve_device(args.device)), batch_size=args.b, data_root=args.data_root,
                   download=args.download, retain_eval_size=args.retain_eval_size, overrides=parse_sets(args.set),
                   precision=args.precision, channels_last=args.channels_last)
    baseline_alphas = parse_floats(args.baseline_alphas, "--baseline-alphas") if args.baseline_alphas else None
    alphas = parse_floats(args.alphas, "--alphas", keywords=ALPHA_WORDS)
    lambdas = parse_floats(args.lambdas, "--lambdas", positive=True)
    methods = split_list(args.methods)
    done = done_keys([args.results])  # points already recorded are skipped: a killed sweep resumes
    if args.backend == "serial":
        rows = run_sweep(spec, alphas=alphas, lambdas=lambdas, methods=methods, baseline_alphas=baseline_alphas,
                         session=Session(args.cache_dir), sink=lambda row: append_row(args.results, row), log=print,
                         done=done)
    else:
        rows = _sweep_on_backend(args, spec, alphas, lambdas, methods, baseline_alphas, done)
    print(f"{len(rows)} rows appended to {Path(args.results)}"
          + (" (points already recorded there were skipped)" if done else ""))
    return rows


def _sweep_on_backend(args: argparse.Namespace, spec: Any, alphas: list[float], lambdas: list[float],
                      methods: list[str], baseline_alphas: list[float] | None, done: set[str]) -> list[Row]:
    """The sweep as one job on another backend (e.g. a GPU of a Ray cluster); rows come back
    to this process, which appends them."""
    from ssd.backends import backend_from_args, drive
    from ssd.backends.jobs import SweepPayload
    from ssd.results import append_row

    rows: list[Row] = []

    def sink(_job: Any, row: Row) -> None:
        append_row(args.results, row)
        rows.append(row)
        print(point_line(row))

    payload = SweepPayload(spec, alphas=tuple(alphas), lambdas=tuple(lambdas), methods=tuple(methods),
                           baseline_alphas=None if baseline_alphas is None else tuple(baseline_alphas),
                           done=frozenset(done))
    backend = backend_from_args(args, args.cache_dir)
    try:
        report = drive([sweep_job(payload, "sweep")], backend, sink, progress=False, desc="sweep")
    finally:
        backend.close()
    for why in report.refused.values():
        raise UserError(why)
    report.raise_if_failed()
    return rows


if __name__ == "__main__":
    sys.exit(run_cli(main))
