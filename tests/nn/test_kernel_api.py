"""Every call into mamba-ssm and causal-conv1d, checked against their real source on a CPU.

The CUDA path cannot run here, so nothing would notice a renamed keyword or a swapped argument
until someone tries a GPU. These tests read both packages' source distributions (.cache/oracle,
fetched by `make oracle`; never built or installed), take each function's signature and the
tensor layouts its docstring documents with `ast`, and put in the packages' place stand-ins
that bind every call to the real signature, check the layouts, and compute the result with the
package's own pure-PyTorch reference. Our CUDA code path then has to give what the CPU path
gives, and every import of ours from either package has to name something the package defines.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import tarfile
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from asym.nn import mamba as mamba_mod
from asym.nn import ssm
from asym.nn.mamba import BiMamba, Mamba
from tests.conftest import ORACLE_DIR, ROOT, modules_restored

SDISTS = {"mamba_ssm": "mamba_ssm-*.tar.gz", "causal_conv1d": "causal_conv1d-*.tar.gz"}
SCAN_MODULE = "mamba_ssm.ops.selective_scan_interface"
CONV_MODULE = "causal_conv1d.causal_conv1d_interface"


def _sdist(package: str) -> tarfile.TarFile:
    tars = sorted(ORACLE_DIR.glob(SDISTS[package]))
    if not tars:
        pytest.skip(f"{package} source distribution not in .cache/oracle (run `make oracle` with network access)")
    return tarfile.open(tars[-1])


def _module_source(module: str) -> tuple[str, str]:
    """(source, file name) of a module (dotted name) inside its package's source distribution."""
    package = module.split(".")[0]
    with _sdist(package) as tar:
        for suffix in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"):
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + suffix)), None)
            if member is not None:
                return tar.extractfile(member).read().decode(), member.name
    raise LookupError(f"{module} is not in the {package} source distribution")


def _public_names(module: str) -> set[str]:
    """Names a module defines at top level or imports into its namespace (re-exports)."""
    tree = ast.parse(_module_source(module)[0])
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _function(module: str, name: str) -> ast.FunctionDef:
    tree = ast.parse(_module_source(module)[0])
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not found:
        raise LookupError(f"{module} defines no function {name}")
    return found[0]


def _signature(fn: ast.FunctionDef) -> inspect.Signature:
    a = fn.args
    P = inspect.Parameter
    params = [P(x.arg, P.POSITIONAL_ONLY) for x in a.posonlyargs]
    positional = a.args
    first_default = len(positional) - len(a.defaults)
    for i, x in enumerate(positional):
        default = ast.literal_eval(a.defaults[i - first_default]) if i >= first_default else P.empty
        params.append(P(x.arg, P.POSITIONAL_OR_KEYWORD, default=default))
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append(P(x.arg, P.KEYWORD_ONLY, default=P.empty if d is None else ast.literal_eval(d)))
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


@dataclass
class Layout:
    """What a docstring line such as `B: c(D N) or r(B N L) or r(B G N L)` allows."""

    shapes: list[tuple[str, list[str]]] = field(default_factory=list)   # (kind r/c/'', dims)
    values: list[object] = field(default_factory=list)                 # allowed non-tensor values
    fp32: bool = False


def _layouts(doc: str) -> dict[str, Layout]:
    out = {}
    for line in doc.splitlines():
        m = re.match(r"\s*(\w+):\s*(.+)", line)
        if not m:
            continue
        name, spec = m.groups()
        lay = Layout(fp32="fp32" in spec)
        for kind, dims in re.findall(r"(\w*)\(([^)]*)\)", spec):
            if kind not in ("", "r", "c"):
                continue
            parts = dims.split(",") if "," in dims else dims.split()
            lay.shapes.append((kind, [p.strip() for p in parts if p.strip()]))
        lay.values = [s for s in re.findall(r'"([^"]+)"', spec)] + ([None] if "None" in spec else [])
        out[name] = lay
    return out


def _check_layouts(fn_name: str, layouts: dict[str, Layout], arguments: dict) -> None:
    """Each tensor argument must have one of its documented layouts, with every named dimension
    the same size wherever it appears (B in u and in B, D in u and in A, ...)."""
    sizes: dict[str, int] = {}
    for name, value in arguments.items():
        lay = layouts.get(name)
        if lay is None or value is None:
            continue
        if not isinstance(value, torch.Tensor):
            if lay.values:
                assert value in lay.values, f"{fn_name}({name}={value!r}): the docstring allows {lay.values}"
            continue
        assert lay.shapes, f"{fn_name}: {name} is a tensor but documented as {lay.values}"
        for kind, dims in lay.shapes:
            if len(dims) != value.dim() or (kind == "c") != value.is_complex():
                continue
            fixed = {d: s for d, s in zip(dims, value.shape, strict=True) if d.isidentifier()}
            if all(sizes.get(d, s) == s for d, s in fixed.items()):
                sizes.update(fixed)
                break
        else:
            raise AssertionError(f"{fn_name}({name}=tensor of shape {tuple(value.shape)}): the docstring "
                                 f"allows {[' '.join(d) for _, d in lay.shapes]} given {sizes}")
        if lay.fp32:
            assert value.dtype == torch.float32, f"{fn_name}: {name} must be float32"


@dataclass
class StandIn:
    """A package function replaced by: bind to the real signature, check layouts, record, run
    the package's reference implementation."""

    name: str
    signature: inspect.Signature
    layouts: dict[str, Layout]
    reference: object
    calls: list[dict]

    def __call__(self, *args, **kwargs):
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise AssertionError(f"call does not fit {self.name}{self.signature}: {e}") from e
        _check_layouts(self.name, self.layouts, bound.arguments)
        self.calls.append(dict(bound.arguments))
        ref_params = inspect.signature(self.reference).parameters
        unsupported = [k for k, v in bound.arguments.items() if k not in ref_params and v is not None]
        assert not unsupported, f"the reference of {self.name} has no {unsupported}"
        return self.reference(**{k: v for k, v in bound.arguments.items() if k in ref_params})


def _load_reference(module: str, name: str, placeholders: dict[str, types.ModuleType]):
    """Execute a module's source from its sdist with its compiled imports replaced, and return
    one of its pure-PyTorch functions (sys.modules restored afterwards)."""
    source, filename = _module_source(module)
    with modules_restored(list(placeholders)):
        sys.modules.update(placeholders)
        namespace: dict = {"__name__": f"_oracle_{name}"}
        exec(compile(source, f"<{filename}>", "exec"), namespace)
    return namespace[name]


def _unavailable(*_args, **_kwargs):
    raise RuntimeError("CUDA-only code called from a CPU test")


def _placeholder(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = []
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


@pytest.fixture(scope="module")
def kernel_specs(mamba_ref):
    """(signature, layouts, reference) of selective_scan_fn and causal_conv1d_fn from the sdists."""
    scan_fn, scan_ref = _function(SCAN_MODULE, "selective_scan_fn"), _function(SCAN_MODULE, "selective_scan_ref")
    # selective_scan_fn documents only its return; its reference twin, with the same signature,
    # documents the layouts.
    assert [a.arg for a in scan_fn.args.args] == [a.arg for a in scan_ref.args.args]
    conv_fn = _function(CONV_MODULE, "causal_conv1d_fn")
    conv_ref = _load_reference(CONV_MODULE, "causal_conv1d_ref", {
        "causal_conv1d": _placeholder("causal_conv1d"),
        "causal_conv1d.cpp_functions": _placeholder(
            "causal_conv1d.cpp_functions", causal_conv1d_fwd_function=_unavailable,
            causal_conv1d_bwd_function=_unavailable, causal_conv1d_update_function=_unavailable),
    })
    return {
        "selective_scan_fn": (_signature(scan_fn), _layouts(ast.get_docstring(scan_ref)), mamba_ref),
        "causal_conv1d_fn": (_signature(conv_fn), _layouts(ast.get_docstring(conv_fn)), conv_ref),
    }


@pytest.fixture
def stand_ins(kernel_specs, monkeypatch):
    """The two packages, as far as our code imports them, replaced by checking stand-ins; returns
    the list every call is recorded in, as (function name, bound arguments)."""
    calls: list = []
    modules = {}
    for name, module, exported_from in (("selective_scan_fn", SCAN_MODULE, SCAN_MODULE),
                                        ("causal_conv1d_fn", "causal_conv1d", "causal_conv1d")):
        record: list = []
        stand_in = StandIn(name, *kernel_specs[name], record)
        mod = modules.setdefault(module, _placeholder(module))
        for public in _public_names(exported_from):
            setattr(mod, public, _unavailable)
        setattr(mod, name, stand_in)
        calls.append((name, record))
    for parent in ("mamba_ssm", "mamba_ssm.ops"):
        modules.setdefault(parent, _placeholder(parent))
    for k, v in modules.items():
        monkeypatch.setitem(sys.modules, k, v)
    ssm._mamba_ssm_fn.cache_clear()
    yield dict(calls)
    ssm._mamba_ssm_fn.cache_clear()


def _scan_inputs(seed: int, b: int, d: int, n: int, L: int, groups: int | None) -> dict:
    g = torch.Generator().manual_seed(seed)
    bc = (b, groups, n, L) if groups else (b, n, L)
    return dict(u=torch.randn(b, d, L, generator=g), delta=0.5 * torch.randn(b, d, L, generator=g),
                A=-torch.rand(d, n, generator=g) - 0.1, B=torch.randn(*bc, generator=g),
                C=torch.randn(*bc, generator=g), D=torch.randn(d, generator=g), z=torch.randn(b, d, L, generator=g),
                delta_bias=0.3 * torch.randn(d, generator=g))


@pytest.mark.parametrize("groups", [None, 2])
def test_selective_scan_cuda_call_fits_mamba_ssm(stand_ins, groups):
    inputs = _scan_inputs(4, 2, 8, 4, 37, groups)
    out, last = ssm.selective_scan(**inputs, delta_softplus=True, return_last_state=True, backend="cuda")
    ref_out, ref_last = ssm.selective_scan(**inputs, delta_softplus=True, return_last_state=True, backend="cpu")
    (call,) = stand_ins["selective_scan_fn"]
    assert call["delta_softplus"] is True and call["return_last_state"] is True
    assert torch.allclose(out, ref_out, rtol=1e-4, atol=1e-5)
    assert torch.allclose(last, ref_last, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block", [Mamba, BiMamba])
def test_mamba_block_cuda_path_fits_both_packages(stand_ins, monkeypatch, block):
    """The whole block on its CUDA path (both kernels, via the stand-ins) equals its CPU path."""
    torch.manual_seed(0)
    layer = block(16, d_state=4).eval()
    x, lengths = torch.randn(3, 21, 16), torch.tensor([21, 15, 9])
    with torch.no_grad():
        expected = layer(x, lengths)
        mamba_mod._causal_conv1d_fn.cache_clear()          # the stand-in imports now, where the real one did not
        monkeypatch.setattr(mamba_mod, "_fused_conv", lambda t: mamba_mod._causal_conv1d_fn())
        for branch in (layer.fwd, layer.bwd) if block is BiMamba else (layer.fwd,):
            branch.scan_backend = "cuda"
        got = layer(x, lengths)
    n_branches = 2 if block is BiMamba else 1
    assert len(stand_ins["causal_conv1d_fn"]) == n_branches
    assert len(stand_ins["selective_scan_fn"]) == n_branches
    assert stand_ins["causal_conv1d_fn"][0]["activation"] == "silu"
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    mamba_mod._causal_conv1d_fn.cache_clear()              # the stand-ins leave with the fixture


def test_causal_conv1d_is_imported_once_even_where_it_fails(monkeypatch):
    import builtins

    tries = []
    real_import = builtins.__import__

    def counting(name, *args, **kwargs):
        if name == "causal_conv1d":
            tries.append(name)
            raise ImportError("no CUDA build here")
        return real_import(name, *args, **kwargs)

    mamba_mod._causal_conv1d_fn.cache_clear()
    monkeypatch.setattr(builtins, "__import__", counting)
    assert [mamba_mod._causal_conv1d_fn() for _ in range(3)] == [None] * 3
    assert tries == ["causal_conv1d"]
    mamba_mod._causal_conv1d_fn.cache_clear()


def _kernel_imports(path: Path) -> list[tuple[str, str, ast.AST]]:
    tree = ast.parse(path.read_text())
    return [(node.module, alias.name, node) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module and node.module.split(".")[0] in SDISTS for alias in node.names]


def _our_sources() -> list[Path]:
    return sorted([*(ROOT / "asym").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


def test_every_import_and_direct_call_names_the_real_api(kernel_specs):
    """Statically, over asym/ and benchmarks/: each `from <package> import name` names something
    the package defines, and each direct call of such a name passes only real keywords and no
    more positional arguments than the real signature takes."""
    found = 0
    for path in _our_sources():
        tree = ast.parse(path.read_text())
        for module, name, _node in _kernel_imports(path):
            found += 1
            where = f"{path.relative_to(ROOT)}: from {module} import {name}"
            assert name in _public_names(module), f"{where}: {module} has no {name}"
            if name not in kernel_specs:
                continue
            params = kernel_specs[name][0].parameters
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name:
                    keywords = [k.arg for k in call.keywords if k.arg is not None]
                    assert set(keywords) <= set(params), f"{where}: unknown keywords {set(keywords) - set(params)}"
                    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
                    assert len(positional) <= len(params), f"{where}: too many positional arguments"
    assert found >= 3, "the scan for imports from mamba_ssm / causal_conv1d found too few"
