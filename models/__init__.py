"""Models by the names the authors' `-net` flag uses; each adapts to the dataset.

Importing the model modules registers them (ResNet18, ConvNet, ViT, SmallViT);
transformers is imported only when a ViT-B/16 is built.
"""

from models import convnet as _convnet  # noqa: F401  (registers ConvNet)
from models import resnet as _resnet  # noqa: F401  (registers ResNet18)
from models import vit as _vit  # noqa: F401  (registers ViT, SmallViT)
from models.registry import MODELS, ModelEntry, build_model, register_model

__all__ = ["MODELS", "ModelEntry", "build_model", "register_model"]
