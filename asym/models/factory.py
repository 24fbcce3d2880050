"""Models from registry entries: the class an entry names, built from its resolved family config.

The registry (asym.models.registry) collects the models' declarations only; a model's torch code
runs here, when its class is looked up, so the Snakefile and the config never pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asym.data import formats
from asym.errors import ConfigError
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
    """Entry `name` at `params`' scale, refined for `dataset`, on `widths`: the data's (a
    table's or a checkpoint's), or where not given those the dataset's release fixes."""
    if widths is None:
        if dataset is None:
            raise ValueError(f"building {name!r} needs the input widths or a dataset to take them from")
        fmt = formats.get(params.dataset(dataset).format)
        if fmt.widths is None:
            raise ConfigError(f"dataset {dataset!r} ({fmt.name}): its widths come from its data; pass those of "
                              "its table or checkpoint")
        widths = fmt.widths
    audio_dim, visual_dim = widths
    return build(name, audio_dim, visual_dim, params.model_config(name, dataset, **overrides))


def trainable_count(model: nn.Module) -> int:
    """The parameters training updates (`requires_grad`: a block frozen at construction, such as
    mdd-net's with `hat_frozen_blocks`, left out), shared ones counted once: what a run's
    train.json records as `n_params` and its model card calls trainable."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def total_count(model: nn.Module) -> int:
    """Every parameter, frozen ones too, shared ones counted once: a model's size."""
    return sum(p.numel() for p in model.parameters())


def parameter_count(name: str, params: Params, scale: str, dataset: str,
                    widths: tuple[int, int] | None = None) -> int:
    """Parameters of `name` at `scale` on `dataset`'s input widths (its release's, unless given),
    frozen ones too, shared ones counted once (`total_count`; a run counts `trainable_count`)."""
    model = from_params(name, params.at_scale(scale), dataset, widths=widths or formats.get(dataset).widths)
    return total_count(model)


def details(params: Params) -> list[dict[str, Any]]:
    """One row per model: kind, recipe and parameter count at each scale on the widths of the two
    releases the paper compares on."""
    rows = []
    for name in registry.names():
        e = registry.get(name)
        counts = {f"{scale}/{ds}": parameter_count(name, params, scale, ds) for scale in params.scales
                  for ds in formats.PAPER_RELEASES}
        rows.append({"model": name, "kind": e.kind, "recipe": e.recipe, **counts})
    return rows
