"""ResNet18, CIFAR variant: the network the SSD authors unlearn from.

The layout and the module names mirror the authors' `resnet.py` (itself from
weiaicunzai/pytorch-cifar100): `conv1` (a 3×3 stride-1 stem, no max-pool),
`conv2_x`…`conv5_x` of BasicBlocks with `residual_function`/`shortcut`, `avg_pool`, `fc`.
Keeping the names means the authors' plain state-dict `.pth` files load strictly,
and SSD's per-parameter importances line up name by name with theirs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model
from models.weights import load_weights_file


class BasicBlock(nn.Module):
    """Two 3×3 convs plus an identity (or 1×1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        # ReLUs are not in-place so forward hooks (activation capture) see unmodified tensors.
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual_function(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for small images: the stem keeps full resolution, so 32 px ends at 4×4."""

    def __init__(
        self, num_blocks: tuple[int, int, int, int], num_classes: int, in_channels: int = 3, width: int = 64
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"ResNet width must be a positive integer, got {width!r}")
        self.width = width
        self.in_channels = width
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        # Stage widths are width × (1, 2, 4, 8): 64/128/256/512 at the paper's width 64.
        self.conv2_x = self._make_layer(width, num_blocks[0], 1)
        self.conv3_x = self._make_layer(2 * width, num_blocks[1], 2)
        self.conv4_x = self._make_layer(4 * width, num_blocks[2], 2)
        self.conv5_x = self._make_layer(8 * width, num_blocks[3], 2)
        # Adaptive pooling makes any input ≥ 8 px (1×1 after conv5_x) work unchanged.
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * BasicBlock.expansion, num_classes)

    def _make_layer(self, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        """`blocks` BasicBlocks; only the first one changes stride/width."""
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_channels, out_channels, s))
            self.in_channels = out_channels * BasicBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.conv2_x(out)
        out = self.conv3_x(out)
        out = self.conv4_x(out)
        out = self.conv5_x(out)
        out = self.avg_pool(out).flatten(1)
        return self.fc(out)


@register_model("ResNet18", "CIFAR ResNet18 (3×3 stride-1 stem, no max-pool), as in the SSD paper")
def resnet18(num_classes: int, in_channels: int, image_size: int, pretrained: str | None = None,
             width: int = 64) -> nn.Module:
    """The authors' ResNet18; `image_size` needs no change thanks to adaptive pooling.

    `width` is the base width (the stem's channels; stages are 1, 2, 4, 8 times it). 64 is
    the paper's; a smaller one keeps depth, residual blocks and BatchNorm and fits a CPU.
    """
    del image_size  # any size ≥ 8 px works
    model = CifarResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width)
    if pretrained:
        load_weights_file(model, pretrained)
    return model
