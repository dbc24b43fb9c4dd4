"""Optional wandb sink. Offline unless an account is configured; `--logger none` turns it off."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

# The authors' wandb keys, mapped from our metric names.
AUTHORS_KEYS = {"TestAcc": "TestAcc", "RetainTestAcc": "DrTest", "Df": "DfPaper", "MIA": "MIA", "ZRF": "ZRF",
                "MethodTime": "MethodTime"}


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
    """One wandb run per result row, with the authors' keys plus all of ours."""
    import wandb

    metrics = dict(row.get("metrics", {}))
    # The authors' "Df" is forget-*test* accuracy for class tasks (forget-train for random).
    if metrics.get("DfTest") is not None:
        metrics.setdefault("DfPaper", metrics["DfTest"])
    else:
        metrics.setdefault("DfPaper", metrics.get("Df"))
    payload = {k: metrics.get(ours) for k, ours in AUTHORS_KEYS.items() if metrics.get(ours) is not None}
    payload.update({k: v for k, v in metrics.items() if v is not None})
    Path(directory).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, name=name, config=row.get("config", {}), mode=wandb_mode(),
                     dir=str(directory), reinit="finish_previous")
    run.log(payload)
    run.summary.update({"run_key": row.get("run_key"), "split_hash": row.get("split_hash"),
                        "checkpoint_sha256": row.get("checkpoint_sha256"), "code_version": row.get("code_version")})
    run.finish()
