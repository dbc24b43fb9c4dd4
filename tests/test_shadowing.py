"""Our top-level `datasets` package shadows Hugging Face's `datasets`; prove nothing we use breaks.

What we found (transformers 5.23):

* `transformers.utils.is_datasets_available()` is just
  `importlib.util.find_spec("datasets") is not None`, so with the repo root on
  `sys.path` it returns **True** and points at *our* package, whether or not Hugging
  Face's library is installed. It does not crash, and it does not import anything.
* The only transformers modules that act on that answer (`import datasets`, then
  `datasets.Dataset`) are `Trainer`, `Seq2SeqTrainer`, `modelcard`, `pipelines` and the
  Ray Tune integration. The harness uses none of them: it builds
  `ViTForImageClassification` directly and loads weights with `from_pretrained` from a
  local folder, and neither path consults `is_datasets_available()`. The subprocess
  test below pins that `transformers.trainer` is never imported on our path. Whoever
  adds `transformers.Trainer` or a pipeline must rename our package first.
* wandb does not import `datasets` at all.

So nothing needed fixing; these tests keep it that way.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repo root first on sys.path, as when running from a checkout."""
    monkeypatch.syspath_prepend(str(REPO))


def test_import_datasets_gives_our_package(repo_first: None) -> None:
    import datasets
    import datasets.registry

    assert Path(datasets.__file__).resolve() == REPO / "datasets" / "__init__.py"
    assert datasets.load_dataset is datasets.registry.load_dataset
    assert "Digits" in datasets.DATASETS


def test_transformers_datasets_check_does_not_crash(repo_first: None) -> None:
    import transformers

    assert isinstance(transformers.utils.is_datasets_available(), bool)
    spec = importlib.util.find_spec("datasets")
    assert spec is not None and spec.origin is not None
    # What transformers would import if it acted on the answer is our package (see above);
    # the answer itself is cached per process, so its value is not asserted here.
    assert Path(spec.origin).resolve().is_relative_to(REPO)


def test_vit_builds_runs_and_round_trips_with_our_datasets_loaded(repo_first: None, tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    import datasets

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8, num_labels=3)
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
    assert logits.shape == (2, 3)
    model.save_pretrained(tmp_path)
    again = ViTForImageClassification.from_pretrained(str(tmp_path), local_files_only=True).eval()
    with torch.no_grad():
        assert torch.allclose(again(pixel_values=x).logits, logits)
    assert hasattr(datasets, "DATASETS")  # still ours after transformers ran


def test_wandb_imports_alongside_our_datasets(repo_first: None) -> None:
    import datasets

    wandb = importlib.import_module("wandb")
    assert hasattr(wandb, "init")
    assert sys.modules["datasets"] is datasets and hasattr(datasets, "load_dataset")


_SCRIPT = """
import sys
{first}
{second}
import datasets, torch, transformers
from transformers import ViTConfig, ViTForImageClassification
assert datasets.__file__.startswith({repo!r}), datasets.__file__
assert hasattr(datasets, "load_dataset") and hasattr(datasets, "DATASETS")
cfg = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                image_size=32, patch_size=8, num_labels=3)
out = ViTForImageClassification(cfg)(pixel_values=torch.randn(1, 3, 32, 32)).logits
assert tuple(out.shape) == (1, 3)
from models import build_model
from datasets import dataset_info
assert build_model("ConvNet", dataset_info("Digits"))(torch.randn(1, 1, 8, 8)).shape == (1, 10)
assert "transformers.trainer" not in sys.modules, "Trainer would use our datasets as Hugging Face's"
print("ok", transformers.utils.is_datasets_available())
"""

_ORDERS = {
    "ours-first": ("import datasets", "from transformers.models.vit import modeling_vit"),
    "transformers-first": ("from transformers.models.vit import modeling_vit", "import datasets"),
}


@pytest.mark.parametrize("order", list(_ORDERS))
def test_fresh_interpreter_imports_in_either_order(order: str) -> None:
    first, second = _ORDERS[order]
    code = _SCRIPT.format(first=first, second=second, repo=str(REPO))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # `-c` puts the cwd first
    env["WANDB_MODE"] = "offline"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().startswith("ok")
