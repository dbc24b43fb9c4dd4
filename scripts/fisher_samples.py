"""How many retain samples Fisher forgetting's diagonal needs: the exact diagonal over all of Dr
against the same over seeded subsets (the method's `max_samples`), on one forget request.

For each size it reports the noise the method draws (σ = √var from `noise_variance`: its median
and 90th-percentile relative difference to the full-Dr σ, and the share of weights at the
variance clamp) and the run's row (Dr-test, Df-test, MIA, MethodTime), so a cap is chosen from
what it changes. docs/departures.md ("Fisher forgetting on ViT") has the MNIST numbers.

    python scripts/fisher_samples.py -net ConvNet -dataset MNIST -forget_class 2 \\
        -weight_path checkpoints/ConvNet-MNIST-seed0/best.pt --data-root /work/data --sizes 250,1000,4000,all
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from ssd.errors import UserError
    from ssd.experiment import RunSpec, Session, build_splits, method_config, run_one
    from ssd.methods import fisher as fisher_module
    from ssd.utils import code_version

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-net", required=True)
    p.add_argument("-dataset", required=True)
    p.add_argument("-weight_path", required=True)
    p.add_argument("-forget_class", default=None)
    p.add_argument("--task", default="full_class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--sizes", default="250,1000,4000,all", help="retain samples per diagonal; all = every one")
    p.add_argument("--out", default=None, help="JSON-lines file for the per-size records")
    args = p.parse_args(argv)
    try:
        sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise UserError(f"--sizes expects numbers or 'all', got {args.sizes!r}") from None

    diagonals: list[dict[str, torch.Tensor]] = []
    exact = fisher_module.fisher_diagonal

    def recording(*a: Any, **kw: Any) -> dict[str, torch.Tensor]:
        diagonals.append(out := exact(*a, **kw))
        return out

    fisher_module.fisher_diagonal = recording
    session = Session(Path("cache") / "fisher_samples")
    records = []
    for n in sizes:
        spec = RunSpec(task=args.task, net=args.net, dataset=args.dataset, weight_path=args.weight_path,
                       method="fisher", forget_class=args.forget_class, seed=args.seed, data_root=args.data_root,
                       overrides={} if n is None else {"max_samples": n})
        t0 = time.perf_counter()
        row = run_one(spec, session)
        m = row["metrics"]
        records.append({"max_samples": n, "wall_s": time.perf_counter() - t0, "MethodTime": m["MethodTime"],
                        "DrTest": m["DrTest"], "DfTest": m.get("DfTest"), "Df": m["Df"], "MIA": m.get("MIA"),
                        "n_retain": row["n_retain"], "code_version": row["code_version"]})
        print(json.dumps(records[-1]), flush=True)

    model, meta = session.model(spec)
    splits = build_splits(spec, session, meta["sha256"], meta)
    cfg = method_config("fisher", dataclasses.replace(spec, overrides={}))
    full = diagonals[sizes.index(None)] if None in sizes else diagonals[-1]

    def sigma(diag: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        stds, clamped = [], []
        for name, param in model.named_parameters():
            _, var = fisher_module.noise_variance(param, diag[name], splits, cfg)
            stds.append(var.sqrt().flatten())
            clamped.append((1.0 / (diag[name] + cfg.eps) >= cfg.max_var).flatten())
        return torch.cat(stds), torch.cat(clamped)

    ref, _ = sigma(full)
    for rec, diag in zip(records, diagonals, strict=True):
        s, clamped = sigma(diag)
        rel = ((s - ref).abs() / ref).float()
        rec.update(sigma_rel_median=float(rel.median()), sigma_rel_p90=float(rel.quantile(0.9)),
                   at_clamp=float(clamped.float().mean()))
        print(json.dumps(rec))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            for rec in records:
                f.write(json.dumps({**rec, "command": " ".join(sys.argv), "code": code_version()}) + "\n")
    return records


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
