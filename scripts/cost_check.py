"""Check the dry run's cost model against a suite that really runs, on this machine.

    python scripts/cost_check.py --out DIR -- --suite quick
    python scripts/cost_check.py --out DIR -- --suite docs/results/cost-check/cpu-paper-2cells.toml --data-root /work/data

1. `python -m ssd.suite ARGS --dry-run --estimate-json DIR/estimate.json` (the probe and the estimate);
2. `python -m ssd.suite ARGS` into DIR (fresh results file and cache, no report), timed;
3. per method: the predicted seconds of a run's work against the rows' MethodTime + EvalTime,
   and the whole suite's predicted time against its wall time — ratio = predicted / measured.
Writes DIR/check.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def suite(args: list[str], out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "ssd.suite", *args, "--results", str(out / "results.jsonl"),
           "--cache-dir", str(out / "cache"), "--no-report", "--no-progress", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - t0


def compare(estimate: dict, rows: list[dict], wall: float) -> dict:
    pred: dict[str, list[float]] = defaultdict(list)
    for r in estimate["runs"]:
        pred[r["method"]].append(r["work_s"])
    meas: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if "sweep" in row:
            continue
        m = row.get("metrics", {})
        meas[row["method"]].append(float(m.get("MethodTime", 0.0)) + float(m.get("EvalTime", 0.0)))
    per_method = {}
    for method in pred:
        if meas.get(method):
            p, q = statistics.mean(pred[method]), statistics.mean(meas[method])
            per_method[method] = {"predicted_s": p, "measured_s": q, "ratio": p / q if q else float("nan"),
                                  "runs": len(meas[method])}
    total = estimate["totals_s"]["1"]
    work_p = sum(sum(v) for m, v in pred.items() if meas.get(m))
    work_m = sum(sum(v) for v in meas.values())
    return {"per_method": per_method, "predicted_total_s": total, "measured_wall_s": wall,
            "ratio_total": total / wall, "predicted_work_s": work_p, "measured_work_s": work_m,
            "ratio_work": work_p / work_m if work_m else float("nan")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="a new folder for the results, cache, estimate and check")
    p.add_argument("suite_args", nargs=argparse.REMAINDER, help="-- then the suite's arguments")
    p.add_argument("--estimate-again", action="store_true",
                   help="in an --out folder a check already ran in: a new dry run (estimate2.json) against the "
                        "suite measured there (the same results file and wall time)")
    a = p.parse_args(argv)
    args = [x for x in a.suite_args if x != "--"]
    out = Path(a.out)
    name = "estimate2.json" if a.estimate_again else "estimate.json"
    if a.estimate_again:
        wall = json.loads((out / "check.json").read_text())["measured_wall_s"]
        suite(args, out, ["--dry-run", "--estimate-json", str(out / name)])
    else:
        out.mkdir(parents=True, exist_ok=False)
        suite(args, out, ["--dry-run", "--estimate-json", str(out / name)])
        wall = suite(args, out, [])
    estimate = json.loads((out / name).read_text())
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    result = compare(estimate, rows, wall)
    result["suite_args"] = args
    (out / ("check2.json" if a.estimate_again else "check.json")).write_text(json.dumps(result, indent=1))
    print(f"{'method':18} {'runs':>4} {'predicted':>10} {'measured':>10} {'ratio':>6}")
    for m, v in result["per_method"].items():
        print(f"{m:18} {v['runs']:4d} {v['predicted_s']:9.2f}s {v['measured_s']:9.2f}s {v['ratio']:6.2f}")
    print(f"runs' work (method + evaluation): predicted {result['predicted_work_s']:.0f} s, measured "
          f"{result['measured_work_s']:.0f} s, ratio {result['ratio_work']:.2f}")
    print(f"suite: predicted {result['predicted_total_s']:.0f} s, wall {wall:.0f} s, "
          f"ratio predicted/measured {result['ratio_total']:.2f}")


if __name__ == "__main__":
    main()
