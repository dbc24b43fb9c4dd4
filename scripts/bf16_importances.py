"""What bf16 autocast does to SSD: its importances, the selected set and Df/Dr after dampening.

For each case (a checkpoint and a forget request) SSD's importances on D and Df are computed
twice, in float32 and under bf16 autocast (CPU autocast: bf16 matmuls/convolutions with float32
accumulation, as on a GPU), with the method's own settings (the main's α/λ, batch mode,
shuffled order). Printed and appended (one JSON line per case) to --out:

* importances: relative L2 error ‖bf16 − fp32‖/‖fp32‖ over all parameters, the median of the
  per-element relative error where fp32 > 0, and Spearman's rank correlation (D and Df);
* the selected set (imp_Df > α·imp_D): counts in each precision and their Jaccard index;
* for scale, the same figures between two fp32 passes in another shuffled batch order (order
  seed + 1000, same split): the noise SSD's batch estimate already has;
* Df/Dr accuracies (forget-train, retain-train subset, forget-test, retain-test) of the original
  model and of the dampened one for: all fp32; bf16 everywhere (importances and scoring); and
  fp32 importances with bf16 scoring (what a bf16 run does with IMPORTANCE_PRECISION = "fp32").

    OMP_NUM_THREADS=1 nice -n 10 python scripts/bf16_importances.py --data-root /work/data

docs/precision.md has the figures and the choice they led to.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ssd.errors import run_cli

# (net, dataset, checkpoint, task, forget class or None, n_forget)
CASES = {
    "convnet-mnist": ("ConvNet", "MNIST", "checkpoints/ConvNet-MNIST-seed0/best.pt", "full_class", "2", 100),
    "resnet-fmnist": ("ResNet18", "FashionMNIST", "checkpoints/cpu-paper/ResNet18-w8-FashionMNIST-n1000/last.pt",
                      "full_class", "Trouser", 100),
    "resnet-fmnist-random": ("ResNet18", "FashionMNIST",
                             "checkpoints/cpu-paper/ResNet18-w8-FashionMNIST-n1000/last.pt", "random", None, 100),
}


def flat(imps: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().float().flatten().cpu() for t in imps.values()])


def compare(a32: dict[str, torch.Tensor], a16: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative L2 error, median element relative error (where fp32 > 0), Spearman ρ."""
    from scipy.stats import spearmanr

    x, y = flat(a32), flat(a16)
    pos = x > 0
    rel = ((y[pos] - x[pos]).abs() / x[pos]).median().item() if pos.any() else float("nan")
    rho = float(spearmanr(x.numpy(), y.numpy()).statistic)
    return {"rel_l2": ((y - x).norm() / x.norm()).item(), "median_rel": rel, "spearman": rho}


def selection(imp_d: dict[str, torch.Tensor], imp_df: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    return flat(imp_df) > alpha * flat(imp_d)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return (a & b).sum().item() / union if union else 1.0


def accuracies(model: torch.nn.Module, splits: Any, precision: str) -> dict[str, float]:
    from ssd.metrics import accuracy, predict_logits
    from ssd.precision import precision_scope

    out = {}
    sets = {"Df": splits.forget, "DrTrain": splits.retain_eval or splits.retain, "DfTest": splits.forget_test,
            "DrTest": splits.retain_test}
    with precision_scope(precision, "cpu"):
        for name, data in sets.items():
            out[name] = round(accuracy(predict_logits(model, data), data.targets), 2) if len(data) else None
    return out


def run_case(name: str, data_root: str | None, seed: int) -> dict[str, Any]:
    import forget_full_class_main
    import forget_random_main
    from ssd import precision as prec
    from ssd.dampening import dampen
    from ssd.experiment import RunSpec, Session, build_splits, method_config
    from ssd.methods.alpha_select import effective_reference
    from ssd.methods.ssd_methods import reference_data, ssd_importances
    from ssd.precision import precision_scope

    net, dataset, ckpt, task, cls, n_forget = CASES[name]
    table = (forget_random_main if task == "random" else forget_full_class_main).SSD_PARAMS
    alpha, lam = table[net]
    spec = RunSpec(task=task, net=net, dataset=dataset, weight_path=ckpt, method="ssd", forget_class=cls,
                   n_forget=n_forget, seed=seed, data_root=data_root, overrides={"alpha": alpha, "lam": lam})
    session = Session("cache")
    original, meta = session.model(spec)
    splits = build_splits(spec, session, meta["sha256"], meta)
    cfg = method_config("ssd", spec)
    d_data, df_data = reference_data(splits, effective_reference(cfg)), splits.forget

    def importances(precision: str, order_seed: int = seed) -> tuple[dict, dict, Any, float]:
        saved = prec.IMPORTANCE_PRECISION
        prec.IMPORTANCE_PRECISION = "run"  # let autocast reach the importance passes
        try:
            t0 = time.perf_counter()
            with precision_scope(precision, "cpu"):
                imp_d, imp_df, info = ssd_importances(original, d_data, df_data,
                                                      dataclasses.replace(cfg, seed=order_seed), task=task)
            return imp_d, imp_df, info, time.perf_counter() - t0
        finally:
            prec.IMPORTANCE_PRECISION = saved

    d32, df32, info, t32 = importances("fp32")
    d16, df16, _, t16 = importances("bf16")
    d_other, df_other, _, _ = importances("fp32", seed + 1000)  # fp32, another batch order: the method's own noise
    sel32, sel16, sel_other = (selection(d, f, alpha) for d, f in ((d32, df32), (d16, df16), (d_other, df_other)))

    def dampened(imp_d: dict, imp_df: dict) -> torch.nn.Module:
        model = copy.deepcopy(original)
        dampen(model, imp_d, imp_df, alpha=alpha, lam=lam, exponent=cfg.exponent, bound=cfg.bound,
               param_filter=info.keep)
        return model

    fp32_model, bf16_model = dampened(d32, df32), dampened(d16, df16)
    return {
        "case": name, "net": net, "dataset": dataset, "task": task, "forget_class": cls, "seed": seed,
        "alpha": alpha, "lambda": lam, "n_D": len(d_data), "n_Df": len(df_data),
        "n_params": int(flat(d32).numel()), "checkpoint_sha256": meta["sha256"],
        "importance_D": compare(d32, d16), "importance_Df": compare(df32, df16),
        "selected_fp32": int(sel32.sum()), "selected_bf16": int(sel16.sum()),
        "selected_jaccard": jaccard(sel32, sel16),
        "order_noise": {"importance_D": compare(d32, d_other), "importance_Df": compare(df32, df_other),
                        "selected": int(sel_other.sum()), "selected_jaccard": jaccard(sel32, sel_other)},
        "importance_s": {"fp32": round(t32, 1), "bf16": round(t16, 1)},
        "accuracy": {
            "original_fp32": accuracies(original, splits, "fp32"),
            "original_bf16": accuracies(original, splits, "bf16"),
            "ssd_fp32": accuracies(fp32_model, splits, "fp32"),
            "ssd_bf16_everywhere": accuracies(bf16_model, splits, "bf16"),
            "ssd_fp32_importances_bf16_scoring": accuracies(fp32_model, splits, "bf16"),
        },
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from ssd.utils import code_version

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--seeds", default="0", help="comma-separated split/order seeds")
    p.add_argument("--data-root", default=None, help="data folder (default: $SSD_DATA_ROOT or ./data)")
    p.add_argument("--out", default="docs/results/precision/bf16_importances.jsonl", help="JSON lines appended")
    args = p.parse_args(argv)
    version = code_version()
    rows = []
    for name in args.cases.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            row = run_case(name, args.data_root, seed)
            row.update(wall_s=round(time.perf_counter() - t0, 1), code_version=version,
                       torch=torch.__version__, threads=torch.get_num_threads(),
                       command="python scripts/bf16_importances.py " + " ".join(sys.argv[1:] if argv is None else argv),
                       time_utc=datetime.now(UTC).isoformat(timespec="seconds"))
            print(json.dumps(row), flush=True)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(run_cli(main))
