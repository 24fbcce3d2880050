"""selective_scan against mamba-ssm's reference and an independent float64 recurrence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asym.nn.ssm import cuda_kernel_available, pick_backend, selective_scan

TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12)).item()


def recurrence64(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Step-by-step float64 recurrence, written from the Mamba paper's equations."""
    u, delta, A = u.double(), delta.double(), A.double()
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, L = u.shape
    B = (B if B.dim() == 4 else B[:, None]).double()
    C = (C if C.dim() == 4 else C[:, None]).double()
    B, C = B.repeat_interleave(d // B.shape[1], 1), C.repeat_interleave(d // C.shape[1], 1)
    h = torch.zeros(b, d, A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * B[..., t] * u[:, :, t, None]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y, h


def make_inputs(seed, b, d, n, L, groups=None, with_d=True, with_z=True, with_bias=True, a_scale=1.0, dt_shift=0.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    bc_shape = (b, groups, n, L) if groups else (b, n, L)
    return dict(
        u=r(b, d, L), delta=(0.5 * r(b, d, L) + dt_shift), A=-(torch.rand(d, n, generator=g) * 2 + 0.1) * a_scale,
        B=r(*bc_shape), C=r(*bc_shape), D=r(d) if with_d else None, z=r(b, d, L) if with_z else None,
        delta_bias=(0.3 * r(d)) if with_bias else None,
    )


def grads(out: torch.Tensor, inputs: dict, weight: torch.Tensor) -> dict:
    keys = [k for k, v in inputs.items() if v is not None]
    gs = torch.autograd.grad(out, [inputs[k] for k in keys], weight)
    return dict(zip(keys, gs, strict=True))


def with_grad(inputs: dict) -> dict:
    return {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inputs.items()}


CASES = [
    # (L, groups, D, z, bias, softplus)
    (1, None, True, True, True, True),
    (7, None, False, False, False, False),
    (7, 2, True, False, True, True),
    (64, None, True, True, False, True),
    (64, 4, False, True, True, False),
    (1000, None, True, True, True, True),
    (1000, 2, True, False, False, True),
    (4096, None, True, True, True, True),
]


@pytest.fixture(scope="session")
def reference(mamba_ref):
    """mamba-ssm's results for each case, computed once for both of our backends."""
    cache: dict[tuple, tuple] = {}

    def get(case: tuple) -> tuple:
        if case not in cache:
            L, groups, has_d, has_z, has_bias, softplus = case
            b, d, n = (2, 8, 4) if L < 4096 else (1, 4, 4)
            base = make_inputs(L + (groups or 0), b, d, n, L, groups, has_d, has_z, has_bias)
            ref_in = with_grad(base)
            ref_out, ref_last = mamba_ref(**ref_in, delta_softplus=softplus, return_last_state=True)
            w = torch.randn(ref_out.shape, generator=torch.Generator().manual_seed(1))
            cache[case] = (base, w, ref_out.detach(), ref_last.detach(), grads(ref_out, ref_in, w))
        return cache[case]
    return get


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("L,groups,has_d,has_z,has_bias,softplus", CASES)
def test_matches_mamba_ssm_reference(reference, backend, L, groups, has_d, has_z, has_bias, softplus):
    base, w, ref_out, ref_last, ref_g = reference((L, groups, has_d, has_z, has_bias, softplus))
    ours_in = with_grad(base)
    out, last = selective_scan(**ours_in, delta_softplus=softplus, return_last_state=True, backend=backend)
    assert out.shape == ref_out.shape and out.dtype == ref_out.dtype
    assert rel_err(out, ref_out) < TOL
    assert rel_err(last, ref_last) < TOL
    ours_g = grads(out, ours_in, w)
    for key in ref_g:
        assert ours_g[key].shape == ref_g[key].shape, key
        assert rel_err(ours_g[key], ref_g[key]) < 5 * TOL, key


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("a_scale,dt_shift", [(50.0, 3.0), (1e-4, -6.0)], ids=["decay-near-0", "decay-near-1"])
def test_stable_for_extreme_decays_on_long_sequences(backend, a_scale, dt_shift):
    inp = make_inputs(3, 1, 4, 4, 4096, a_scale=a_scale, dt_shift=dt_shift)
    out = selective_scan(**inp, delta_softplus=True, backend=backend)
    ref, _ = recurrence64(**inp, delta_softplus=True)
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_gradients_match_float64_recurrence(backend):
    """Also crosses several chunk boundaries of both backends (64 steps per chunk)."""
    inp = with_grad(make_inputs(5, 2, 6, 3, 150, groups=3))
    out = selective_scan(**inp, delta_softplus=True, backend=backend)
    ref_in = with_grad({k: v.detach() if v is not None else None for k, v in inp.items()})
    ref, _ = recurrence64(**ref_in, delta_softplus=True)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    ours, theirs = grads(out, inp, w), grads(ref, ref_in, w.double())
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 5 * TOL, key


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_float64_inputs_keep_their_dtype_and_pass_gradcheck(backend):
    inp = {k: (v.double().requires_grad_(True) if v is not None else None)
           for k, v in make_inputs(9, 1, 2, 2, 9, groups=None).items()}
    keys = [k for k, v in inp.items() if v is not None]

    def fn(*tensors):
        return selective_scan(**dict(zip(keys, tensors, strict=True)), delta_softplus=True, backend=backend)

    assert fn(*[inp[k] for k in keys]).dtype == torch.float64
    assert torch.autograd.gradcheck(fn, [inp[k] for k in keys], eps=1e-6, atol=1e-6)


def test_auto_backend_on_cpu_is_the_fused_kernel():
    assert pick_backend(torch.zeros(1)) == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.is_available() and not cuda_kernel_available(),
                    reason="mamba-ssm's CUDA kernel is not installed (pip install .[cuda])")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("groups", [None, 2])
def test_cuda_kernel_matches_torch_path_and_cpu_kernel(groups):
    """mamba-ssm's kernel and our PyTorch path on the GPU, each against our CPU kernel (float64
    accumulation): forward output, last state and the gradient of every input."""
    base = make_inputs(11, 2, 16, 8, 1024, groups)
    w = torch.randn(2, 16, 1024, generator=torch.Generator().manual_seed(3))
    runs = {}
    for name, device, backend in (("cuda kernel", "cuda", "cuda"), ("torch path", "cuda", "torch"),
                                  ("cpu kernel", "cpu", "cpu")):
        inp = with_grad({k: (v.to(device) if v is not None else None) for k, v in base.items()})
        out, last = selective_scan(**inp, delta_softplus=True, return_last_state=True, backend=backend)
        g = grads(out, inp, w.to(device))
        runs[name] = (out.cpu(), last.cpu(), {k: v.cpu() for k, v in g.items()})
    ref_out, ref_last, ref_g = runs.pop("cpu kernel")
    for name, (out, last, g) in runs.items():
        assert rel_err(out, ref_out) < 1e-4, name
        assert rel_err(last, ref_last) < 1e-4, name
        assert g.keys() == ref_g.keys()
        for key in ref_g:
            assert rel_err(g[key], ref_g[key]) < 1e-3, (name, key)


@pytest.mark.parametrize("backend", ["cpu", "torch", "triton"])
def test_inputs_mamba_ssm_takes_but_we_do_not_are_refused_clearly(backend, monkeypatch):
    """A complex A and a constant (d_inner, d_state) B or C: every backend, one clear message."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g = torch.Generator().manual_seed(0)
    b, d, n, L = 1, 4, 3, 5
    u, delta, z = (torch.randn(b, d, L, generator=g) for _ in range(3))
    A = -torch.rand(d, n, generator=g)
    B, C = torch.randn(b, n, L, generator=g), torch.randn(b, n, L, generator=g)
    with pytest.raises(NotImplementedError, match="complex A is not supported"):
        selective_scan(u, delta, A.to(torch.complex64), B, C, backend=backend)
    with pytest.raises(NotImplementedError, match=r"constant B of shape \(d_inner, d_state\) \(4, 3\)"):
        selective_scan(u, delta, A, torch.randn(d, n), C, backend=backend)
    with pytest.raises(NotImplementedError, match="constant C"):
        selective_scan(u, delta, A, B, torch.randn(d, n), backend=backend)
    with pytest.raises(ValueError, match="got shape"):
        selective_scan(u, delta, A, B[0, 0], C, backend=backend)
