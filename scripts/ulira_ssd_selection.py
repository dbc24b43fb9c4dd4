"""How many weights SSD dampens on the target run and on the U-LiRA shadows that audit it.

The committed U-LiRA audits give each shadow half of a 1,000-image pool (500 images, ~100
forgotten) while the target run forgets 100 of 1,000 (docs/departures.md, "shadow size,
forget fraction"). This prints SSD's selected-weight count on the target checkpoint with
its own D, on the same checkpoint with D cut to 500 rows holding the same Df, and on every
cached shadow with its own split. Reading only: it trains nothing, writes no cache entry
and no result row, and stops if the shadow cache does not match the settings.

    OMP_NUM_THREADS=1 python scripts/ulira_ssd_selection.py --data-root /work/data \
        --weight-path checkpoints/cpu-paper/ResNet18-w8-FashionMNIST-n1000/last.pt \
        --cache-dir /work/results-12/cache
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import torch
from reading_args import reading_parser  # scripts/, beside this file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssd.experiment import RunSpec, Session, build_splits, method_config  # noqa: E402
from ssd.methods.registry import METHODS  # noqa: E402
from ssd.methods.ssd_methods import ssd_unlearn  # noqa: E402
from ssd.privacy import audit  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = reading_parser(__doc__.splitlines()[0], "the audit's cache folder (holds ulira/)")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--shadows", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=10.0)
    args = ap.parse_args(argv)

    spec = RunSpec(task="random", net=args.net, dataset=args.dataset, weight_path=args.weight_path, method="ssd",
                   n_forget=100, seed=0, data_root=args.data_root, retain_eval_size=1000,
                   overrides={"alpha": args.alpha, "lam": 1.0}, ulira=args.shadows,
                   ulira_settings={"pool": args.pool})
    session = Session(cache_dir=args.cache_dir)
    model, meta = session.model(spec)
    splits = build_splits(spec, session, meta["sha256"], meta)
    splits.context.pop("cache_dir", None)  # no importance-cache entries from a reading script
    cfg = method_config("ssd", spec)

    def selected(d, df) -> str:
        stats = ssd_unlearn(copy.deepcopy(model), d, df, cfg)
        return f"{stats.total_selected}/{stats.total_considered}"

    print(f"target: D={len(splits.train)} Df={len(splits.forget)} selected {selected(splits.train, splits.forget)}")
    keep = set(splits.forget.indices.tolist())
    retain_pick = torch.randperm(len(splits.retain), generator=torch.Generator().manual_seed(1))[:400]
    keep |= set(splits.retain.indices[retain_pick].tolist())
    rows = torch.tensor([i for i, ix in enumerate(splits.train.indices.tolist()) if ix in keep])
    d_half = splits.train.subset(rows)
    print(f"target, D cut to {len(d_half)} with the same Df: selected {selected(d_half, splits.forget)}")

    full_train = session.data(spec, True)
    settings = audit.resolve_pool(audit.check_request(spec), len(splits.train), len(full_train))
    shadows, path, stored = audit.stored_shadow_set(session.audit_scope(spec), settings, splits,
                                                     audit.architecture_digest(splits))
    if not stored:
        sys.exit(f"no matching shadow set at {path}; this script does not train shadows")
    counts = []
    for k in range(shadows.originals.k):
        sk = audit.shadow_splits(shadows, k, splits.test, {"net": spec.net, "dataset": spec.dataset})
        METHODS.get("ssd").fn(shadows.originals.model(k), sk, dataclasses.replace(copy.copy(cfg), seed=cfg.seed + k))
        stats = sk.context["ssd_stats"]
        counts.append(stats["total_selected"])
        print(f"shadow {k}: D={len(sk.train)} Df={len(sk.forget)} selected {stats['total_selected']}"
              f"/{stats['total_considered']}")
    ordered = sorted(counts)
    print(f"shadows: median {(ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2:g}, "
          f"mean {sum(counts) / len(counts):.0f}, range {ordered[0]}-{ordered[-1]}")


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
