"""bf16 autocast: the selective scan's state, the norms and the loss stay in float32.

Under torch.autocast the projections feeding the scan come out in bf16; every scan backend reads
them as they are but keeps its state and its sums in float32 or wider (asym.nn.ssm), so the last
state of a bf16 scan is as accurate as float32 arithmetic on those bf16 values allows, which a
bf16 state could not be. The paper-width ASYM then trains a step under CPU autocast (the same
policy as train_epoch's CUDA one: forward under autocast, the loss in float32 from float32 logits)
and stays close to its float32 step.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asym.models.layers import NORM_LAYERS
from asym.nn import mamba as mamba_mod
from asym.nn import ssm
from tests.nn.test_ssm import grads, make_inputs, recurrence64, rel_err, with_grad

BF16_INPUTS = ("u", "delta", "B", "C", "z")    # what autocast's matmuls hand the scan in bf16
STATE_TOL = 1e-5         # float32 state and sums, from bf16 inputs
BF16_OUT = 1e-2          # a bf16 result: one ulp is 2**-8
LOSS_TOL = 1e-2          # |bf16 loss - fp32 loss| of one ASYM step (measured ~1e-3)
GRAD_TOL = 0.1           # relative L2 distance of all gradients (measured ~0.03)


def bf16_state_recurrence(u, delta, A, B, C, delta_bias):
    """The last state of the recurrence with its state rounded to bf16 after every step: what a
    scan holding its state in bf16 would return (softplus'd step, ungrouped B)."""
    dt = F.softplus(delta.double() + delta_bias.double()[:, None])
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64)
    for t in range(u.shape[2]):
        x = (dt[:, :, t] * u[:, :, t].double())[..., None] * B[:, None, :, t].double()
        h = torch.exp(dt[:, :, t, None] * A.double()) * h + x
        h = h.to(torch.bfloat16).double()
    return h


@pytest.mark.parametrize("backend", ["cpu", "torch", "triton"])
def test_scan_state_is_float32_under_autocast(backend, monkeypatch):
    if backend == "triton":
        pytest.importorskip("triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")       # its kernels, on the CPU
    base = make_inputs(7, 1, 4, 4, 200, groups=None, dt_shift=-2.0)    # slow decays: long memory
    base = {k: (v.to(torch.bfloat16) if k in BF16_INPUTS else v) for k, v in base.items()}
    inp = with_grad(base)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, last = ssm.selective_scan(**inp, delta_softplus=True, return_last_state=True,
                                       backend=backend)
    ref_in = with_grad({k: v.double() for k, v in base.items()})
    ref, ref_last = recurrence64(**ref_in, delta_softplus=True)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    assert rel_err(out, ref) < BF16_OUT
    assert rel_err(last, ref_last) < STATE_TOL
    in_bf16 = bf16_state_recurrence(*(base[k] for k in ("u", "delta", "A", "B", "C", "delta_bias")))
    assert rel_err(in_bf16, ref_last) > 100 * STATE_TOL          # the bound tells the two apart
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    ours, theirs = grads(out, inp, w), grads(ref, ref_in, w.double())
    for key in ("A", "D", "delta_bias"):       # float32 parameters: sums over batch and sequence
        assert ours[key].dtype == torch.float32, key
        assert rel_err(ours[key], theirs[key]) < 10 * STATE_TOL, key


def test_paper_width_asym_step_under_bf16_autocast_tracks_float32(params, monkeypatch):
    from asym.data.formats import input_widths
    from asym.models import factory

    paper = params.at_scale("paper")
    a_dim, v_dim = input_widths()["lmvd"]
    torch.manual_seed(0)
    net = factory.from_params("asym", paper, "lmvd", widths=(a_dim, v_dim)).eval()   # no dropout
    g = torch.Generator().manual_seed(1)
    batch, T = 2, 24
    audio = torch.randn(batch, T, a_dim, generator=g)
    visual = torch.randn(batch, T, v_dim, generator=g)
    lengths, labels = torch.tensor([T, 15]), torch.tensor([1.0, 0.0])

    scans: list[tuple[torch.dtype, torch.dtype]] = []

    def scan_seen(*args, **kwargs):       # the real scan, asked for its last state too
        out, last = ssm.selective_scan(*args, **{**kwargs, "return_last_state": True})
        scans.append((args[0].dtype, last.dtype))
        return out

    monkeypatch.setattr(mamba_mod, "selective_scan", scan_seen)
    norms: list[tuple[nn.LayerNorm, torch.Tensor, torch.Tensor]] = []

    def norm_seen(mod, inputs, output):
        norms.append((mod, inputs[0].detach(), output.detach()))

    all_norms = [m for m in net.modules() if isinstance(m, NORM_LAYERS)]
    assert all_norms and all(isinstance(m, nn.LayerNorm) for m in all_norms)   # no hand-made norm
    for m in all_norms:
        m.register_forward_hook(norm_seen)

    steps = {}
    for precision in ("fp32", "bf16"):
        scans.clear()
        norms.clear()
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(audio, visual, lengths)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)    # as train_epoch
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        steps[precision] = (loss, grad, list(scans), list(norms))

    loss16, grad16, scans16, norms16 = steps["bf16"]
    loss32, grad32, scans32, _ = steps["fp32"]
    n_scans = 2 * sum(isinstance(m, mamba_mod.Mamba) and m.bwd is not None for m in net.modules())
    assert len(scans16) == len(scans32) == n_scans > 0
    assert all(s == (torch.bfloat16, torch.float32) for s in scans16)     # bf16 in, float32 state
    assert all(s == (torch.float32, torch.float32) for s in scans32)
    for mod, x, y in norms16:             # statistics and scaling in float32, from the norm's input
        ref = F.layer_norm(x.float(), mod.normalized_shape, mod.weight, mod.bias, mod.eps)
        torch.testing.assert_close(y.float(), ref, rtol=2 ** -8, atol=1e-5)
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16) and torch.isfinite(grad16).all()
    assert abs(float(loss16.detach()) - float(loss32.detach())) < LOSS_TOL
    assert float((grad16 - grad32).norm() / grad32.norm()) < GRAD_TOL
