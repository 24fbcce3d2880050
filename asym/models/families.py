"""The typed hyper-parameters of every model family: the schema of `model.<scale>.<family>`.

One class per family, beside the registry that names it and without importing torch, so that
params.yaml is checked at load (before Snakemake or DVC start any job): an unknown key, a wrong
type or a missing key is refused with its dotted key named, e.g.
`model.demo.asym.d_stat: unknown key (a typo?)`. Fields with defaults are what registry entries
switch (ASYM's ablations); they may be set in params.yaml too. `by_dataset` refines a family per
dataset with a partial block of the same fields. A test checks that each class's fields are its
model's constructor arguments.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, create_model

from asym.schema import Strict

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]     # a dropout probability


class Family(Strict):
    """A family block; `by_dataset` holds per-dataset partial blocks (validated as `Partial`)."""

    by_dataset: dict[str, Any] = Field(default_factory=dict)

    def resolved(self, dataset: str | None, overrides: dict[str, Any] | None = None) -> Family:
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


class MeanMlp(Family):
    hidden: PositiveInt
    dropout: Rate


class BiLstm(Family):
    hidden: PositiveInt
    layers: PositiveInt
    dropout: Rate


class TransformerFamily(Family):
    d_model: PositiveInt
    heads: PositiveInt
    layers: PositiveInt
    ffn: PositiveInt
    dropout: Rate


class Tamfn(Family):
    d_model: PositiveInt
    tcn_kernel: PositiveInt
    tcn_levels: PositiveInt
    heads: PositiveInt
    dropout: Rate


class MddFormer(TransformerFamily):
    tcn_kernel: PositiveInt
    tcn_levels: PositiveInt


class DepMamba(Family):
    input_size: PositiveInt
    output_sizes: list[PositiveInt]
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    cnn_kernel: PositiveInt
    dropout: Rate


class CafMamba(Family):
    d_model: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    head_dropout: Rate


class MddNet(Family):
    gsa_heads: PositiveInt
    gsa_key_dim: PositiveInt
    gsa_rel_pos_length: PositiveInt
    bottleneck_ratio: PositiveFloat
    bottleneck_stride: PositiveInt
    audio_channels: PositiveInt
    hat_stem: PositiveInt
    hat_dims: list[PositiveInt]
    hat_head_dim: PositiveInt
    hat_expansions: list[PositiveInt]
    hat_depths: list[PositiveInt]
    hat_strides: list[PositiveInt]
    hat_frozen_blocks: bool
    d_model: PositiveInt
    layers: PositiveInt
    mutual_heads: PositiveInt
    mutual_ffn: PositiveInt
    fusion_heads: PositiveInt
    fusion_ffn: PositiveInt
    dropout: Rate
    head_dropout: Rate


class Asym(Family):
    d_model: PositiveInt
    cnn_kernel: PositiveInt
    cmim_blocks: PositiveInt
    heads: PositiveInt
    msgpf_kernels: list[PositiveInt]
    mem_blocks: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    expand: PositiveInt
    dropout: Rate
    ffn: PositiveInt
    # What ASYM's ablations switch (registry entries); the full model by default.
    sequence_block: Literal["bimamba", "mamba-matched", "transformer"] = "bimamba"
    modalities: list[Literal["audio", "visual"]] = Field(default_factory=lambda: ["audio", "visual"], min_length=1)
    use_cmim: bool = True
    use_crossattn: bool = True
    use_msgpf: bool = True
    use_multiscale: bool = True
    use_gate: bool = True
    use_mem: bool = True
    use_mamba_interaction: bool = True


FAMILIES: dict[str, type[Family]] = {
    "mean_mlp": MeanMlp, "bilstm": BiLstm, "transformer": TransformerFamily,
    "depression_detector": TransformerFamily, "mult": TransformerFamily, "tamfn": Tamfn,
    "mddformer": MddFormer, "depmamba": DepMamba, "caf_mamba": CafMamba, "mdd_net": MddNet, "asym": Asym,
}


def _partial(cls: type[Family]) -> type[Strict]:
    """`cls` with every field optional and no default: a `by_dataset` refinement."""
    fields = {name: (Optional[f.rebuild_annotation()], None)  # noqa: UP045 (an Annotated alias)
              for name, f in cls.model_fields.items() if name != "by_dataset"}
    return create_model(f"{cls.__name__}ByDataset", __base__=Strict, **fields)


def _with_typed_by_dataset(cls: type[Family]) -> type[Family]:
    return create_model(cls.__name__, __base__=cls,
                        by_dataset=(dict[str, _partial(cls)], Field(default_factory=dict)))


TYPED: dict[str, type[Family]] = {name: _with_typed_by_dataset(cls) for name, cls in FAMILIES.items()}
# The schema of `model.<scale>`: one required block per family, nothing else.
ModelBlocks = create_model("ModelBlocks", __base__=Strict, **{name: (cls, ...) for name, cls in TYPED.items()})
