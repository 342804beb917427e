"""Ancestry architectures, the integral-layer view and checkpoints.

Public API (everything else in this package is private):

* `create_model`, `PRESETS`, `register_preset`, `ModelSpec`: build presets and timm ViT/ResNet/VGG.
* `layer_view`, `LayerView`, `family_of`, `normalize_indices`: integral layers of any of them.
* `ModelCard`, `save_checkpoint`, `load_weights`, `load_checkpoint`, `file_sha256`,
  `shipped_checkpoints`: safetensors weights with a JSON card; `check_card_fits` (a card against the
  weights' shapes, before building) and `non_finite` (tensors holding NaN or infinity).
"""

from learngene.models._builders import ConvUnit
from learngene.models._factory import create_from_spec, create_model
from learngene.models._families import GRANULARITIES, Granularity, family_of, layer_view
from learngene.models._presets import PRESETS, register_preset
from learngene.models._spec import ModelSpec
from learngene.models._view import LayerView, normalize_indices
from learngene.models.checkpoint import (
    LoadReport,
    ModelCard,
    check_card_fits,
    file_sha256,
    load_checkpoint,
    load_weights,
    non_finite,
    read_card,
    save_checkpoint,
    shipped_checkpoints,
)

__all__ = [
    "GRANULARITIES",
    "PRESETS",
    "ConvUnit",
    "Granularity",
    "LayerView",
    "LoadReport",
    "ModelCard",
    "ModelSpec",
    "create_from_spec",
    "check_card_fits",
    "create_model",
    "family_of",
    "file_sha256",
    "layer_view",
    "load_checkpoint",
    "load_weights",
    "non_finite",
    "normalize_indices",
    "read_card",
    "register_preset",
    "save_checkpoint",
    "shipped_checkpoints",
]
