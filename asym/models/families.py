"""The typed hyper-parameters of a model: the base of every model's config, the schema of its
params.yaml block `model.<scale>.<family>`.

Each model's file declares its config as a subclass of `ModelConfig` (asym.models.registry
collects them), without importing torch, so that params.yaml is checked at load (before
Snakemake or DVC start any job): an unknown key, a wrong type or a missing key is refused with
its dotted key named, e.g. `model.demo.asym.d_stat: unknown key (a typo?)`. A field without a
default is a value params.yaml must give; a field with a default is a switch that registry
entries set (ASYM's ablations) and params.yaml may set too. The model's constructor takes exactly
the config's fields, without defaults (a test checks both), so each default is written once.
`by_dataset` refines a block per dataset with a partial block of the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Optional

from pydantic import Field, create_model

from asym.schema import Strict

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]     # a dropout probability


class ModelConfig(Strict):
    """A model's block; `by_dataset` holds per-dataset partial blocks (validated as `Partial`)."""

    by_dataset: dict[str, Any] = Field(default_factory=dict)

    def resolved(self, dataset: str | None, overrides: dict[str, Any] | None = None) -> ModelConfig:
        """This block for `dataset`, with `overrides` (a registry entry's) in place: validated
        again, so an override of the wrong type is refused too."""
        values = self.model_dump(exclude={"by_dataset"})
        if dataset is not None and dataset in self.by_dataset:
            values.update(self.by_dataset[dataset].model_dump(exclude_none=True))
        values.update(overrides or {})
        return type(self).model_validate(values)

    def kwargs(self) -> dict[str, Any]:
        """The model constructor's keyword arguments."""
        return self.model_dump(exclude={"by_dataset"})


def _partial(cls: type[ModelConfig]) -> type[Strict]:
    """`cls` with every field optional and no default: a `by_dataset` refinement."""
    fields = {name: (Optional[f.rebuild_annotation()], None)  # noqa: UP045 (an Annotated alias)
              for name, f in cls.model_fields.items() if name != "by_dataset"}
    return create_model(f"{cls.__name__}ByDataset", __base__=Strict, **fields)


def typed(cls: type[ModelConfig]) -> type[ModelConfig]:
    """`cls` as params.yaml's block: its `by_dataset` refinements typed too."""
    return create_model(cls.__name__, __base__=cls,
                        by_dataset=(dict[str, _partial(cls)], Field(default_factory=dict)))


def model_blocks(families: Mapping[str, type[ModelConfig]]) -> type[Strict]:
    """The schema of `model.<scale>`: one required block per family (typed), nothing else."""
    return create_model("ModelBlocks", __base__=Strict, **{name: (typed(cls), ...) for name, cls in families.items()})
