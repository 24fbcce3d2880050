from __future__ import annotations

import copy

import pytest
import torch

from asym.nn.mamba import BiMamba, Mamba, matched_inner_width, parameter_count, reverse_valid


def test_reverse_valid_reverses_only_valid_frames():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_valid(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [7, 6, 5, 8, 9]     # padding frames stay in place
    assert torch.equal(reverse_valid(out, torch.tensor([5, 3])), x)


def test_bimamba_output_of_a_sample_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    m = BiMamba(16, d_state=8, expand=2).eval()
    x = torch.randn(3, 40, 16)
    lengths = torch.tensor([40, 23, 7])
    x[1, 23:] = 1e3          # garbage in padding must not leak into valid frames
    x[2, 7:] = -1e3
    y = m(x, lengths)
    for i in range(3):
        alone = m(x[i: i + 1, : lengths[i]], lengths[i: i + 1])
        torch.testing.assert_close(alone[0], y[i, : lengths[i]], rtol=1e-5, atol=1e-6)


def test_unidirectional_mamba_is_causal():
    torch.manual_seed(1)
    m = Mamba(8, d_state=4).eval()
    x = torch.randn(1, 30, 8)
    y = m(x)
    x2 = x.clone()
    x2[:, 20:] += 5.0
    torch.testing.assert_close(m(x2)[:, :20], y[:, :20])
    assert not torch.allclose(m(x2)[:, 20:], y[:, 20:])


def test_bimamba_reverse_direction_is_the_time_reversal_of_the_forward_one():
    """Swapping the two directions' weights and reversing the input reverses the output."""
    torch.manual_seed(2)
    m = BiMamba(8, d_state=4).eval()
    swapped = copy.deepcopy(m)
    swapped.fwd, swapped.bwd = copy.deepcopy(m.bwd), copy.deepcopy(m.fwd)
    x = torch.randn(2, 25, 8)
    lengths = torch.tensor([25, 14])
    y = m(x, lengths)
    y_rev = swapped(reverse_valid(x, lengths), lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(reverse_valid(y_rev, lengths)[i, :n], y[i, :n], rtol=1e-5, atol=1e-6)


def test_bimamba_sees_the_future_and_has_gradients_everywhere():
    torch.manual_seed(3)
    m = BiMamba(8, d_state=4)
    x = torch.randn(2, 12, 8, requires_grad=True)
    y = m(x, torch.tensor([12, 12]))
    y[:, 0].sum().backward()
    assert x.grad[:, -1].abs().sum() > 0          # the first frame depends on the last one
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_initialisation_follows_mamba():
    m = Mamba(32, d_state=16, expand=2)
    A = -torch.exp(m.fwd.A_log)
    torch.testing.assert_close(A[0], -torch.arange(1, 17, dtype=torch.float32))
    dt = torch.nn.functional.softplus(m.fwd.dt_proj.bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6
    assert torch.equal(m.fwd.D, torch.ones(64))


def test_sharing_state_matrices_makes_one_parameter_and_keeps_the_rest_apart():
    torch.manual_seed(4)
    a, v = BiMamba(8, d_state=4), BiMamba(8, d_state=4)
    v.share_state_matrices(a)
    assert v.fwd.A_log is a.fwd.A_log and v.bwd.A_log is a.bwd.A_log
    assert v.fwd.D is not a.fwd.D and v.in_proj.weight is not a.in_proj.weight
    pair = torch.nn.ModuleList([a, v])
    assert sum(p.numel() for p in pair.parameters()) == 2 * sum(p.numel() for p in a.parameters()) - 2 * 8 * 2 * 4
    lengths = torch.tensor([10, 6])
    v(torch.randn(2, 10, 8), lengths).sum().backward()          # the visual stream alone trains the shared A
    assert a.fwd.A_log.grad.abs().sum() > 0 and a.bwd.A_log.grad.abs().sum() > 0 and a.fwd.D.grad is None
    with pytest.raises(ValueError, match="cannot share"):
        BiMamba(8, d_state=6).share_state_matrices(a)
    uni = Mamba(8, d_state=4)
    uni.share_state_matrices(a)                                  # a forward-only block shares its one A
    assert uni.fwd.A_log is a.fwd.A_log and uni.bwd is None


@pytest.mark.parametrize("d_model,d_state,d_conv,expand", [(32, 8, 4, 1), (256, 12, 4, 4), (512, 16, 4, 4)])
def test_parameter_count_and_the_matched_inner_width(d_model, d_state, d_conv, expand):
    def count(m):
        return sum(p.numel() for p in m.parameters())

    bi = BiMamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand)
    assert count(bi) == parameter_count(d_model, d_state, d_conv, expand * d_model, bidirectional=True)
    width = matched_inner_width(d_model, d_state, d_conv, expand)
    uni = Mamba(d_model, d_state=d_state, d_conv=d_conv, d_inner=width)
    assert uni.d_inner == width > expand * d_model
    assert count(uni) == parameter_count(d_model, d_state, d_conv, width)
    assert abs(count(uni) - count(bi)) <= parameter_count(d_model, d_state, d_conv, 1) / 2   # nearest width


def test_state_matrices_and_skips_are_marked_exempt_from_weight_decay():
    m = BiMamba(8, d_state=4)
    for branch in (m.fwd, m.bwd):
        assert branch.A_log._no_weight_decay and branch.D._no_weight_decay
        assert not hasattr(branch.x_proj.weight, "_no_weight_decay")
