"""Models by the names the authors' `-net` flag uses; each adapts to the dataset."""

from models.registry import MODELS, ModelEntry, build_model, register_model

__all__ = ["MODELS", "ModelEntry", "build_model", "register_model"]
