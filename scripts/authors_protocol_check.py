"""SSD under both protocols on real MNIST, and protocol="authors" against the authors' code.

Per task (full class: digit F on MNIST; sub-class: fine digit F on MNISTCoarse; random:
N samples of MNIST), on a pretrained ConvNet at the paper's α = 10, λ = 1:
* the weights selected and Df (forget-train), DfTest, DrTest under protocol "ours" and "authors";
* for "authors": the largest relative difference between our importances / dampened weights
  and those of the independent re-implementation of the authors' loaders + ParameterPerturber
  in tests/authors_reference.py (same model, same tensors), and whether the selections agree.

Prints a Markdown table and appends one JSON line per task to --results.

    .venv/bin/python scripts/authors_protocol_check.py --mnist CKPT --coarse CKPT --data-root /work/data
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from authors_reference import authors_ssd, authors_task_loaders  # noqa: E402

import ssd.methods  # noqa: E402,F401
from datasets import load_dataset  # noqa: E402
from ssd.checkpoint import load_model  # noqa: E402
from ssd.dampening import dampen  # noqa: E402
from ssd.methods.protocol import apply_protocol  # noqa: E402
from ssd.methods.ssd_methods import SSDConfig, ssd_importances  # noqa: E402
from ssd.metrics import evaluate  # noqa: E402
from ssd.results import append_row  # noqa: E402
from ssd.splits import make_splits  # noqa: E402
from ssd.utils import code_version, sha256_file  # noqa: E402


def max_rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest |a − b| / max(|b|, tiny) over every element of every tensor."""
    worst = 0.0
    for k in b:
        x, y = a[k].detach().double(), b[k].detach().double()
        d = (x - y).abs() / y.abs().clamp_min(1e-30)
        d = torch.where((a[k] == b[k]), torch.zeros_like(d), d)
        worst = max(worst, float(d.max()))
    return worst


def one_task(task: str, ckpt: str, dataset: str, args: argparse.Namespace) -> dict:
    train = load_dataset(dataset, train=True, root=args.data_root)
    test = load_dataset(dataset, train=False, root=args.data_root)
    kw = {"n_forget": args.n_forget} if task == "random" else {"forget_class": args.forget}
    splits = make_splits(task, train, test, seed=args.seed, **kw)
    model, _ = load_model(ckpt, net="ConvNet", dataset=dataset)
    model.eval()
    out: dict = {"task": task, "dataset": dataset, "checkpoint_sha256": sha256_file(ckpt), "n_forget": len(splits.forget),
                 "n_train": len(splits.train)}
    before = evaluate(model, splits)
    out["before"] = {k: before[k] for k in ("Df", "DfTest", "DrTest")}
    for protocol in ("ours", "authors"):
        cfg = apply_protocol(SSDConfig(protocol=protocol, alpha=args.alpha, seed=args.seed), "ssd", task)
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        imp_d, imp_f, _ = ssd_importances(m, splits.train, splits.forget, cfg, task=task)
        stats = dampen(m, imp_d, imp_f, alpha=cfg.alpha, lam=cfg.lam)
        seconds = time.perf_counter() - t0
        res = evaluate(m, splits)
        out[protocol] = {"batch_size": cfg.batch_size, "selected": stats.total_selected, "seconds": seconds,
                         **{k: res[k] for k in ("Df", "DfTest", "DrTest", "TestAcc")}}
        if protocol == "authors":
            info = splits.train.info
            sub = task == "sub_class"
            forget_dl, full_dl = authors_task_loaders(
                task, splits.train, splits.forget, len(info.fine_classes) if sub else info.num_classes,
                splits.forget_fine_class if sub else splits.forget_class, cfg.seed, cfg.batch_size)
            ref = copy.deepcopy(model)
            ref_d, ref_f, ref_sel = authors_ssd(ref, forget_dl, full_dl, cfg.alpha, cfg.lam)
            out["equivalence"] = {
                "imp_D_max_rel": max_rel(imp_d, ref_d), "imp_Df_max_rel": max_rel(imp_f, ref_f),
                "weights_max_rel": max_rel(dict(m.named_parameters()), dict(ref.named_parameters())),
                "selected_ours": stats.total_selected, "selected_reference": ref_sel,
            }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", required=True, help="ConvNet checkpoint trained on MNIST")
    p.add_argument("--coarse", required=True, help="ConvNet checkpoint trained on MNISTCoarse")
    p.add_argument("--data-root", default=None)
    p.add_argument("--dataset", default="MNIST", help="full-class and random tasks' dataset")
    p.add_argument("--coarse-dataset", default="MNISTCoarse", help="sub-class task's dataset")
    p.add_argument("--forget", type=int, default=2, help="digit forgotten (full class; fine class in sub-class)")
    p.add_argument("--n-forget", type=int, default=100)
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="full_class,sub_class,random")
    p.add_argument("--results", default="results/authors_protocol.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = []
    for task in args.tasks.split(","):
        ckpt, dataset = (args.coarse, args.coarse_dataset) if task == "sub_class" else (args.mnist, args.dataset)
        row = one_task(task, ckpt, dataset, args)
        row["code_version"] = code_version()
        rows.append(row)
        append_row(args.results, row)
        print(json.dumps(row), file=sys.stderr)
    print("| task | protocol | batch | selected | Df (forget-train) % | DfTest % | DrTest % |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        b = r["before"]
        print(f"| {r['task']} | before | – | – | {b['Df']:.2f} | {b['DfTest']:.2f} | {b['DrTest']:.2f} |")
        for protocol in ("ours", "authors"):
            s = r[protocol]
            print(f"| {r['task']} | {protocol} | {s['batch_size']} | {s['selected']:,} | {s['Df']:.2f} | "
                  f"{s['DfTest']:.2f} | {s['DrTest']:.2f} |")
    print("\n| task | imp_D max rel. diff | imp_Df max rel. diff | weights max rel. diff | selected (ours / reference) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        e = r["equivalence"]
        print(f"| {r['task']} | {e['imp_D_max_rel']:.2e} | {e['imp_Df_max_rel']:.2e} | {e['weights_max_rel']:.2e} | "
              f"{e['selected_ours']:,} / {e['selected_reference']:,} |")


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
