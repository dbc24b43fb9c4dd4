"""The model registry: every model builds for every dataset shape, trains, saves and reseeds.

The generic tests are parametrised over `MODELS.names()`, so a newly registered model
is checked without editing this file; only the input settings per model are listed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datasets.base import DatasetInfo
from models import MODELS, build_model
from models.vit import HFViTClassifier, SmallViT
from ssd.checkpoint import save_checkpoint
from ssd.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# (channels, image size, classes): Digits-like, MNIST-like, CIFAR-20-like.
SHAPES = {"1x8x8": (1, 8, 10), "1x28x28": (1, 28, 10), "3x32x32": (3, 32, 20)}
# ViT-B/16 has 86M parameters and always runs at 224 px: one setting keeps it to seconds.
ONLY = {"ViT": ("3x32x32",)}

CASES = [
    pytest.param(name, shape, id=f"{name}-{shape}")
    for name in MODELS.names()
    for shape in ONLY.get(name, tuple(SHAPES))
]


def fake_info(channels: int, size: int, classes: int) -> DatasetInfo:
    """A DatasetInfo with no data behind it: builders only read its shape and class count."""
    return DatasetInfo(
        name=f"fake{channels}x{size}",
        classes=tuple(f"c{i}" for i in range(classes)),
        channels=channels,
        image_size=size,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
    )


def build(name: str, shape: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ViT's "randomly initialised" notice
        return build_model(name, fake_info(*SHAPES[shape]))


def batch(shape: str, n: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    channels, size, classes = SHAPES[shape]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_logits_shape_and_every_parameter_gets_a_gradient(name: str, shape: str) -> None:
    model = build(name, shape).train()
    x, y = batch(shape)
    logits = model(x)
    assert type(logits) is torch.Tensor  # never a Hugging Face output object
    assert logits.shape == (2, SHAPES[shape][2]) and logits.dtype == torch.float32
    F.cross_entropy(logits, y).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"no gradient reaches {dead[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_state_dict_round_trip_gives_identical_outputs(name: str, shape: str) -> None:
    a, b = build(name, shape, seed=0), build(name, shape, seed=1)
    x, _ = batch(shape)
    if any(True for _ in a.buffers()):
        with torch.no_grad():
            a.train()(x)  # moves BatchNorm running statistics, so buffers are part of the check
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x[:1]), b(x[:1]))  # one image: ViT-B/16 runs at 224 px


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_same_seed_gives_identical_init(name: str, shape: str) -> None:
    first, again, other = (build(name, shape, seed=s).state_dict() for s in (0, 0, 1))
    assert list(first) == list(again)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_models_import_without_transformers() -> None:
    """transformers takes seconds to import; only building a ViT-B/16 may pay for it."""
    code = "import sys, models; assert 'transformers' not in sys.modules, 'eager transformers import'"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


# ResNet18 -------------------------------------------------------------------------------


def test_resnet18_is_the_cifar_variant_with_the_paper_size() -> None:
    model = build_model("ResNet18", fake_info(3, 32, 10))
    stem = model.conv1[0]
    assert isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert stem is next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    blocks = [len(getattr(model, f"conv{i}_x")) for i in range(2, 6)]
    widths = [getattr(model, f"conv{i}_x")[0].residual_function[0].out_channels for i in range(2, 6)]
    assert blocks == [2, 2, 2, 2] and widths == [64, 128, 256, 512]
    assert 11.1e6 < sum(p.numel() for p in model.parameters()) < 11.3e6
    # The authors' module names, so their plain .pth state dicts load strictly.
    keys = set(model.state_dict())
    assert {"conv1.0.weight", "conv2_x.0.residual_function.0.weight", "conv3_x.0.shortcut.0.weight",
            "fc.weight", "fc.bias"} <= keys


def test_resnet18_adapts_its_stem_to_grey_images() -> None:
    model = build_model("ResNet18", fake_info(1, 28, 10))
    assert model.conv1[0].in_channels == 1


# ConvNet and SmallViT -----------------------------------------------------------------


@pytest.mark.parametrize(("size", "side"), [(8, 2), (28, 7), (32, 8)])
def test_convnet_fc_width_follows_the_image_size(size: int, side: int) -> None:
    model = build_model("ConvNet", fake_info(1, size, 10))
    assert model.fc1.in_features == 32 * side * side and model.fc2.out_features == 10


@pytest.mark.parametrize(("size", "patch", "tokens"), [(8, 2, 16), (28, 4, 49), (32, 4, 64), (30, 4, 64)])
def test_small_vit_patch_grid(size: int, patch: int, tokens: int) -> None:
    model = build_model("SmallViT", fake_info(3, size, 10))
    assert isinstance(model, SmallViT) and model.patch_size == patch
    assert model.pos_embed.shape[1] == tokens + 1  # + class token
    assert model(torch.randn(2, 3, size, size)).shape == (2, 10)  # 30 px is resized up to 32


# Local weight files for the non-Hugging-Face models ------------------------------------


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n != "ViT"])
def test_pretrained_file_loads_checkpoints_and_bare_state_dicts(name: str, tmp_path: Path) -> None:
    info = fake_info(1, 8, 10)
    torch.manual_seed(0)
    src = build_model(name, info)
    ckpt = save_checkpoint(tmp_path / "c.pt", src, {"net": name})
    torch.save(src.state_dict(), tmp_path / "bare.pth")
    for path in (ckpt, tmp_path / "bare.pth"):
        torch.manual_seed(1)
        loaded = build_model(name, info, pretrained=str(path))
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in src.state_dict().items())
    with pytest.raises(UserError, match="nowhere.pt"):
        build_model(name, info, pretrained=str(tmp_path / "nowhere.pt"))


# ViT-B/16 ---------------------------------------------------------------------------------


def test_vit_without_weights_warns_is_b16_and_adapts_grey_small_inputs() -> None:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"randomly initialised.*--pretrained"):
        model = build_model("ViT", fake_info(1, 28, 10))
    assert isinstance(model, HFViTClassifier)
    cfg = model.net.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.patch_size, cfg.image_size) == (768, 12, 16, 224)
    assert 85e6 < sum(p.numel() for p in model.parameters()) < 87e6
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _tiny_vit_folder(path: Path, num_labels: int = 5) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8, num_labels=num_labels)
    torch.manual_seed(0)
    model = ViTForImageClassification(config)
    model.save_pretrained(path)
    return model


def test_vit_loads_a_local_pretrained_folder_with_a_new_head(tmp_path: Path) -> None:
    src = _tiny_vit_folder(tmp_path / "tiny")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model("ViT", fake_info(1, 8, 7), pretrained=str(tmp_path / "tiny"))
    assert not any("randomly initialised" in str(w.message) for w in caught)
    assert isinstance(model, HFViTClassifier) and model.image_size == 32  # config from the folder
    backbone = model.net.vit.state_dict()
    assert all(torch.equal(v, backbone[k]) for k, v in src.vit.state_dict().items())
    assert model.net.classifier.weight.shape == (7, 32) and model.net.config.num_labels == 7
    assert model.net.classifier.weight.dtype == torch.float32
    logits = model(torch.randn(2, 1, 8, 8))  # grey 8 px in, repeated and resized to 3×32×32
    assert type(logits) is torch.Tensor and logits.shape == (2, 7)
    logits.sum().backward()
    assert model.net.vit.embeddings.patch_embeddings.projection.weight.grad is not None


def test_vit_pretrained_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-vit"
    with pytest.raises(UserError, match="no-such-vit") as err:
        build_model("ViT", fake_info(3, 32, 10), pretrained=str(missing))
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="config.json"):
        build_model("ViT", fake_info(3, 32, 10), pretrained=str(empty))
    _tiny_vit_folder(tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(UserError, match="cannot load ViT weights") as err:
        build_model("ViT", fake_info(3, 32, 10), pretrained=str(tmp_path / "corrupt"))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="1- or 3-channel"):
        build_model("ViT", fake_info(2, 32, 10))
