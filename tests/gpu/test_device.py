"""What the GPU check runs first (marked `cuda`): the Triton scan against the PyTorch path and the
CPU kernel in fp32 and bf16, Bi-Mamba padding-exact on the device, and a paper-scale ASYM step in
bf16 against fp32. `gpu_check.py --rehearse` runs the same tests on the CPU through Triton's
interpreter, at tiny sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asym.nn import mamba as mamba_mod
from asym.nn.ssm import pick_backend, selective_scan

pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[2]
KEYS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def inputs(seed: int, b: int, d: int, n: int, L: int, groups: int | None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bc = (b, groups, n, L) if groups else (b, n, L)
    return {"u": torch.randn(b, d, L, generator=g), "delta": 0.5 * torch.randn(b, d, L, generator=g),
            "A": -torch.rand(d, n, generator=g) - 0.5, "B": torch.randn(*bc, generator=g),
            "C": torch.randn(*bc, generator=g), "D": torch.randn(d, generator=g),
            "z": torch.randn(b, d, L, generator=g), "delta_bias": 0.1 * torch.randn(d, generator=g)}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def run(base: dict, device: torch.device, backend: str, dtype: torch.dtype, weight: torch.Tensor):
    """Output, last state and every input's gradient of one scan, on the CPU in float32."""
    inp = {k: v.detach().clone().to(device=device, dtype=dtype if k in ("u", "delta", "B", "C", "z") else torch.float32)
           .requires_grad_(True) for k, v in base.items()}
    out, last = selective_scan(**inp, delta_softplus=True, return_last_state=True, backend=backend)
    (out.float() * weight.to(device)).sum().backward()
    return out.detach().float().cpu(), last.float().cpu(), {k: inp[k].grad.float().cpu() for k in KEYS}


@pytest.mark.parametrize("groups", [None, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_triton_scan_matches_the_torch_path_and_the_cpu_kernel(device, tiny, dtype, groups):
    b, d, n, L = (1, 4, 4, 37) if tiny else (2, 64, 16, 1000)
    base = inputs(11, b, d, n, L, groups)
    base = {k: (v.to(dtype).float() if k in ("u", "delta", "B", "C", "z") else v) for k, v in base.items()}
    weight = torch.randn(b, d, L, generator=torch.Generator().manual_seed(3))
    ref_out, ref_last, ref_g = run(base, torch.device("cpu"), "cpu", torch.float32, weight)
    tol_out, tol_grad = (1e-4, 1e-3) if dtype == torch.float32 else (2e-2, 5e-2)
    for backend in ("triton", "torch"):
        if backend == "torch" and dtype == torch.bfloat16:
            continue     # the PyTorch path computes in its input dtype: bf16 there is not the reference's
        out, last, g = run(base, device, backend, dtype, weight)
        assert rel_err(out, ref_out) < tol_out, backend
        assert rel_err(last, ref_last) < tol_out, backend
        assert last.dtype == torch.float32
        for key in KEYS:
            assert torch.isfinite(g[key]).all(), (backend, key)
            assert rel_err(g[key], ref_g[key]) < tol_grad, (backend, key)


def test_auto_picks_a_fused_kernel_on_the_device(device):
    expected = ("cuda", "triton") if device.type == "cuda" else ("cpu",)   # the CPU keeps its Numba kernel
    assert pick_backend(torch.zeros(1, device=device)) in expected


def test_bimamba_through_the_device_scan_is_padding_exact(device, tiny):
    backend = "triton" if device.type == "cpu" else "auto"   # on CUDA `auto` already takes Triton (or mamba-ssm's kernel)
    torch.manual_seed(0)
    d_model, T = (8, 19) if tiny else (64, 300)
    m = mamba_mod.BiMamba(d_model, d_state=4 if tiny else 16, expand=2, scan_backend=backend).to(device).eval()
    x = torch.randn(3, T, d_model, device=device)
    lengths = torch.tensor([T, T - 7, 5], device=device)
    x[1, T - 7:] = 1e3
    x[2, 5:] = -1e3
    with torch.no_grad():
        y = m(x, lengths)
        for i in range(3):
            alone = m(x[i: i + 1, : lengths[i]], lengths[i: i + 1])
            torch.testing.assert_close(alone[0], y[i, : lengths[i]], rtol=1e-4, atol=1e-5)


def test_paper_scale_asym_step_in_bf16_tracks_fp32(device, tiny):
    from asym.config import load_params
    from asym.data.formats import input_widths
    from asym.models import factory

    scale = "demo" if tiny else "paper"
    params = load_params(ROOT / "params.yaml").at_scale(scale)
    a_dim, v_dim = input_widths()["dvlog"]
    torch.manual_seed(0)
    net = factory.from_params("asym", params, "dvlog", widths=(a_dim, v_dim)).to(device).eval()
    batch, T = (2, 24) if tiny else (8, 1000)
    g = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(batch, T, a_dim, generator=g), torch.randn(batch, T, v_dim, generator=g)
    lengths = torch.tensor([T] + [T // 2] * (batch - 1))
    labels = torch.tensor([1.0, 0.0] * (batch // 2))
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = net(audio.to(device), visual.to(device), lengths.to(device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.to(device))
        loss.backward()
        losses[precision] = float(loss.detach())
        grads[precision] = torch.cat([p.grad.float().flatten().cpu() for p in net.parameters() if p.grad is not None])
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert torch.isfinite(grads["bf16"]).all()
    assert abs(losses["bf16"] - losses["fp32"]) < 0.02 * max(1.0, abs(losses["fp32"]))
    assert rel_err(grads["bf16"], grads["fp32"]) < 0.1
