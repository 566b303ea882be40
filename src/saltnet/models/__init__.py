"""Model registry: names in config select a builder here."""

from saltnet.models.registry import MODELS, build_model, get_model_spec

__all__ = ["MODELS", "build_model", "get_model_spec"]
