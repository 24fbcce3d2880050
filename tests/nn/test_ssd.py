"""ssd (Mamba2's scan) against an independent float64 recurrence and mamba-ssm's own references.

Every backend runs on the CPU here: "torch" (the chunked PyTorch form), "cpu" (the Numba kernel)
and "triton" (our Triton kernels under Triton's interpreter, TRITON_INTERPRET=1, set per test as
tests/nn/test_scan_triton.py does). mamba-ssm's references are read from its source distribution
in .cache/oracle: `ssd_minimal_discrete` (the paper's Listing 1) and `ssd_chunk_scan_combined_ref`
(pure PyTorch, in modules that import Triton at load time: the real triton package is imported,
and no Triton kernel of theirs is ever launched). The sdist ships no tests/ops/triton/test_ssd.py.
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
import types

import pytest
import torch
import torch.nn.functional as F

from asym.nn import ssd as ssd_mod
from asym.nn.ssd import auto_backend, pick_backend, ssd
from tests.conftest import ORACLE_DIR, modules_restored

TOL32 = 2e-5         # float32 backends against the float64 recurrence (relative to the largest value)
TOL64 = 1e-10        # float64 inputs against the float64 recurrence
BACKENDS = ["torch", "cpu", "triton"]
PER_HEAD = ("A", "D", "dt_bias")   # inputs without batch and time axes
INPUTS = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_state")


def _backend_available(backend: str) -> bool:
    if backend == "triton":
        return importlib.util.find_spec("triton") is not None
    if backend == "cpu":
        return importlib.util.find_spec("numba") is not None
    return True


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if not _backend_available(request.param):
        pytest.skip(f"backend {request.param} needs a package that is not installed")
    if request.param == "triton":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    return request.param


def rel_err(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-12) -> float:
    """Largest difference relative to the reference's largest magnitude (at least `floor`)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(floor)).item()


def grad_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """rel_err for a gradient, relative to at least 1: a gradient that is exactly zero in float64
    (the decay of a one-step sequence) comes out as float32 rounding of cancelling terms."""
    return rel_err(a, b, floor=1.0)


def recurrence64(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None):
    """Step by step in float64, from the SSD equations: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,
    y_t = h_t C_t + D x_t, out = y SiLU(z)."""
    x, dt, A, B, C = (t.double() for t in (x, dt, A, B, C))
    if dt_bias is not None:
        dt = dt + dt_bias.double()
    if dt_softplus:
        dt = F.softplus(dt)
    b, L, h, p = x.shape
    rep = h // B.shape[2]
    B, C = B.repeat_interleave(rep, 2), C.repeat_interleave(rep, 2)      # (b, L, h, n)
    state = (torch.zeros(b, h, p, B.shape[-1], dtype=torch.float64) if initial_state is None
             else initial_state.double())
    ys = []
    for t in range(L):
        state = torch.exp(dt[:, t, :, None, None] * A[:, None, None]) * state \
            + dt[:, t, :, None, None] * x[:, t, :, :, None] * B[:, t, :, None, :]
        ys.append((state * C[:, t, :, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    if D is not None:
        Dd = D.double()
        y = y + x * (Dd[:, None] if Dd.dim() == 1 else Dd)
    if z is not None:
        y = y * F.silu(z.double())
    return y, state


def make_inputs(seed, b=2, L=13, h=4, p=3, g=1, n=5, D="h", z=True, bias=True, init=False,
                dtype=torch.float32) -> dict:
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    inputs = dict(
        x=r(b, L, h, p), dt=0.5 * r(b, L, h), A=-(torch.rand(h, generator=gen, dtype=torch.float64) * 2 + 0.2),
        B=r(b, L, g, n), C=r(b, L, g, n),
        D=r(h) if D == "h" else r(h, p) if D == "hp" else None,
        z=r(b, L, h, p) if z else None, dt_bias=0.3 * r(h) if bias else None,
        initial_state=r(b, h, p, n) if init else None,
    )
    return {k: None if v is None else v.to(dtype) for k, v in inputs.items()}


def with_grad(inputs: dict) -> dict:
    return {k: None if v is None else v.clone().requires_grad_(True) for k, v in inputs.items()}


def grads(out, inputs: dict, weights) -> dict:
    keys = [k for k in INPUTS if inputs.get(k) is not None]
    outs = out if isinstance(out, tuple) else (out,)
    gs = torch.autograd.grad(outs, [inputs[k] for k in keys], weights[:len(outs)])
    return dict(zip(keys, gs, strict=True))


def run(inputs: dict, backend: str, softplus: bool = True, chunk_size: int = 4, final: bool = True):
    return ssd(**inputs, dt_softplus=softplus, return_final_state=final, chunk_size=chunk_size, backend=backend)


CASES = [
    # (L, heads, groups, D, z, bias, initial state, softplus)
    (1, 2, 1, "h", True, True, False, True),          # one step
    (13, 4, 1, None, False, False, False, False),     # no optional input, a partial last chunk
    (13, 4, 2, "h", True, True, True, True),          # groups, every input
    (9, 6, 3, "hp", False, True, True, True),         # D per channel, three groups
    (16, 4, 4, "h", True, False, False, True),        # one head per group, whole chunks
]


@pytest.mark.parametrize("case", CASES, ids=[f"L{c[0]}-h{c[1]}-g{c[2]}" for c in CASES])
def test_values_final_state_and_gradients_match_the_float64_recurrence(backend, case):
    L, h, g, D, z, bias, init, softplus = case
    inputs = make_inputs(L * 7 + g, L=L, h=h, g=g, D=D, z=z, bias=bias, init=init)
    ours = with_grad(inputs)
    out, last = run(ours, backend, softplus)
    ref_in = with_grad({k: None if v is None else v.double() for k, v in inputs.items()})
    ref_out, ref_last = recurrence64(**ref_in, dt_softplus=softplus)
    assert out.dtype == torch.float32 and last.dtype == torch.float32
    assert rel_err(out, ref_out) < TOL32
    assert rel_err(last, ref_last) < TOL32
    gen = torch.Generator().manual_seed(1)
    weights = (torch.randn(out.shape, generator=gen, dtype=torch.float64),
               torch.randn(last.shape, generator=gen, dtype=torch.float64))
    g_ours = grads((out, last), ours, (weights[0].float(), weights[1].float()))
    g_ref = grads((ref_out, ref_last), ref_in, weights)
    assert g_ours.keys() == g_ref.keys()
    for k in g_ref:
        assert g_ours[k].shape == g_ref[k].shape, k
        assert grad_err(g_ours[k], g_ref[k]) < 5 * TOL32, k


def test_float64_inputs_are_exact_to_float64(backend):
    inputs = with_grad(make_inputs(3, L=11, h=4, g=2, init=True, dtype=torch.float64))
    out, last = run(inputs, backend)
    ref_out, ref_last = recurrence64(**inputs, dt_softplus=True)
    assert out.dtype == torch.float64 and last.dtype == torch.float64
    assert rel_err(out, ref_out) < TOL64 and rel_err(last, ref_last) < TOL64
    w = torch.randn(out.shape, dtype=torch.float64)
    g_ours, g_ref = grads(out, inputs, (w,)), grads(ref_out, inputs, (w,))
    for k in g_ref:
        assert grad_err(g_ours[k], g_ref[k]) < TOL64, k


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 64])
def test_the_result_does_not_depend_on_the_chunk_length(backend, chunk_size):
    inputs = make_inputs(5, L=19, h=4, g=2)
    ref, ref_last = recurrence64(**inputs, dt_softplus=True)
    out, last = run(inputs, backend, chunk_size=chunk_size)
    assert rel_err(out, ref) < TOL32 and rel_err(last, ref_last) < TOL32


def test_bf16_inputs_come_back_in_bf16_with_float32_state(backend):
    inputs = make_inputs(6, L=10, h=2)
    bf = {k: v if v is None or k in PER_HEAD else v.bfloat16() for k, v in inputs.items()}
    out, last = run(bf, backend)
    ref, _ = recurrence64(**{k: None if v is None else v.double() for k, v in bf.items()}, dt_softplus=True)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    assert rel_err(out, ref) < 1e-2


def test_strong_decays_and_long_steps_stay_finite(backend):
    inputs = make_inputs(7, L=12, h=2)
    inputs["A"] = torch.tensor([-50.0, -1e-4])
    inputs["dt"] = inputs["dt"] * 10 + 3
    out, last = run(inputs, backend)
    ref, ref_last = recurrence64(**inputs, dt_softplus=True)
    assert torch.isfinite(out).all() and rel_err(out, ref) < TOL32 and rel_err(last, ref_last) < TOL32


def test_a_sample_does_not_depend_on_its_batch_or_on_what_follows_it(backend):
    inputs = make_inputs(8, b=3, L=14, h=4, g=2)
    out = run(inputs, backend, final=False)
    alone = run({k: v if v is None or k in PER_HEAD else v[1:2] for k, v in inputs.items()}, backend, final=False)
    assert torch.equal(out[1:2], alone) or rel_err(out[1:2], alone) < 1e-6
    cut = {k: v if v is None or k in PER_HEAD else v[:, :9] for k, v in inputs.items()}
    assert rel_err(run(cut, backend, final=False), out[:, :9]) < 1e-6


def test_bad_shapes_and_backends_are_refused_with_the_input_named():
    inputs = make_inputs(9)
    with pytest.raises(ValueError, match="dt must have shape"):
        ssd(**{**inputs, "dt": inputs["dt"][..., :1]})
    with pytest.raises(ValueError, match="multiple of B/C's groups"):
        ssd(**{**inputs, "B": inputs["B"].repeat(1, 1, 3, 1), "C": inputs["C"].repeat(1, 1, 3, 1)})
    with pytest.raises(ValueError, match="backend must be one of"):
        ssd(**inputs, backend="metal")


def test_auto_picks_by_device_and_what_imports():
    assert auto_backend("cuda", True, True) == "cuda"
    assert auto_backend("cuda", False, True) == "triton"
    assert auto_backend("cuda", False, False) == "torch"
    assert auto_backend("cpu", False, False) == ssd_mod.CPU_AUTO
    assert ssd_mod.CPU_AUTO in ("cpu", "torch")
    assert auto_backend("mps", False, False) == "torch"
    assert pick_backend(torch.zeros(1), "auto") == ssd_mod.CPU_AUTO


# --- mamba-ssm's own references -------------------------------------------------------------

ORACLE_MODULES = [   # (module name, file in the sdist), in import order
    ("mamba_ssm.utils.torch", "mamba_ssm/utils/torch.py"),
    ("mamba_ssm.utils.determinism", "mamba_ssm/utils/determinism.py"),
    ("mamba_ssm.ops.triton.softplus", "mamba_ssm/ops/triton/softplus.py"),
    ("mamba_ssm.ops.triton.ssd_bmm", "mamba_ssm/ops/triton/ssd_bmm.py"),
    ("mamba_ssm.ops.triton.ssd_chunk_state", "mamba_ssm/ops/triton/ssd_chunk_state.py"),
    ("mamba_ssm.ops.triton.ssd_state_passing", "mamba_ssm/ops/triton/ssd_state_passing.py"),
    ("mamba_ssm.ops.triton.ssd_chunk_scan", "mamba_ssm/ops/triton/ssd_chunk_scan.py"),
    ("mamba_ssm.ops.triton.layernorm_gated", "mamba_ssm/ops/triton/layernorm_gated.py"),
    ("mamba_ssm.ops.triton.k_activations", "mamba_ssm/ops/triton/k_activations.py"),
    ("mamba_ssm.ops.triton.ssd_combined", "mamba_ssm/ops/triton/ssd_combined.py"),
    ("mamba_ssm.modules.ssd_minimal", "mamba_ssm/modules/ssd_minimal.py"),
]
PACKAGES = ["mamba_ssm", "mamba_ssm.utils", "mamba_ssm.ops", "mamba_ssm.ops.triton", "mamba_ssm.modules"]


def _load_from_file(path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_mamba_ssd(tmp_path_factory) -> types.SimpleNamespace:
    """mamba-ssm's SSD references, loaded from its source distribution: its files are extracted
    to a temporary folder (triton.jit reads a kernel's source from its file, so they cannot be
    executed from memory as conftest's `_load_from_tar` does), and every module put in
    sys.modules is removed again afterwards."""
    pytest.importorskip("triton")
    pytest.importorskip("einops")
    tars = sorted(ORACLE_DIR.glob("mamba_ssm-*.tar.gz"))
    if not tars:
        pytest.skip("mamba-ssm source distribution not in .cache/oracle (run `make oracle` with network access)")
    folder = tmp_path_factory.mktemp("mamba_ssm_src")
    names = PACKAGES + [name for name, _ in ORACLE_MODULES]
    with modules_restored(names), tarfile.open(tars[-1]) as tar:
        for _, path in ORACLE_MODULES:
            member = next(m for m in tar.getmembers() if m.name.endswith(path))
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(tar.extractfile(member).read())
        sys.modules.update({name: types.ModuleType(name) for name in PACKAGES})
        for name, path in ORACLE_MODULES:
            _load_from_file(folder / path, name)
        combined, minimal = sys.modules["mamba_ssm.ops.triton.ssd_combined"], sys.modules["mamba_ssm.modules.ssd_minimal"]
        norm = sys.modules["mamba_ssm.ops.triton.layernorm_gated"]
        return types.SimpleNamespace(ref=combined.ssd_chunk_scan_combined_ref, minimal=minimal.ssd_minimal_discrete,
                                     rms_norm=norm.rms_norm_ref)


@pytest.fixture(scope="module")
def mamba_ssd(tmp_path_factory):
    return load_mamba_ssd(tmp_path_factory)


def test_ssd_minimal_discrete_agrees_with_our_recurrence_and_backends(mamba_ssd, backend):
    """Listing 1 of the paper (float64, whole chunks, one group per head: its B/C are per head)."""
    inputs = make_inputs(10, L=16, h=4, g=4, D=None, z=False, bias=False, dtype=torch.float64)
    dt = F.softplus(inputs["dt"])
    X = inputs["x"] * dt[..., None]
    y_min, last_min = mamba_ssd.minimal(X, dt * inputs["A"], inputs["B"], inputs["C"], block_len=4)
    ref, ref_last = recurrence64(**inputs, dt_softplus=True)
    assert rel_err(y_min, ref) < TOL64 and rel_err(last_min, ref_last) < TOL64
    out, last = run(inputs, backend)
    assert rel_err(out, y_min) < TOL64 and rel_err(last, last_min) < TOL64


@pytest.mark.parametrize("D,z,bias,g", [("h", True, True, 2), ("hp", False, True, 1), (None, True, False, 4)])
def test_mamba_ssm_chunked_references_agree_with_our_backends(mamba_ssd, backend, D, z, bias, g):
    """ssd_chunk_scan_combined_ref (whole chunks only: it asserts so), values and gradients, with
    chunks of 8 for it and 5 for ours, so the chunk boundaries differ; held to float32 rounding."""
    inputs = make_inputs(11, L=24, h=4, g=g, p=4, D=D, z=z, bias=bias)
    kw = {k: inputs[k] for k in ("D", "z", "dt_bias")}
    args = (inputs["x"], inputs["dt"], inputs["A"], inputs["B"], inputs["C"], 8)
    ref = mamba_ssd.ref(*args, **kw, dt_softplus=True)
    assert rel_err(ref, recurrence64(**inputs, dt_softplus=True)[0]) < TOL32
    ours = with_grad(inputs)
    out = run(ours, backend, chunk_size=5, final=False)
    assert rel_err(out, ref) < TOL32
    theirs = with_grad(inputs)
    ref = mamba_ssd.ref(*(theirs[k] for k in ("x", "dt", "A", "B", "C")), 8,
                        **{k: theirs[k] for k in ("D", "z", "dt_bias")}, dt_softplus=True)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    g_ours, g_ref = grads(out, ours, (w,)), grads(ref, theirs, (w,))
    for k in g_ref:
        assert grad_err(g_ours[k], g_ref[k]) < 5 * TOL32, k


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU side of the refusal")
def test_a_backend_for_another_device_is_refused_before_it_runs():
    x = torch.randn(1, 4, 2, 3)
    with pytest.raises(ValueError, match="backend 'cuda' needs CUDA tensors"):
        pick_backend(x, "cuda")
    assert pick_backend(x, "cpu") == "cpu" and pick_backend(x, "triton") == "triton"
