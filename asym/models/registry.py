"""Every model, baseline and ablation variant, declared once by name.

Snakemake, DVC (via `asym dvc-yaml`), the tests and the reports all list models from here.
An entry names its implementation, the params.yaml family block it reads
(model.<scale>.<family>), the training recipe it is trained with, and the keys it overrides;
a variant is one more entry. A model has one spelling: its registry name, with `-` read as
`_`, is its params.yaml family and its module under baselines/ (ASYM's variants all read the
`asym` family). Each family's typed schema is in asym.models.families; building and counting
are asym.models.factory's. Importing this module does not import torch, so the Snakefile can
read it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from asym.errors import ConfigError
from asym.models.families import FAMILIES


@dataclass(frozen=True)
class Entry:
    name: str
    target: str                    # "module:Class"
    family: str                    # params.yaml block under model.<scale>
    kind: str                      # "asym" | "ablation" | "baseline"
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    recipe: str = "asym"           # params.yaml block under recipes.<scale>

    def digest(self) -> str:
        """A short fingerprint of what this entry means; a DVC stage's command carries it, so
        editing one entry reruns that model's stages and no other."""
        text = json.dumps({"target": self.target, "family": self.family, "recipe": self.recipe,
                           "overrides": dict(self.overrides)}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_ENTRIES: dict[str, Entry] = {}


def register(name: str, target: str, family: str, kind: str, description: str, recipe: str = "asym",
             **overrides: Any) -> None:
    if name in _ENTRIES:
        raise ConfigError(f"model {name!r} is registered twice")
    if family not in FAMILIES:
        raise ConfigError(f"model {name!r}: no family {family!r} in asym.models.families")
    schema = FAMILIES[family]
    unknown = sorted(set(overrides) - set(schema.model_fields) - {"by_dataset"})
    if unknown:
        raise ConfigError(f"model {name!r} overrides {unknown}, which family {family!r} does not have")
    for key, value in overrides.items():
        try:
            TypeAdapter(schema.model_fields[key].rebuild_annotation()).validate_python(value)
        except ValidationError as exc:
            raise ConfigError(f"model {name!r}: override {key}={value!r}: {exc.errors()[0]['msg']}") from None
    _ENTRIES[name] = Entry(name, target, family, kind, description, overrides, recipe)


# --- ASYM and its ablations (each variant switches one thing off in the full model) --------
_ASYM = "asym.models.asym:ASYM"
register("asym", _ASYM, "asym", "asym", "ASYM: CMIM + MSGPF + MEM (full model)")
register("asym-no-mamba-interaction", _ASYM, "asym", "ablation",
         "CMIM's audio and visual Bi-Mambas without shared state matrices A (independent streams until "
         "cross-attention)", use_mamba_interaction=False)
register("asym-no-cmim", _ASYM, "asym", "ablation", "Without Cross-Modal Interactive Mamba (projection only)",
         use_cmim=False)
register("asym-no-crossattn", _ASYM, "asym", "ablation", "CMIM without its cross-attention", use_crossattn=False)
register("asym-no-msgpf", _ASYM, "asym", "ablation", "Plain concatenation instead of MSGPF", use_msgpf=False)
register("asym-no-multiscale", _ASYM, "asym", "ablation", "MSGPF with a single scale (kernel 1)", use_multiscale=False)
register("asym-no-gate", _ASYM, "asym", "ablation", "MSGPF paths mixed with fixed equal weights", use_gate=False)
register("asym-no-mem", _ASYM, "asym", "ablation", "Without Multimodal Enhanced Mamba", use_mem=False)
register("asym-audio-only", _ASYM, "asym", "ablation", "Audio stream only", modalities=["audio"])
register("asym-visual-only", _ASYM, "asym", "ablation", "Visual stream only", modalities=["visual"])
register("asym-unidirectional", _ASYM, "asym", "ablation",
         "Forward-only Mamba instead of Bi-Mamba, at the full model's parameter count: each block's inner width "
         "grows until it holds the parameters of the Bi-Mamba it replaces (d_state and d_conv unchanged, so only "
         "the backward scan is taken away)", sequence_block="mamba-matched")
register("asym-transformer", _ASYM, "asym", "ablation",
         "Transformer encoder layers instead of Bi-Mamba, sinusoidal positions added to the projected inputs",
         sequence_block="transformer")

# --- baselines ---------------------------------------------------------------------------
register("mean-mlp", "asym.models.baselines.mean_mlp:MeanMLP", "mean_mlp", "baseline",
         "Masked temporal mean of both modalities + MLP (floor)")
register("bilstm", "asym.models.baselines.bilstm:BiLSTM", "bilstm", "baseline",
         "Per-modality BiLSTM, late fusion (floor)")
register("transformer", "asym.models.baselines.transformer:TransformerBaseline", "transformer", "baseline",
         "Early-fusion Transformer encoder")
register("depression-detector", "asym.models.baselines.depression_detector:DepressionDetector",
         "depression_detector", "baseline", "D-Vlog's Depression Detector (Yoon et al., AAAI 2022)")
register("mult", "asym.models.baselines.mult:MulT", "mult", "baseline",
         "Multimodal Transformer (Tsai et al., ACL 2019)")
register("tamfn", "asym.models.baselines.tamfn:TAMFN", "tamfn", "baseline",
         "Time-aware attention multimodal fusion (Zhou et al., 2023)")
register("mddformer", "asym.models.baselines.mddformer:MDDformer", "mddformer", "baseline",
         "LMVD's MDDformer (He et al., 2024)")
register("depmamba", "asym.models.baselines.depmamba:DepMamba", "depmamba", "baseline",
         "DepMamba: progressive fusion Mamba (Ye et al., ICASSP 2025), as its public code builds it",
         recipe="depmamba")
register("caf-mamba", "asym.models.baselines.caf_mamba:CAFMamba", "caf_mamba", "baseline",
         "CAF-Mamba, bimodal: cross-modal adaptive attention fusion Mamba (Zhou et al., ICASSP 2026), as its "
         "public code builds it", recipe="caf-mamba")
register("mdd-net", "asym.models.baselines.mdd_net:MDDNet", "mdd_net", "baseline",
         "MDD-Net: GSA + HATNet + mutual transformer (Haque et al., IEEE SMC 2025), as its public code builds it",
         recipe="mdd-net")


def names(kind: str | None = None) -> list[str]:
    return [n for n, e in _ENTRIES.items() if kind is None or e.kind == kind]


def get(name: str) -> Entry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {names()}") from None
