"""Integrated Gradients (Sundararajan et al., 2017) of the depressed-class logit, by Captum.

The baseline is the training fold's mean input after the run's normalisation: zeros after
z-scoring (and after per-vlog z-scoring), the raw training-fold mean where a recipe feeds raw
features. It is the "absent" input of the robustness study: a modality or a frame at its
baseline carries nothing the model has not seen on average in training, so an attribution is how
much of the logit's distance from that average input each input value accounts for.

Vlogs are attributed a few at a time, padded to the longest of them; the model reads each vlog's
true length (`lengths`, passed to Captum as an additional forward argument, repeated along the
path as the inputs are). A padded frame equals its baseline (both zero), so its attribution is
exactly zero, and it is cut off before anything is summed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients
from torch import nn

from asym.data.parquet import FeatureTable
from asym.train.normalize import AnyNormalizer


@dataclass
class VlogAttribution:
    """One vlog's attributions (frames x features, per modality) and what they explain."""

    sample_id: str
    label: int
    audio: np.ndarray
    visual: np.ndarray
    logit: float
    baseline_logit: float
    delta: float                  # Captum's convergence delta: sum of attributions - (logit - baseline_logit)

    @property
    def n_frames(self) -> int:
        return self.audio.shape[0]

    def per_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Sum of |attribution| over each modality's features, per frame: the timeline."""
        return np.abs(self.audio).sum(1), np.abs(self.visual).sum(1)

    def per_feature(self) -> np.ndarray:
        """Sum of |attribution| over frames, per feature (audio columns, then visual)."""
        return np.r_[np.abs(self.audio).sum(0), np.abs(self.visual).sum(0)]


class Logit(nn.Module):
    """The model's depressed-class logit, one per vlog: what Captum attributes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Both inputs stay in the graph with a zero weight: a model of one modality (asym-audio-only)
        # gets exactly zero attribution on the other, where torch would refuse an unused input.
        unused = 0.0 * (audio.sum((1, 2)) + visual.sum((1, 2)))
        return self.model(audio, visual, lengths).reshape(audio.shape[0]) + unused


def training_mean(train: FeatureTable, norm: AnyNormalizer) -> tuple[np.ndarray, np.ndarray]:
    """The training fold's mean model input per feature, after the run's normalisation."""
    pairs = [norm(a, v) for a, v in zip(train.audio, train.visual, strict=True)]
    a = np.concatenate([p[0] for p in pairs]).astype(np.float64).mean(0)
    v = np.concatenate([p[1] for p in pairs]).astype(np.float64).mean(0)
    return a.astype(np.float32), v.astype(np.float32)


@contextlib.contextmanager
def _gradients_in_eval(device: torch.device) -> Iterator[None]:
    """cuDNN's recurrent layers refuse a backward pass in eval mode: the native kernels there."""
    if device.type == "cuda":
        with torch.backends.cudnn.flags(enabled=False):
            yield
    else:
        yield


def _padded(frames: list[np.ndarray], fill: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, baselines): the vlogs zero-padded to the longest, and `fill` on their real frames
    (zero on the padding, as the inputs are there)."""
    t = max(f.shape[0] for f in frames)
    x = torch.zeros(len(frames), t, frames[0].shape[1])
    b = torch.zeros_like(x)
    for i, f in enumerate(frames):
        x[i, : f.shape[0]] = torch.from_numpy(np.ascontiguousarray(f, np.float32))
        b[i, : f.shape[0]] = torch.from_numpy(fill)
    return x, b


def attribute(model: nn.Module, table: FeatureTable, norm: AnyNormalizer, baseline: tuple[np.ndarray, np.ndarray],
              n_steps: int, internal_batch_size: int, device: torch.device) -> list[VlogAttribution]:
    """Integrated Gradients of every vlog of `table`, in its order. As many vlogs go into one call
    as let all their `n_steps` path points share one forward pass of `internal_batch_size`."""
    model = Logit(model).to(device).eval()
    ig = IntegratedGradients(model)
    per_call = max(1, internal_batch_size // n_steps)
    order = np.argsort(table.n_frames, kind="stable")        # similar lengths together: less padding
    out: dict[int, VlogAttribution] = {}
    for k in range(0, len(order), per_call):
        idx = [int(i) for i in order[k: k + per_call]]
        pairs = [norm(table.audio[i], table.visual[i]) for i in idx]
        lengths = torch.tensor([p[0].shape[0] for p in pairs], dtype=torch.int64)
        audio, base_a = _padded([p[0] for p in pairs], baseline[0])
        visual, base_v = _padded([p[1] for p in pairs], baseline[1])
        inputs = tuple(x.to(device) for x in (audio, visual))
        baselines = tuple(x.to(device) for x in (base_a, base_v))
        lengths = lengths.to(device)
        with _gradients_in_eval(device):
            (att_a, att_v), delta = ig.attribute(inputs, baselines=baselines, additional_forward_args=(lengths,),
                                                 n_steps=n_steps, internal_batch_size=internal_batch_size,
                                                 return_convergence_delta=True)
        with torch.no_grad():
            logits = model(*inputs, lengths).float().cpu().numpy()
            base_logits = model(*baselines, lengths).float().cpu().numpy()
        att_a, att_v, delta = (t.detach().float().cpu().numpy() for t in (att_a, att_v, delta))
        for j, i in enumerate(idx):
            n = int(lengths[j])
            out[i] = VlogAttribution(str(table.sample_id[i]), int(table.label[i]), att_a[j, :n], att_v[j, :n],
                                     float(logits[j]), float(base_logits[j]), float(delta[j]))
    return [out[i] for i in range(len(order))]
