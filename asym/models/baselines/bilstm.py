"""Floor baseline: one BiLSTM per modality over packed sequences, late fusion of final states.

The LMVD paper reports a BiLSTM among its baselines (He et al., 2024); this is our own plain
version, with packing so padding never enters the recurrence.
"""

from __future__ import annotations

from pydantic import PositiveInt

from asym.models import ModelConfig, Rate, register_model


class BiLSTMConfig(ModelConfig):
    hidden: PositiveInt
    layers: PositiveInt
    dropout: Rate


register_model("bilstm", BiLSTMConfig, "BiLSTM", description="Per-modality BiLSTM, late fusion (floor)")

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from asym.models.layers import Classifier


class _Encoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return torch.cat([h[-2], h[-1]], dim=-1)   # last layer, forward and backward


class BiLSTM(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.audio = _Encoder(audio_dim, hidden, layers, dropout)
        self.visual = _Encoder(visual_dim, hidden, layers, dropout)
        self.head = Classifier(4 * hidden, dropout)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.audio(audio, lengths), self.visual(visual, lengths)], dim=-1))
