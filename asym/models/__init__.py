"""Models: ASYM, its ablation variants and the published baselines, all behind one registry.

A model file declares itself with what this package exports (see asym.models.registry):
`ModelConfig` (its typed params.yaml block), `Rate` (a dropout probability) and `register_model`.
"""

from asym.models.families import ModelConfig, Rate
from asym.models.registry import register_model

__all__ = ["ModelConfig", "Rate", "register_model"]
