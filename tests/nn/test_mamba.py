from __future__ import annotations

import copy

import torch

from asym.nn.mamba import BiMamba, Mamba, reverse_valid


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
