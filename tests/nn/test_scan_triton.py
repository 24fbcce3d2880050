"""The Triton scan, run on the CPU by Triton's interpreter, against mamba-ssm's reference.

Every test here sets TRITON_INTERPRET=1 for itself (monkeypatch: restored after it, so no other
test in the same process or xdist worker sees it). The kernels read the variable at each call
and are built once per mode, so it does not matter that triton and asym.nn.scan_triton were
imported below, at collection, before it was set: these tests depend on exactly that.

The interpreter runs each program in Python and each scan element by element, so the shapes are
tiny, with chunks of 4 steps and sequences that are not a multiple of it (several chunks, a
partial last one), d_state 3 (a masked state lane) and, in some cases, channel blocks smaller
than a group (several programs' dB / dC partial sums, a partly masked block).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from asym.nn import ssm
from asym.nn.mamba import BiMamba
from tests.conftest import ROOT
from tests.nn.test_ssm import grads, make_inputs, recurrence64, rel_err, with_grad

triton = pytest.importorskip("triton")
from asym.nn import scan_triton  # noqa: E402  (before TRITON_INTERPRET is set: see above)

TOL = 1e-5           # float32 against the float32 reference, as tests/nn/test_ssm.py
TOL64 = 1e-12        # float64 inputs against the float64 recurrence
BF16_OUT = 1e-2      # bf16 results: one bf16 ulp is 2**-8 (the interpreter rounds toward zero)
CHUNK = 4            # steps between saved states in these tests
BC_INPUTS = ("u", "delta", "B", "C", "z")    # the tensors mamba-ssm takes in the input dtype


@pytest.fixture(autouse=True)
def interpreter(request, monkeypatch):
    if request.node.get_closest_marker("cuda") is None:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def scan(inputs: dict, delta_softplus: bool = True, **kwargs):
    """The Triton scan at this file's chunk length."""
    return scan_triton.selective_scan_triton(**inputs, delta_softplus=delta_softplus, chunk=CHUNK,
                                             **kwargs)


CASES = [
    # (L, d_inner, groups, D, z, delta_bias, softplus, block_d)
    (1, 4, None, True, True, True, True, None),        # one step
    (7, 4, None, False, False, False, False, None),    # no optional input
    (10, 6, None, True, True, False, True, 4),         # two channel blocks, the second half masked
    (11, 6, 2, True, False, True, True, 2),            # grouped, two blocks per group
    (9, 4, 4, False, True, True, False, None),         # one channel per group
    (13, 4, 2, True, True, True, True, None),          # every input, grouped
]


@pytest.mark.parametrize("L,d,groups,has_d,has_z,has_bias,softplus,block_d", CASES)
def test_matches_mamba_ssm_reference(mamba_ref, L, d, groups, has_d, has_z, has_bias, softplus,
                                     block_d):
    base = make_inputs(L + d, 2, d, 3, L, groups, has_d, has_z, has_bias)
    ref_in, ours_in = with_grad(base), with_grad(base)
    ref_out, ref_last = mamba_ref(**ref_in, delta_softplus=softplus, return_last_state=True)
    out, last = scan(ours_in, delta_softplus=softplus, return_last_state=True, block_d=block_d)
    assert out.shape == ref_out.shape and out.dtype == ref_out.dtype
    assert last.dtype == torch.float32 and not last.requires_grad     # no gradient through it
    assert rel_err(out, ref_out) < TOL
    assert rel_err(last, ref_last) < TOL
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ref_g, ours_g = grads(ref_out, ref_in, w), grads(out, ours_in, w)
    assert ours_g.keys() == ref_g.keys()
    for key in ref_g:
        assert ours_g[key].shape == ref_g[key].shape and ours_g[key].dtype == base[key].dtype, key
        assert rel_err(ours_g[key], ref_g[key]) < 5 * TOL, key


def test_float64_inputs_match_the_float64_recurrence_to_rounding():
    """float64 in, float64 throughout: every gradient to ~1e-15, which no wrong term survives."""
    base = {k: v.double() for k, v in make_inputs(21, 2, 6, 3, 13, groups=2).items()}
    inp, ref_in = with_grad(base), with_grad(base)
    out, last = scan(inp, return_last_state=True, block_d=2)
    ref, ref_last = recurrence64(**ref_in, delta_softplus=True)
    assert out.dtype == last.dtype == torch.float64
    assert rel_err(out, ref) < TOL64 and rel_err(last, ref_last) < TOL64
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours, theirs = grads(out, inp, w), grads(ref, ref_in, w)
    for key in theirs:
        assert ours[key].dtype == torch.float64 and rel_err(ours[key], theirs[key]) < TOL64, key


@pytest.mark.parametrize("groups", [None, 2])
def test_bf16_inputs_accumulate_in_float32(groups):
    """bf16 u, delta, B, C, z (A, D, delta_bias in float32, as Mamba keeps them) against the
    float64 recurrence on the same, bf16-rounded values. Outputs and the gradients of bf16 inputs
    are bf16, within about one bf16 ulp; the last state and the gradients of the float32 inputs
    are sums over the whole sequence and batch, and stay within float32 rounding, which they could
    not if the state or the sums were held in bf16 (2**-8 per step)."""
    base = make_inputs(31, 2, 4, 3, 13, groups)
    base = {k: (v.to(torch.bfloat16) if k in BC_INPUTS else v) for k, v in base.items()}
    inp = with_grad(base)
    ref_in = with_grad({k: v.double() for k, v in base.items()})
    out, last = scan(inp, return_last_state=True)
    ref, ref_last = recurrence64(**ref_in, delta_softplus=True)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    assert rel_err(out, ref) < BF16_OUT
    assert rel_err(last, ref_last) < TOL
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    ours, theirs = grads(out, inp, w), grads(ref, ref_in, w.double())
    for key in theirs:
        assert ours[key].dtype == base[key].dtype, key
        assert rel_err(ours[key], theirs[key]) < (BF16_OUT if key in BC_INPUTS else TOL), key


def test_forward_saves_chunk_states_only_and_gradients_are_deterministic():
    b, d, n, L = 2, 6, 3, 11
    inp = with_grad(make_inputs(41, b, d, n, L, groups=2))
    out = scan(inp, block_d=2)
    saved = out.grad_fn.saved_tensors
    states = [t for t in saved if t is not None and t.dim() == 4 and t.shape[:2] == (b, d)]
    assert [tuple(t.shape) for t in states] == [(b, d, math.ceil(L / CHUNK), n)]
    assert max(t.numel() for t in saved if t is not None) < b * d * L * n
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(4))
    first = grads(out, inp, w)
    again = grads(scan(inp, block_d=2), inp, w)
    for key in first:     # no atomics, and no partial-sum cell left unwritten in the buffers
        assert torch.equal(first[key], again[key]), key


@pytest.mark.parametrize("a_scale,dt_shift", [(50.0, 3.0), (1e-4, -6.0)],
                         ids=["decay-near-0", "decay-near-1"])
def test_stable_for_extreme_decays(a_scale, dt_shift):
    inp = with_grad(make_inputs(3, 1, 2, 2, 61, a_scale=a_scale, dt_shift=dt_shift))
    ref_in = with_grad({k: v.detach().double() for k, v in inp.items()})
    out = scan(inp)
    ref, _ = recurrence64(**ref_in, delta_softplus=True)
    assert torch.isfinite(out).all() and rel_err(out, ref) < TOL
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    ours, theirs = grads(out, inp, w), grads(ref, ref_in, w.double())
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 5 * TOL, key


def test_selective_scan_dispatches_to_triton_and_agrees_with_the_cpu_kernel():
    """backend="triton" through asym.nn.ssm, at the default chunk (two chunks here)."""
    base = make_inputs(51, 2, 4, 3, 20, groups=None)
    runs = {}
    for backend in ("triton", "cpu"):
        inp = with_grad(base)
        out, last = ssm.selective_scan(**inp, delta_softplus=True, return_last_state=True,
                                       backend=backend)
        runs[backend] = (out, last, grads(out, inp, torch.ones_like(out)))
        if backend == "triton":
            assert type(out.grad_fn).__name__ == "_TritonScanBackward"
    (out, last, g), (ref_out, ref_last, ref_g) = runs["triton"], runs["cpu"]
    assert rel_err(out, ref_out) < TOL and rel_err(last, ref_last) < TOL
    for key in ref_g:
        assert rel_err(g[key], ref_g[key]) < 5 * TOL, key


def _scan_nodes(t: torch.Tensor) -> set[str]:
    """Names of the autograd nodes behind t."""
    seen, todo, names = set(), [t.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(f for f, _ in node.next_functions)
    return names


def test_bimamba_through_triton_is_padding_exact_and_matches_the_cpu_kernel():
    torch.manual_seed(0)
    m = BiMamba(8, d_state=4, expand=1, scan_backend="triton").eval()
    ref = BiMamba(8, d_state=4, expand=1, scan_backend="cpu").eval()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(3, 18, 8)
    lengths = torch.tensor([18, 11, 5])
    x[1, 11:] = 1e3          # garbage in padding must not leak into valid frames
    x[2, 5:] = -1e3
    y = m(x, lengths)
    assert "_TritonScanBackward" in _scan_nodes(y) and "_CpuScanBackward" not in _scan_nodes(y)
    with torch.no_grad():
        torch.testing.assert_close(y, ref(x, lengths), rtol=1e-5, atol=1e-6)
        for i in range(3):
            alone = m(x[i: i + 1, : lengths[i]], lengths[i: i + 1])
            torch.testing.assert_close(alone[0], y[i, : lengths[i]], rtol=1e-5, atol=1e-6)


def test_bad_calls_are_refused_clearly(monkeypatch):
    inp = make_inputs(61, 1, 2, 2, 5)
    with pytest.raises(NotImplementedError, match="complex A"):
        scan_triton.selective_scan_triton(**{**inp, "A": inp["A"].to(torch.complex64)})
    with pytest.raises(ValueError, match="power of two"):
        scan_triton.selective_scan_triton(**inp, chunk=6)
    with pytest.raises(ValueError, match="B must be"):
        scan_triton.selective_scan_triton(**{**inp, "B": inp["B"][..., :-1]})
    with pytest.raises(ValueError, match="same number of groups"):
        scan_triton.selective_scan_triton(**{**inp, "B": torch.randn(1, 2, 2, 5)})
    with pytest.raises(ValueError, match="one of"):
        BiMamba(8, scan_backend="tritn")
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ssm.selective_scan(**inp, backend="triton")


def test_without_triton_the_cpu_paths_run_and_the_triton_backend_says_why():
    """In a fresh interpreter where `import triton` fails: the pipeline's modules import, an ASYM
    model trains a step on the CPU, and backend="triton" names the missing package."""
    code = textwrap.dedent("""
        import sys
        sys.modules["triton"] = None          # any `import triton` now raises ImportError
        import torch
        import asym.cli, asym.train.job, asym.evaluate, asym.report.aggregate
        from asym.config import load_params
        from asym.models import factory, registry
        from asym.nn import ssm
        net = factory.from_params("asym", load_params("params.yaml"), "lmvd", widths=(6, 5))
        logits = net(torch.randn(2, 9, 6), torch.randn(2, 9, 5), torch.tensor([9, 4]))
        logits.sum().backward()
        assert ssm.pick_backend(torch.zeros(1)) == "cpu"
        assert "asym.nn.scan_triton" not in sys.modules
        u, A, B = torch.randn(1, 2, 3), -torch.ones(2, 2), torch.ones(1, 2, 3)
        try:
            ssm.selective_scan(u, u, A, B, B, backend="triton")
        except RuntimeError as e:
            print(e)
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "backend 'triton' requested but triton does not import" in run.stdout


def test_kernels_compile_for_a_gpu_without_one():
    """Triton's compiler (its LLVM and ptxas ship in the wheel) builds both kernels for Hopper
    here, so CI checks what the interpreter cannot: that the bodies are valid compiled Triton.
    bf16 inputs with every optional input, as the Mamba block calls it."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    bf16 = {"u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr", "dout_ptr", "du_ptr",
            "ddelta_ptr", "dz_ptr"}
    for which, body in enumerate((scan_triton._scan_fwd, scan_triton._scan_bwd)):
        block_d, block_n, _ = scan_triton._tiles(1024, 1, 16, scan_triton.CHUNK, None,
                                                 scan_triton.TILE[which])
        flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True,
                     SP_LINEAR=scan_triton.SOFTPLUS_LINEAR, SAVE=True, ACC=triton.language.float32,
                     BLOCK_D=block_d, BLOCK_N=block_n, CHUNK=scan_triton.CHUNK)
        kernel = JITFunction(body)
        signature = {name: "constexpr" if name in flags else
                     ("*bf16" if name in bf16 else "*fp32") if name.endswith("_ptr") else "i32"
                     for name in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, signature, flags),
                                  target=GPUTarget("cuda", 90, 32),
                                  options=scan_triton._launch(which))
        assert f".entry {body.__name__}" in compiled.asm["ptx"] and compiled.asm["cubin"]


def test_auto_backend_order():
    assert ssm.auto_backend("cuda", mamba_ssm=True, triton=True) == "cuda"
    assert ssm.auto_backend("cuda", mamba_ssm=False, triton=True) == "triton"
    assert ssm.auto_backend("cuda", mamba_ssm=False, triton=False) == "torch"
    assert ssm.auto_backend("cpu", mamba_ssm=True, triton=True) == "cpu"
    assert ssm.auto_backend("mps", mamba_ssm=False, triton=True) == "torch"
    assert ssm.pick_backend(torch.zeros(1)) == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_compiled_kernels_on_cuda_match_the_cpu_kernel_and_repeat_bit_for_bit(dtype):
    base = make_inputs(71, 2, 96, 12, 777, groups=2)
    base = {k: (v.to(dtype).float() if k in BC_INPUTS else v) for k, v in base.items()}
    w = torch.randn(2, 96, 777, generator=torch.Generator().manual_seed(6)).to(dtype).float()
    ref_in = with_grad(base)
    ref_out, ref_last = ssm.selective_scan(**ref_in, delta_softplus=True, return_last_state=True,
                                           backend="cpu")
    ref_g = grads(ref_out, ref_in, w)
    runs = []
    for _ in range(2):
        inp = with_grad({k: v.cuda().to(dtype if k in BC_INPUTS else torch.float32)
                         for k, v in base.items()})
        out, last = ssm.selective_scan(**inp, delta_softplus=True, return_last_state=True,
                                       backend="triton")
        runs.append((out, last, grads(out, inp, w.cuda().to(dtype))))
    (out, last, g), (_, _, g2) = runs
    tol_out, tol_grad = (1e-4, 1e-3) if dtype == torch.float32 else (BF16_OUT, BF16_OUT)   # GPU exp
    assert out.dtype == dtype and last.dtype == torch.float32
    assert rel_err(out.cpu(), ref_out) < tol_out and rel_err(last.cpu(), ref_last) < 1e-4
    for key in ref_g:
        assert torch.equal(g[key], g2[key]), key
        assert rel_err(g[key].cpu(), ref_g[key]) < tol_grad, key
