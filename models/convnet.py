"""The classroom MNIST ConvNet: small enough to pretrain and unlearn on a CPU in minutes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model
from models.weights import load_weights_file


class ConvNet(nn.Module):
    """conv(16)→ReLU→pool2 → conv(32)→ReLU→pool2 → fc(64)→ReLU → fc(classes).

    Both convs are padded, so only the two 2×2 max-pools shrink the image:
    28 px → 7×7, 32 px → 8×8, 8 px (Digits) → 2×2 features before the first fc.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        if image_size < 4:
            raise ValueError(f"ConvNet needs images of at least 4 px, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        side = (image_size // 2) // 2  # floor, as MaxPool2d does for odd sizes
        self.fc1 = nn.Linear(32 * side * side, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


@register_model("ConvNet", "classroom MNIST ConvNet (2 conv + 2 fc), any channels, ≥ 4 px")
def convnet(num_classes: int, in_channels: int, image_size: int, pretrained: str | None = None) -> nn.Module:
    """The fc width depends on `image_size`, so a checkpoint only fits the size it was trained at."""
    model = ConvNet(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    if pretrained:
        load_weights_file(model, pretrained)
    return model
