"""Integrated Gradients through Captum on models whose attributions are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from asym.data.parquet import FeatureTable
from asym.explain.attribute import attribute, training_mean
from asym.explain.groups import columns_of
from asym.explain.summary import Shares, sanity, table
from asym.train.normalize import Normalizer, PerSampleNormalizer

FA, FV = 3, 4


class VisualMean(nn.Module):
    """The logit is w . (mean of the visual frames over the vlog's own length): audio is never read
    (as in asym-visual-only), and a frame past `lengths` would change the mean if it were read."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0]))

    def forward(self, audio, visual, lengths):
        mask = (torch.arange(visual.shape[1])[None, :] < lengths[:, None]).float()
        mean = (visual * mask[..., None]).sum(1) / lengths[:, None].float()
        return mean @ self.w


def _table(lengths: list[int], seed: int = 0) -> FeatureTable:
    rng = np.random.default_rng(seed)
    n = len(lengths)
    return FeatureTable([str(i) for i in range(n)], [str(i) for i in range(n)], np.arange(n) % 2, ["test"] * n,
                        [rng.normal(size=(t, FA)).astype(np.float32) for t in lengths],
                        [rng.normal(size=(t, FV)).astype(np.float32) for t in lengths], {})


def _identity() -> Normalizer:
    return Normalizer(np.zeros(FA), np.ones(FA), np.zeros(FV), np.ones(FV))


@pytest.mark.parametrize("batch", [8, 64])      # one vlog per call, or several padded to the longest
def test_linear_model_gets_its_exact_attributions_and_padding_none(batch):
    table = _table([3, 7, 5])
    base = (np.full(FA, 0.2, np.float32), np.full(FV, -0.5, np.float32))
    out = attribute(VisualMean(), table, _identity(), base, n_steps=8, internal_batch_size=batch,
                    device=torch.device("cpu"))
    w = np.array([1.0, -2.0, 0.5, 3.0])
    for v, got in zip(table.visual, out, strict=True):
        t = v.shape[0]
        assert got.audio.shape == (t, FA) and got.visual.shape == (t, FV)     # the vlog's own frames only
        np.testing.assert_allclose(got.visual, (v - base[1]) * w / t, rtol=1e-4, atol=1e-6)
        assert np.abs(got.audio).max() == 0                                   # the model never reads audio
        np.testing.assert_allclose(got.logit, v.mean(0) @ w, rtol=1e-5)
        assert abs(got.delta) < 1e-4                                          # completeness
        assert got.per_frame()[0].sum() == 0 and got.per_feature()[:FA].sum() == 0


def test_baseline_is_the_training_mean_after_normalisation():
    train = _table([5, 9], seed=3)
    raw = training_mean(train, _identity())
    np.testing.assert_allclose(raw[1], np.concatenate(train.visual).mean(0), rtol=1e-5)
    z = training_mean(train, Normalizer.fit(train))
    assert max(np.abs(z[0]).max(), np.abs(z[1]).max()) < 1e-6               # zeros after z-scoring
    assert np.abs(training_mean(train, PerSampleNormalizer(1e-8))[1]).max() < 1e-6


def test_shares_weigh_every_vlog_the_same_and_the_sanity_check_ranks_features():
    table_ = _table([4, 40])
    out = attribute(VisualMean(), table_, _identity(), (np.zeros(FA, np.float32), np.zeros(FV, np.float32)),
                    n_steps=4, internal_batch_size=8, device=torch.device("cpu"))
    s = Shares.of(out, FA)
    per_vlog = [np.abs(o.visual).sum(0) / np.abs(o.visual).sum() for o in out]
    np.testing.assert_allclose(s.overall[FA:], np.mean(per_vlog, 0), rtol=1e-6)
    np.testing.assert_allclose(s.modality, [[0, 1], [0, 1]])
    assert sanity(s, s) == pytest.approx(1.0)
    # groups and modalities add up in the table
    columns = columns_of("manifest", (FA, FV), 2, "xy_blocks")
    rows = table(columns, s, s)
    for m in ("audio", "visual"):
        g = rows[(rows["level"] == "group") & (rows["modality"] == m)]
        mod = rows[(rows["level"] == "modality") & (rows["modality"] == m)].iloc[0]
        assert g["attribution_share"].sum() == pytest.approx(mod["attribution_share"])
        assert g["feature_share_in_modality"].sum() == pytest.approx(1.0)
