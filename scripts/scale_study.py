"""Issue 24's scale study: configs/suites/scale.toml at several ResNet18 widths × training-set sizes.

    # every scale, seed by seed (each suite run pretrains its missing checkpoint first, resumably;
    # ":noretrain" leaves the retrain reference out at that scale)
    OMP_NUM_THREADS=1 python scripts/scale_study.py run --data-root DIR \\
        --scales 8x1000,16x2000,32x2000:noretrain --results results/scale.jsonl
    # tables, summary and figures from the rows (+ the checkpoints' memorisation, read from their files)
    python scripts/scale_study.py report results/scale.jsonl --out docs/results/scale

`run` is the suite, once per scale and seed (`--set width=W --set train_subset=N --seeds S`):
a killed study restarts where it stopped (the suite skips recorded runs). `report` writes
tables.md, summary.json, checkpoints.json, scale.png and ratios.png into --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssd.errors import UserError, run_cli  # noqa: E402

SUITE = "scale"
METHODS_NO_RETRAIN = "baseline,ssd,lfssd,ssd@auto,ssd@search,lfssd@auto,lfssd@search"


def parse_scales(text: str) -> list[tuple[int, int, bool]]:
    """`8x1000,16x2000,32x2000:noretrain` → [(width, n, retrain), …]."""
    out = []
    for part in text.split(","):
        spec, _, flag = part.strip().partition(":")
        w, _, n = spec.partition("x")
        if not (w.isdigit() and n.isdigit()) or flag not in ("", "noretrain") or int(w) < 1 or int(n) < 10:
            raise UserError(f"--scales expects WIDTHxIMAGES[:noretrain] items, e.g. 16x2000; got {part!r}")
        out.append((int(w), int(n), flag != "noretrain"))
    return out


def suite_argv(width: int, n: int, retrain: bool, seed: int, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "ssd.suite", "--suite", SUITE, "--set", f"width={width}",
            "--set", f"train_subset={n}", "--seeds", str(seed), "--results", args.results,
            "--cache-dir", args.cache_dir, "--no-progress", "--no-report"]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    return argv + ([] if retrain else ["--methods", METHODS_NO_RETRAIN])


def run(args: argparse.Namespace) -> None:
    scales = parse_scales(args.scales)
    seeds = [int(s) for s in args.seeds.split(",")]
    for width, n, retrain in scales:
        for seed in seeds:
            argv = suite_argv(width, n, retrain, seed, args)
            print(f"[scale] {time.strftime('%H:%M:%S', time.gmtime())} UTC w{width}/n{n} seed {seed}: "
                  f"{' '.join(argv[1:])}", flush=True)
            t0 = time.time()
            rc = subprocess.call(argv, cwd=REPO)
            print(f"[scale] w{width}/n{n} seed {seed}: rc {rc}, {time.time() - t0:.0f} s", flush=True)
            if rc:
                raise SystemExit(rc)


def checkpoint_facts(path: Path) -> dict:
    from ssd.checkpoint import read_meta

    meta = read_meta(path)
    hist = path.parent / "history.json"
    seconds = None  # training seconds (images / measured images per second, epoch by epoch; no evaluation)
    if hist.is_file():
        n = (meta.get("data_subset") or {}).get("train") or 0
        epochs = json.loads(hist.read_text()).get("history") or []
        seconds = round(sum(n / e["images_per_s"] for e in epochs if e.get("images_per_s"))) or None
    return {"checkpoint": str(path), "train_eval_acc": meta.get("train_eval_acc"), "test_acc": meta.get("test_acc"),
            "gap": meta.get("train_test_gap"), "epochs": meta.get("epoch"), "code_version": meta.get("code_version"),
            "pretrain_s": seconds}


def report(args: argparse.Namespace) -> None:
    from datasets import dataset_info
    from models import build_model
    from ssd.report.rows import load_rows
    from ssd.report.scale import ratio_table, records, runs_table, scale_name, stage_table, summary
    from ssd.report.scale_figures import ratio_figure, scale_figure

    rows = [r for r in load_rows(args.rows) if r.get("net") == "ResNet18" and r.get("dataset") == "FashionMNIST"]
    if not rows:
        raise UserError(f"{args.rows} holds no ResNet18 / FashionMNIST rows of the scale suite")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = records(rows)
    scales = sorted({r["scale"] for r in recs})
    params = {s: sum(p.numel() for p in build_model("ResNet18", dataset_info("FashionMNIST"), width=s[0]).parameters())
              for s in scales}
    facts_path = out / "checkpoints.json"
    facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
    for s in scales:
        ck = Path(args.checkpoints) / f"ResNet18-w{s[0]}-FashionMNIST-n{s[1]}" / "last.pt"
        if ck.is_file():
            facts[scale_name(s)] = {**checkpoint_facts(ck), "params": params[s]}
    facts_path.write_text(json.dumps(facts, indent=1) + "\n")
    ck_lines = ["| scale | parameters | train acc (eval mode) | test acc | gap | pretraining s (contended) |",
                "|---|---|---|---|---|---|"]
    for name, f in facts.items():
        ck_lines.append(f"| {name} | {f['params']:,} | {f['train_eval_acc']} | {f['test_acc']} | "
                        f"{f['gap']:.1f} | {f['pretrain_s'] or '–'} |")
    summ = summary(recs)
    (out / "summary.json").write_text(json.dumps(summ, indent=1) + "\n")
    text = ["# Scale study tables (written by scripts/scale_study.py report)", "",
            "## Checkpoints", "", *ck_lines, "",
            "## Runs (means over seeds; DrTest drop against the same seed's original model)", "", *runs_table(recs),
            "", "## Where the selected weights sit (% of each run's selected elements per stage)", "",
            *stage_table(recs), "", "## imp_Df / imp_D (α = 10 rows, D = retain ∪ forget, means over seeds)", "",
            *ratio_table(recs), ""]
    (out / "tables.md").write_text("\n".join(text))
    print(f"wrote {out / 'tables.md'}, {scale_figure(recs, params, out)}, {ratio_figure(recs, out)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the scale suite at every scale, seed by seed")
    r.add_argument("--scales", default="8x1000,16x2000,32x2000:noretrain")
    r.add_argument("--seeds", default="0,1")
    r.add_argument("--data-root", default=None)
    r.add_argument("--results", default="results/scale.jsonl")
    r.add_argument("--cache-dir", default="cache")
    q = sub.add_parser("report", help="tables and figures from the rows")
    q.add_argument("rows")
    q.add_argument("--out", default="docs/results/scale")
    q.add_argument("--checkpoints", default="checkpoints/scale", help="where the scale checkpoints are")
    args = p.parse_args(argv)
    if args.cmd == "run":
        parse_scales(args.scales)  # refuse a bad list before any work
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
