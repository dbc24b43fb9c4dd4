"""Optional wandb sink. Offline unless an account is configured; `--logger none` turns it off."""

from __future__ import annotations

import math
import netrc
import os
from pathlib import Path
from typing import Any

from ssd.report.rows import cold_time

# Our metrics whose names are also authors' wandb keys with another meaning are logged
# under these names, so that the authors' keys keep the authors' meanings.
OURS_RENAMED = {"Df": "DfTrain", "ZRF": "ZRF_DfTrain", "MethodTime": "MethodTimeRun"}


def authors_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The authors' wandb keys with their meanings (if-loops/selective-synaptic-dampening,
    src/forget_*_main.py `wandb.log` and `get_metric_scores` in forget_*_strategies.py):
    Df and ZRF on forget_valid_dl — the forget class's *test* images in the class tasks, the
    forgotten *training* samples in the random task (`forget_valid_dl = forget_train_dl`);
    RetainTestAcc on retain_valid_dl (the whole test set in the random task: our DrTest there);
    MethodTime with D's importances computed, as their code does every run (our cold time,
    ssd.report.rows.cold_time; left out where unknown, never replaced by the cached time;
    theirs also included the metric computation, which their comment says to deduct).
    Our ZRF keeps our normalisation (docs/departures.md)."""
    metrics = row.get("metrics") or {}
    class_task = row.get("task") != "random"
    cold = cold_time(row)
    chosen = {
        "TestAcc": metrics.get("TestAcc"),
        "RetainTestAcc": metrics.get("DrTest"),
        "Df": metrics.get("DfTest") if class_task else metrics.get("Df"),
        "MIA": metrics.get("MIA"),
        "ZRF": metrics.get("ZRF_DfTest") if class_task else metrics.get("ZRF"),
        "MethodTime": None if math.isnan(cold) else cold,
    }
    chosen["DfPaper"] = chosen["Df"]  # the name earlier rows and reports used for it
    return {k: v for k, v in chosen.items() if v is not None}


def wandb_payload(row: dict[str, Any]) -> dict[str, Any]:
    """What one result row logs: the authors' keys (their meanings), then ours beside them —
    ours never overwrite theirs (a clashing name is logged as OURS_RENAMED says)."""
    metrics = {k: v for k, v in row.get("metrics", {}).items() if v is not None}
    ours = {OURS_RENAMED.get(k, k): v for k, v in metrics.items()}
    # TestAcc and MIA mean the same on both sides; every other authors' key wins over ours.
    return {**ours, **authors_metrics(row)}


def wandb_mode() -> str:
    """$WANDB_MODE if set; 'online' with an API key or a netrc entry; otherwise 'offline'."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def log_wandb(row: dict[str, Any], *, project: str, name: str, directory: str | Path = ".") -> None:
    """One wandb run per result row: `wandb_payload(row)` (the authors' keys, then ours).

    Quiet unless asked: wandb's banner and sync chatter are off (WANDB_SILENT=true) unless the
    user set WANDB_SILENT themselves; the run's files are still written under `directory`/wandb."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    payload = wandb_payload(row)
    Path(directory).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, name=name, config=row.get("config", {}), mode=wandb_mode(),
                     dir=str(directory), reinit="finish_previous")
    run.log(payload)
    run.summary.update({"run_key": row.get("run_key"), "split_hash": row.get("split_hash"),
                        "checkpoint_sha256": row.get("checkpoint_sha256"), "code_version": row.get("code_version")})
    run.finish()
