"""The Mamba2 block: its wiring against mamba-ssm's pieces, lengths, both directions, training marks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from asym.nn.mamba import reverse_valid
from asym.nn.mamba2 import A_INIT_RANGE, Mamba2
from tests.nn.test_ssd import load_mamba_ssd, recurrence64

SMALL = dict(d_state=8, headdim=4, chunk_size=8)


@pytest.fixture(scope="module")
def mamba_ssd(tmp_path_factory):
    return load_mamba_ssd(tmp_path_factory)


def reference_block(m: Mamba2, u: torch.Tensor, mamba_ssd) -> torch.Tensor:
    """The block as mamba_ssm/modules/mamba2.py computes it (its non-fused path), in float64:
    the scan by the float64 recurrence, the gated norm by mamba-ssm's rms_norm_ref."""
    m = copy.deepcopy(m).double()
    u = u.double()
    T = u.shape[1]
    z, xBC, dt = torch.split(m.in_proj(u), [m.d_inner, m.conv1d.in_channels, m.nheads], dim=-1)
    xBC = F.silu(m.conv1d(xBC.transpose(1, 2))[..., :T]).transpose(1, 2)
    x, B, C = torch.split(xBC, [m.d_inner, m.ngroups * m.d_state, m.ngroups * m.d_state], dim=-1)
    y, _ = recurrence64(x.unflatten(-1, (m.nheads, m.headdim)), dt, -torch.exp(m.A_log),
                        B.unflatten(-1, (m.ngroups, m.d_state)), C.unflatten(-1, (m.ngroups, m.d_state)),
                        D=m.D, dt_bias=m.dt_bias, dt_softplus=True)
    y = mamba_ssd.rms_norm(y.flatten(-2), m.norm.weight, None, z=z, eps=m.norm.eps,
                           group_size=m.d_inner // m.ngroups, norm_before_gate=False)
    return m.out_proj(y)


@pytest.mark.parametrize("ngroups,backend", [(1, "torch"), (2, "torch"), (2, "cpu")])
def test_the_block_computes_what_mamba_ssm_s_mamba2_computes(mamba_ssd, ngroups, backend):
    torch.manual_seed(0)
    m = Mamba2(16, ngroups=ngroups, scan_backend=backend, **SMALL)
    u = torch.randn(2, 21, 16)
    out = m(u)
    assert out.shape == u.shape
    torch.testing.assert_close(out.double(), reference_block(m, u, mamba_ssd), rtol=1e-4, atol=1e-5)


def test_initialisation_follows_mamba_ssm():
    torch.manual_seed(1)
    m = Mamba2(64, d_state=16, headdim=8, ngroups=2, dt_min=1e-3, dt_max=1e-1)
    assert m.nheads == 16 and m.in_proj.weight.shape == (2 * 128 + 2 * 2 * 16 + 16, 64)
    A = torch.exp(m.A_log)
    assert A.min() >= A_INIT_RANGE[0] and A.max() <= A_INIT_RANGE[1]
    dt = F.softplus(m.dt_bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert torch.equal(m.D, torch.ones(16)) and torch.equal(m.norm.weight, torch.ones(128))
    assert m.in_proj.bias is None and m.out_proj.bias is None and m.conv1d.bias is not None


def test_decay_marks_on_a_log_d_and_dt_bias_only():
    m = Mamba2(16, **SMALL)
    marked = {n for n, p in m.named_parameters() if getattr(p, "_no_weight_decay", False)}
    assert marked == {"A_log", "D", "dt_bias"} == set(Mamba2.NO_WEIGHT_DECAY)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="multiple of headdim"):
        Mamba2(10, headdim=8)
    with pytest.raises(ValueError, match="multiple of ngroups"):
        Mamba2(16, headdim=8, ngroups=3)
    with pytest.raises(ValueError, match="scan_backend"):
        Mamba2(16, scan_backend="metal")
    with pytest.raises(ValueError, match="lengths must have shape"):
        Mamba2(16, **SMALL)(torch.randn(2, 5, 16), torch.tensor([5]))


def test_unidirectional_block_is_causal():
    torch.manual_seed(2)
    m = Mamba2(16, **SMALL).eval()
    x = torch.randn(1, 30, 16)
    x2 = x.clone()
    x2[:, 20:] += 5.0
    torch.testing.assert_close(m(x2)[:, :20], m(x)[:, :20])
    assert not torch.allclose(m(x2)[:, 20:], m(x)[:, 20:])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_sample_depends_neither_on_its_padding_nor_its_batch(bidirectional):
    torch.manual_seed(3)
    m = Mamba2(16, bidirectional=bidirectional, **SMALL).eval()
    x = torch.randn(3, 40, 16)
    lengths = torch.tensor([40, 23, 7])
    x[1, 23:] = 1e3
    x[2, 7:] = -1e3
    y = m(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = m(x[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(alone[0], y[i, :n], rtol=1e-5, atol=1e-6)


def test_bidirectional_is_one_shared_layer_over_both_directions():
    """Its output is the mean of the unidirectional layer (the same weights) on the sequence and,
    reversed back, on the sequence reversed over its valid frames; and it sees the future."""
    torch.manual_seed(4)
    bi = Mamba2(16, bidirectional=True, **SMALL).eval()
    uni = copy.deepcopy(bi)
    uni.bidirectional = False
    x = torch.randn(2, 19, 16)
    lengths = torch.tensor([19, 11])
    expected = 0.5 * (uni(x) + reverse_valid(uni(reverse_valid(x, lengths)), lengths))
    y = bi(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(y[i, :n], expected[i, :n], rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[0, 15:] += 3.0
    assert not torch.allclose(bi(x2, lengths)[0, :5], y[0, :5])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_parameter_gets_a_finite_gradient_and_runs_repeat_bit_for_bit(bidirectional):
    torch.manual_seed(5)
    m = Mamba2(16, ngroups=2, bidirectional=bidirectional, **SMALL)
    x = torch.randn(2, 13, 16, requires_grad=True)
    lengths = torch.tensor([13, 9])

    def step() -> list[torch.Tensor]:
        m.zero_grad()
        x.grad = None
        m(x, lengths).square().sum().backward()
        return [x.grad.clone()] + [p.grad.clone() for p in m.parameters()]

    first, second = step(), step()
    for name, (g1, g2) in zip(["x"] + [n for n, _ in m.named_parameters()], zip(first, second, strict=True),
                               strict=True):
        assert g1 is not None and torch.isfinite(g1).all() and g1.abs().sum() > 0, name
        assert torch.equal(g1, g2), name


def test_one_layer_shared_across_modalities_accumulates_both_gradients():
    torch.manual_seed(6)
    m = Mamba2(16, bidirectional=True, **SMALL)
    audio, video = torch.randn(2, 10, 16), torch.randn(2, 14, 16)
    (m(audio).sum() + m(video).sum()).backward()
    both = m.A_log.grad.clone()
    m.zero_grad()
    m(audio).sum().backward()
    assert not torch.equal(both, m.A_log.grad)
