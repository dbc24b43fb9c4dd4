"""Rates by arithmetic for a GPU no session could measure (docs/gpu.md): what `--dry-run --rates` prices
the paper grid with until scripts/gpu_check.sh has run on the device.

    python scripts/gpu_rates_model.py --scenario as-coded --out rates-as-coded.json
    python -m ssd.suite --suite paper --dry-run --rates rates-as-coded.json --no-sweeps

A step of b images costs  compute = b · FLOPs / (peak[precision] · utilisation)  and a host part
(Python dispatch and kernel launches, `ops` × 5 µs). With a host↔device sync in the step (as
coded: 3 per plain batch, 6 per augmented one, and the `.cpu()`/`.item()` reads) the host part
cannot run ahead of the device, so the step is compute + host + syncs × 50 µs; without syncs
(after issue 19) the host runs ahead and the step is max(compute, host). Per-sample gradients
(Fisher) add the memory traffic of materialising them: 3 × parameters × 4 bytes per sample.
Every constant below is an assumption stated in docs/gpu.md, not a measurement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# H200 SXM (= H100 SXM compute; 4.8 TB/s HBM3e): dense peak FLOP/s per precision
PEAK = {"fp32": 67e12, "tf32": 495e12, "bf16": 989e12}
HBM = 4.8e12
# per image (torch.utils.flop_counter on the harness's models, CIFAR input): forward, forward+backward
FLOPS = {"ResNet18": (1.111e9, 3.329e9), "ViT": (33.70e9, 100.86e9)}
PARAMS = {"ResNet18": 11_173_962, "ViT": 85_806_346}
# achieved fraction of peak at a large batch: ResNet18 at 32 px is small convolutions with
# memory-bound BN/ReLU between them; ViT-B/16 at 224 px is large GEMMs; fp32 runs on the CUDA cores
UTIL = {("ResNet18", "tensor"): 0.25, ("ViT", "tensor"): 0.45, ("ResNet18", "fp32"): 0.6, ("ViT", "fp32"): 0.6}
# eager ops per step (dispatch + launch, 5 µs each): forward+backward+optimizer, forward only
OPS = {"ResNet18": (500, 150), "ViT": (1000, 300)}
OP_S, SYNC_S = 5e-6, 50e-6
SCENARIOS = {
    # as coded before issue 19: no TF32 for matmuls (torch's default) but TF32 convolutions
    # (cudnn.allow_tf32 defaults to True), fp32 tensors; syncs in every batch
    "as-coded": {"precision": {"ResNet18": "tf32", "ViT": "fp32"}, "syncs": (6, 3)},
    # after: the harness's CUDA default (TF32 everywhere), no syncs in the hot loops
    "tf32": {"precision": {"ResNet18": "tf32", "ViT": "tf32"}, "syncs": (0, 0)},
    # after, with --set precision=bf16 (importances and per-sample gradients stay fp32/tf32)
    "bf16": {"precision": {"ResNet18": "bf16", "ViT": "bf16"}, "syncs": (0, 0)},
}


def step_seconds(net: str, precision: str, batch: int, flops: float, ops: int, syncs: int) -> float:
    kind = "fp32" if precision == "fp32" else "tensor"
    compute = batch * flops / (PEAK[precision] * UTIL[(net, kind)])
    host = ops * OP_S
    return compute + host + syncs * SYNC_S if syncs else max(compute, host)


def rates(net: str, scenario: str) -> dict:
    s = SCENARIOS[scenario]
    prec = s["precision"][net]
    fwd_f, train_f = FLOPS[net]
    train_ops, fwd_ops = OPS[net]
    sync_train, sync_fwd = s["syncs"]
    train = {b: b / step_seconds(net, prec, b, train_f, train_ops, sync_train) for b in (16, 32, 64, 128, 256, 512)}
    fwd = {b: b / step_seconds(net, prec, b, fwd_f, fwd_ops, sync_fwd) for b in (16, 64, 128, 256, 512)}
    psg_prec = "fp32" if prec == "fp32" else "tf32"  # Fisher's per-sample gradients: the run's TF32, no autocast
    per_sample = (train_f / (PEAK[psg_prec] * UTIL[(net, "fp32" if psg_prec == "fp32" else "tensor")])
                  + 3 * PARAMS[net] * 4 / HBM)
    psg = {32: 1 / per_sample}
    # SSD's importances: forward + backward in true float32 (ssd/precision.py importance_scope)
    # (as coded they ran in the run's precision: TF32 convolutions, fp32 matmuls)
    imp_prec = prec if scenario == "as-coded" else "fp32"
    imp = {b: b / step_seconds(net, imp_prec, b, train_f, train_ops, sync_train) for b in (64, 128)}
    return {"net": net, "device": f"H200 by arithmetic ({scenario})", "train": train, "fwd": fwd, "psg": psg, "imp": imp,
            "build_s": 1.0 if net == "ViT" else 0.05, "copy_s": 0.05, "flops": PEAK["tf32"] * 0.5,
            "params": PARAMS[net], "precision": prec}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    doc = {"rates": {net: rates(net, a.scenario) for net in FLOPS}, "scenario": a.scenario,
           "note": "by arithmetic (scripts/gpu_rates_model.py), not measured"}
    Path(a.out).write_text(json.dumps(doc, indent=1))
    for net, r in doc["rates"].items():
        print(f"{net} {a.scenario}: train " + ", ".join(f"b{b} {v:,.0f}" for b, v in r["train"].items())
              + f" img/s; forward b512 {r['fwd'][512]:,.0f}; per-sample grads {r['psg'][32]:,.0f}/s")


if __name__ == "__main__":
    main()
