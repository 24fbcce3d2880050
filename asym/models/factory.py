"""Models from registry entries: the class an entry names, built from its resolved family config.

The registry (asym.models.registry) collects the models' declarations only; a model's torch code
runs here, when its class is looked up, so the Snakefile and the config never pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asym.data.formats import input_widths
from asym.models import registry
from asym.models.families import ModelConfig

if TYPE_CHECKING:
    from torch import nn

    from asym.config import Params


def model_class(name: str) -> type:
    module, cls = registry.get(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def family_config(name: str, values: dict[str, Any]) -> ModelConfig:
    """A resolved config (a checkpoint's, say) checked against the entry's family schema."""
    return registry.family(registry.get(name).family).model_validate(values)


def build(name: str, audio_dim: int, visual_dim: int, config: ModelConfig) -> nn.Module:
    """Entry `name` built from `config` (the family's resolved block): forward(audio, visual,
    lengths) -> logits (B,). Nothing else is read, so a checkpoint's config rebuilds it exactly."""
    return model_class(name)(audio_dim=audio_dim, visual_dim=visual_dim, **config.kwargs())


def from_params(name: str, params: Params, dataset: str | None = None,
                widths: tuple[int, int] | None = None, **overrides: Any) -> nn.Module:
    """Entry `name` at `params`' scale, refined for `dataset`, on `widths` (the dataset's
    format's when not given)."""
    if widths is None and dataset is None:
        raise ValueError(f"building {name!r} needs the input widths or a dataset to take them from")
    audio_dim, visual_dim = widths or input_widths()[params.dataset(dataset).format]
    return build(name, audio_dim, visual_dim, params.model_config(name, dataset, **overrides))


def parameter_count(name: str, params: Params, scale: str, dataset: str) -> int:
    """Parameters of `name` at `scale` on `dataset`'s input widths, shared ones counted once."""
    model = from_params(name, params.at_scale(scale), dataset, widths=input_widths()[dataset])
    return sum(p.numel() for p in model.parameters())


def details(params: Params) -> list[dict[str, Any]]:
    """One row per model: kind, recipe and parameter count at each scale on each dataset's widths."""
    rows = []
    for name in registry.names():
        e = registry.get(name)
        counts = {f"{scale}/{ds}": parameter_count(name, params, scale, ds) for scale in params.scales
                  for ds in input_widths()}
        rows.append({"model": name, "kind": e.kind, "recipe": e.recipe, **counts})
    return rows
