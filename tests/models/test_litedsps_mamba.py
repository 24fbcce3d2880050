"""LiteDSPS-Mamba as asym.models.baselines.litedsps_mamba describes it: the behavioural evidence
against its definition, its public code's parameter count, the one Mamba2 layer shared across
modalities and directions, the head's two logits, its seven ablations, and their place in the grid."""

from __future__ import annotations

import math

import pytest
import torch

from asym.config import load_params
from asym.models import factory, registry
from asym.models.baselines.litedsps_mamba import behavioural_evidence
from asym.nn.mamba2 import Mamba2
from tests.project import ROOT

PARAMS = load_params(ROOT / "params.yaml")
PAPER = PARAMS.at_scale("paper")
VARIANTS = registry.names(registry.PEER_ABLATION_KIND)


def regions(n: int, k: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling regions of n values into k: [floor(r n / k), ceil((r + 1) n / k))."""
    return [(r * n // k, math.ceil((r + 1) * n / k)) for r in range(k)]


def evidence_by_definition(x: torch.Tensor, tokens: int, eps: float) -> torch.Tensor:
    """One vlog's (L, d) valid frames -> (min(L, tokens), 4 d), region by region in float64."""
    x = x.double()
    n, k = x.shape[0], min(x.shape[0], tokens)
    diff = (x[1:] - x[:-1]).abs()
    rows = []
    for r, (s, e) in enumerate(regions(n, k)):
        mean = x[s:e].mean(0)
        std = torch.log1p(torch.sqrt(((x[s:e] ** 2).mean(0) - mean ** 2).clamp_min(0) + eps))
        if n > 1:
            ds, de = regions(n - 1, k)[r]
            d_mean, d_max = diff[ds:de].mean(0), diff[ds:de].amax(0)
        else:
            d_mean = d_max = torch.zeros_like(mean)
        rows.append(torch.cat([mean, std, d_mean, d_max]))
    return torch.stack(rows)


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 40, 97])
def test_evidence_is_its_definition_over_each_vlogs_valid_frames_only(n):
    torch.manual_seed(n)
    tokens, t = 16, 100
    x = torch.randn(2, t, 3) * 2 + 1
    lengths = torch.tensor([n, t])
    x[0, n:] = 1e4                                       # padding: garbage that must not count
    ev, n_tokens = behavioural_evidence(x, lengths, tokens, 1e-8)
    assert ev.shape == (2, tokens, 12) and n_tokens.tolist() == [min(n, tokens), tokens]
    # float32's E[x^2] - E[x]^2 cancels where a region barely varies: sqrt(var) is off by up to ~1e-3 there
    close = {"rtol": 1e-4, "atol": 2e-3}
    torch.testing.assert_close(ev[0, :min(n, tokens)].double(), evidence_by_definition(x[0, :n], tokens, 1e-8),
                               **close)
    assert (ev[0, min(n, tokens):] == 0).all()
    torch.testing.assert_close(ev[1].double(), evidence_by_definition(x[1], tokens, 1e-8), **close)


def test_evidence_refuses_an_empty_vlog():
    with pytest.raises(ValueError, match="no valid frame"):
        behavioural_evidence(torch.zeros(1, 4, 2), torch.tensor([0]), 4, 1e-8)


def projector(d: int, e: int) -> int:
    return 2 * d + (d + 1) * e + 2 * e                    # LayerNorm(d), Linear(d, e), LayerNorm(e)


def mamba2(d: int, d_state: int, expand: int, headdim: int, d_conv: int = 4) -> int:
    inner = expand * d
    heads, conv = inner // headdim, inner + 2 * d_state
    return d * (inner + conv + heads) + conv * (d_conv + 1) + 3 * heads + inner + inner * d


@pytest.mark.parametrize(("dataset", "audio"), [("dvlog", 25), ("lmvd", 128)])
def test_paper_block_has_the_parameters_of_its_code(dataset, audio):
    e, dyn = 128, 96
    by_hand = (projector(4 * 136, e) + projector(4 * audio, e) + mamba2(dyn, 32, 2, 64)
               + 2 * dyn + 2 * e + 2 * (4 * e) + (4 * e + 1) * 2)   # post-temporal, reunite, head LN + Linear
    assert factory.parameter_count("litedsps-mamba", PARAMS, "paper", dataset) == by_hand
    full = factory.parameter_count("litedsps-mamba-full-width", PARAMS, "paper", dataset)
    assert full - by_hand == mamba2(e, 32, 2, 64) - mamba2(dyn, 32, 2, 64) + 2 * (e - dyn)


def test_one_mamba2_layer_serves_both_modalities_and_both_directions():
    m = factory.from_params("litedsps-mamba", PAPER, "dvlog", widths=(25, 136))
    assert list(m.temporal) == ["shared_both"]
    layer = m.temporal["shared_both"]
    assert isinstance(layer, Mamba2) and layer.bidirectional and layer.d_state == 32 and layer.headdim == 64
    assert m.dynamic_dim == 96 and m.tokens == 96
    seen = []
    layer.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    with torch.no_grad():
        m.eval()(torch.randn(2, 300, 25), torch.randn(2, 300, 136), torch.tensor([300, 50]))
    assert seen == [(2, 96, 96), (2, 96, 96)]             # visual, then audio: 96 tokens of 96 dynamic channels


def test_model_returns_the_difference_of_its_two_logits():
    m = factory.from_params("litedsps-mamba", PARAMS, widths=(25, 136)).eval()
    seen = {}
    m.head.register_forward_hook(lambda mod, args, out: seen.update(logits=out))
    audio, visual, lengths = torch.randn(3, 30, 25), torch.randn(3, 30, 136), torch.tensor([30, 12, 3])
    with torch.no_grad():
        out = m(audio, visual, lengths)
    logits, y = seen["logits"], torch.tensor([1, 0, 1])
    torch.testing.assert_close(out, logits[:, 1] - logits[:, 0])
    torch.testing.assert_close(torch.nn.functional.binary_cross_entropy_with_logits(out, y.float()),
                               torch.nn.functional.cross_entropy(logits, y))


def build(name: str):
    torch.manual_seed(0)
    return factory.from_params(name, PAPER, "dvlog", widths=(25, 136))


def test_each_ablation_changes_what_it_names():
    full = build("litedsps-mamba")
    assert build("litedsps-mamba-full-width").dynamic_dim == 128
    directions = build("litedsps-mamba-no-direction-sharing").temporal
    assert list(directions) == ["shared_fwd", "shared_bwd"] and not any(t.bidirectional for t in directions.values())
    assert list(build("litedsps-mamba-no-modality-sharing").temporal) == ["audio_both", "visual_both"]
    uni = build("litedsps-mamba-unidirectional").temporal
    assert list(uni) == ["shared_fwd"] and not uni["shared_fwd"].bidirectional
    assert build("litedsps-mamba-mean-pooling").head[-1].in_features == 2 * 128 == full.head[-1].in_features // 2
    x, lengths = torch.randn(2, 200, 25), torch.tensor([200, 77])
    ev = full.evidence(x, lengths)[0]
    no_diff = build("litedsps-mamba-no-differences").evidence(x, lengths)[0]
    avg = build("litedsps-mamba-avgpool").evidence(x, lengths)[0]
    assert ev.shape == no_diff.shape == avg.shape == (2, 96, 100)
    assert torch.equal(no_diff[..., :50], ev[..., :50]) and (no_diff[..., 50:] == 0).all() and ev[..., 50:].abs().sum() > 0
    assert torch.equal(avg[..., :25], ev[..., :25]) and (avg[..., 25:] == 0).all()


def test_the_unidirectional_scan_never_looks_ahead_and_the_bidirectional_one_does():
    x = torch.randn(1, 20, 96)
    n = torch.tensor([20])
    mask = torch.ones(1, 20, dtype=torch.bool)
    later = x.clone()
    later[:, 15:] += 1.0
    for name, looks_ahead in (("litedsps-mamba-unidirectional", False), ("litedsps-mamba", True),
                              ("litedsps-mamba-no-direction-sharing", True)):
        m = build(name).eval()
        with torch.no_grad():
            before, after = m.dynamic(x, n, mask, "visual"), m.dynamic(later, n, mask, "visual")
        assert torch.equal(before[:, :15], after[:, :15]) != looks_ahead, name


def test_peer_ablations_are_baseline_variants_out_of_the_default_grid(tmp_path):
    assert [f"litedsps-mamba-{v}" for v in ("full-width", "no-direction-sharing", "no-modality-sharing",
                                                        "unidirectional", "mean-pooling", "no-differences", "avgpool")] == VARIANTS
    assert all(registry.get(v).recipe == "litedsps-mamba" for v in VARIANTS)
    assert PARAMS.data.run.models == "all" and not PARAMS.data.run.peer_ablations
    assert "litedsps-mamba" in PARAMS.models and "dynmultidep" in PARAMS.models
    assert not set(VARIANTS) & set(PARAMS.models)
    on = tmp_path / "params.yaml"
    on.write_text(f"extends: {ROOT / 'params.yaml'}\nrun:\n  peer_ablations: true\n")
    assert load_params(on).models == registry.names()
