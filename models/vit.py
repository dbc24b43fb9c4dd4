"""Vision transformers: the paper's ViT-B/16 (through transformers) and a small from-scratch ViT.

`ViT` is what the SSD authors fine-tune: ImageNet ViT-B/16 at 224 px. The data
pipeline stays model-agnostic (CIFAR stays 32 px, MNIST stays grey), so the wrapper
adapts every batch inside `forward`: grey is repeated to 3 channels and other sizes
are bilinearly resized to the backbone's size. transformers is imported inside the
builder only, because importing it costs seconds that ResNet/ConvNet runs never need.

`SmallViT` is a compact self-written ViT for 32 px data trained from scratch (no
transformers dependency), so transformer experiments fit a laptop.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import UserError
from models.registry import register_model
from models.weights import load_weights_file

if TYPE_CHECKING:
    from transformers import ViTForImageClassification


def adapt_input(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Repeat grey to `channels` and bilinearly resize to `size`×`size` when needed."""
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"cannot adapt {x.shape[1]}-channel input to {channels} channels")
        x = x.expand(-1, channels, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class HFViTClassifier(nn.Module):
    """A transformers ViTForImageClassification whose forward takes any image and returns logits.

    Returning a plain tensor (never an `ImageClassifierOutput`) keeps every training
    and unlearning loop model-agnostic.
    """

    def __init__(self, net: ViTForImageClassification) -> None:
        super().__init__()
        self.net = net
        self.channels = int(net.config.num_channels)
        image_size = net.config.image_size
        self.image_size = int(image_size if isinstance(image_size, int) else image_size[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=adapt_input(x, self.channels, self.image_size)).logits


def _check_channels(name: str, in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise UserError(f"{name} takes 1- or 3-channel images, got {in_channels} channels")


def _load_pretrained_vit(path: Path, num_classes: int) -> ViTForImageClassification:
    """A local `save_pretrained` folder, with a fresh `num_classes` head; never touches the hub."""
    from transformers import ViTConfig, ViTForImageClassification

    if not path.exists():
        raise UserError(f"ViT pretrained folder {path} does not exist")
    if not (path / "config.json").is_file():
        raise UserError(f"ViT pretrained folder {path} has no config.json (expected a save_pretrained folder)")
    try:
        # Setting num_labels on the folder's config (rather than passing num_labels= to
        # from_pretrained) also resets its ImageNet id2label, without a mismatch warning.
        config = ViTConfig.from_pretrained(str(path), local_files_only=True)
        config.num_labels = num_classes
        return ViTForImageClassification.from_pretrained(
            str(path),
            config=config,
            ignore_mismatched_sizes=True,  # the ImageNet head is replaced by a num_classes one
            local_files_only=True,
            dtype=torch.float32,  # transformers 5 defaults to the checkpoint's dtype
        )
    except Exception as err:  # corrupt/foreign files raise OSError, ValueError, SafetensorError…
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load ViT weights from {path}: {first[:160]}") from None


@register_model("ViT", "ViT-B/16 at 224 px (transformers); --pretrained DIR loads local ImageNet weights")
def vit_b16(num_classes: int, in_channels: int, image_size: int, pretrained: str | None = None) -> nn.Module:
    """ViT-B/16; the backbone's config (size, patch, width) comes from the pretrained folder when given.

    Taking the config from the folder lets tests load a tiny saved ViT through the same
    path as the real ImageNet weights.
    """
    del image_size  # inputs are resized inside forward
    _check_channels("ViT", in_channels)
    if pretrained:
        return HFViTClassifier(_load_pretrained_vit(Path(pretrained), num_classes))
    from transformers import ViTConfig, ViTForImageClassification

    warnings.warn(
        "ViT is randomly initialised (no ImageNet weights), unlike the paper's fine-tuned ViT-B/16; "
        "pass --pretrained DIR with a local save_pretrained folder of google/vit-base-patch16-224",
        UserWarning,
        stacklevel=2,
    )
    config = ViTConfig(num_labels=num_classes)  # defaults: ViT-B, patch 16, 224 px, 3 channels
    return HFViTClassifier(ViTForImageClassification(config))


class _Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (SDPA kernel)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def small_vit_patch(image_size: int) -> int:
    """Patch 4 from 16 px up (32 px → 8×8 = 64 tokens, 28 px → 7×7), patch 2 below (8 px → 4×4)."""
    return 4 if image_size >= 16 else 2


class SmallViT(nn.Module):
    """A ViT sized for 32 px data trained from scratch.

    Defaults (patch 4, dim 192, depth 6, 3 heads, MLP 384; ≈1.8M parameters) follow the
    usual ViT-Tiny width with half its depth and MLP ratio 2: large enough to fit
    CIFAR well, small enough to train in hours on one GPU and to unlearn on a CPU.
    The class token feeds the head, as in ViT-B/16, so SSD treats both ViTs alike.
    An image size the patch does not divide is resized up to the next multiple.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        patch_size: int | None = None,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_dim: int = 384,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size or small_vit_patch(image_size)
        self.input_size = math.ceil(image_size / self.patch_size) * self.patch_size
        self.channels = in_channels
        tokens = (self.input_size // self.patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(*[_Block(dim, heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated-normal(0.02) tokens and linears, zero biases: the standard ViT recipe."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = adapt_input(x, self.channels, self.input_size)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # N×tokens×dim
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_model("SmallViT", "small ViT for 32 px from scratch (patch 4, dim 192, depth 6, 3 heads)")
def small_vit(num_classes: int, in_channels: int, image_size: int, pretrained: str | None = None) -> nn.Module:
    """Adapts its patch embedding to the dataset's channels and its token grid to the image size."""
    model = SmallViT(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    if pretrained:
        load_weights_file(model, pretrained)
    return model
