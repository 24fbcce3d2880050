"""What each model costs to run on a vlog: parameters, multiply-accumulates, latency and peak memory
per minute of vlog, at a batch of vlogs of each length `cost.minutes` names at the active scale.

Multiply-accumulates: PyTorch's own counter (torch.utils.flop_counter.FlopCounterMode) on the
evaluation forward pass (the whole vlog: crops are a training augmentation), plus formulas for
what it cannot see:

- the selective scan (asym.nn.ssm.selective_scan): a custom autograd Function whose CPU kernel
  runs in Numba and whose CUDA kernel is mamba-ssm's, so no aten op carries its arithmetic. Its
  count is `selective_scan_flops`, written out per step, channel and state below. Any other such
  op joins in one line, `register_scan("module:function", flops_of_one_call)` (a Mamba2 / SSD scan
  the same way): while counting, every asym module's reference to the function is wrapped so that
  each call reports its FLOPs to the counter through an op of its own (`asym_cost.<name>`, listed
  beside aten's), with the counter blind to whatever the function runs inside;
- CPU attention (aten._scaled_dot_product_flash_attention_for_cpu) and CPU LSTMs
  (aten.mkldnn_rnn_layer), which the counter has no formula for: `EXTRA_FORMULAS`.

The count runs with autograd on, so that nn.TransformerEncoderLayer and nn.MultiheadAttention take
their composite path (linear layers and scaled dot-product attention, which the counter sees)
rather than the fused inference kernels that hide theirs; an op known to hide arithmetic
(`UNCOUNTED`) stops the count rather than go uncounted. The counter counts matrix products,
convolutions and attention, 2 FLOPs per multiply-add, and no elementwise op outside a scan;
MACs = FLOPs / 2.

Latency: the median of `cost.repeats` timed forward passes after `cost.warmup` untimed ones, under
torch.inference_mode (as evaluation predicts), with `cost.threads` torch threads.

Peak memory: the resident set's high-water mark over one forward pass, less the resident set
before it (so the loaded model and its inputs are left out), in this process, after the memory that
earlier passes freed is handed back to the system (glibc's malloc_trim) so a pass that reuses it
shows it. Resident memory rather than torch's allocator statistics or its profiler's
`profile_memory` because the CPU scan's buffers are NumPy's, which torch never sees (tracemalloc
sees NumPy's and not torch's: it is wrong either way). Its resolution is a few hundred kB. Linux only (/proc/self/clear_refs
resets the mark); elsewhere no figure. On CUDA (`device_rows`, which benchmarks/gpu_check.py's
cost step calls): torch.cuda's peak allocated bytes over the pass.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import inspect
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from asym.data import formats
from asym.errors import ConfigError
from asym.models import factory, registry

if TYPE_CHECKING:
    from asym.config import Params

# Every reader yields one feature row per second (asym.data.sample.per_second), so a model's input
# has 60 frames per minute of vlog, whatever the release.
FRAMES_PER_MINUTE = 60
FLOPS_PER_MAC = 2            # the counter's convention: a multiply-add is 2 FLOPs
LIBRARY = "asym_cost"        # the namespace of the ops through which scans report their FLOPs
INPUT_SEED = 0               # the random inputs' seed (no count depends on their values)
BYTES_PER_MB = 2 ** 20

# --- the selective scan -------------------------------------------------------------------------
# FLOPs of mamba-ssm's selective scan, one per scalar +, x, /, exp, log or negation, for each step
# t, batch row b and channel d. With dt = delta + delta_bias (softplus'd) and h the state:
#   per state n:  dA = exp(dt * A[d, n])          2  (the decay: a multiply, an exp)
#                 dBu = (dt * u) * B[n]           1  (dt * u is formed once per channel, below)
#                 h = dA * h + dBu                2  (the state update's multiply-add)
#                 y += C[n] * h                   2  (the C readout's multiply-add)
STATE_FLOPS = {"decay": 2, "input": 1, "update": 2, "readout": 2}
#   per channel:  dt * u                          1
#                 delta + delta_bias              1  (when a bias is given)
#                 softplus = log(1 + exp(x))      3  (when delta_softplus)
#                 y += D * u                      2  (the D skip, when D is given)
#                 y *= z * 1 / (1 + exp(-z))      6  (the SiLU(z) gate: negate, exp, add, divide,
#                                                     multiply by z, multiply into y; when z is given)
CHANNEL_FLOPS = {"delta_u": 1, "delta_bias": 1, "softplus": 3, "skip": 2, "gate": 6}


def selective_scan_flops(batch: int, channels: int, length: int, d_state: int, *, delta_bias: bool = False,
                         softplus: bool = False, skip: bool = False, gate: bool = False) -> int:
    """FLOPs of one selective scan of `length` steps over `batch` x `channels` with `d_state`
    states per channel (grouped B and C cost the same: each channel reads its group's)."""
    per_channel = CHANNEL_FLOPS["delta_u"] + sum(CHANNEL_FLOPS[k] for k, on in (
        ("delta_bias", delta_bias), ("softplus", softplus), ("skip", skip), ("gate", gate)) if on)
    return batch * channels * length * (d_state * sum(STATE_FLOPS.values()) + per_channel)


def selective_scan_call_flops(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                              C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                              delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                              **_: Any) -> int:
    """`selective_scan_flops` of one call of asym.nn.ssm.selective_scan, from its arguments."""
    batch, channels, length = u.shape
    return selective_scan_flops(batch, channels, length, A.shape[1], delta_bias=delta_bias is not None,
                                softplus=bool(delta_softplus), skip=D is not None, gate=z is not None)


# --- scans the counter cannot see ---------------------------------------------------------------
@dataclass(frozen=True)
class ScanCost:
    name: str                          # the counter lists its FLOPs under `asym_cost.<name>`
    target: str                        # "module:function"
    flops: Callable[..., int]          # FLOPs of one call, from the call's arguments by name
    definition: Any                    # the op through which a call reports them (kept: it owns the registration)

    @property
    def op(self) -> Any:
        return getattr(getattr(torch.ops, LIBRARY), self.name)

    def function(self) -> Callable[..., Any]:
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)


SCANS: dict[str, ScanCost] = {}


def register_scan(target: str, flops: Callable[..., int], name: str | None = None) -> ScanCost:
    """Count every call of the function `target` ("module:function") as `flops(**arguments)`
    FLOPs (its arguments by name, defaults filled in); what it runs inside is not counted."""
    name = name or target.split(":")[1]
    if name in SCANS:
        raise ValueError(f"a scan named {name!r} is already registered ({SCANS[name].target})")

    def report(flops: int) -> None:
        """Does nothing: the counter reads its argument (`custom_mapping`)."""

    SCANS[name] = ScanCost(name, target, flops, torch.library.custom_op(f"{LIBRARY}::{name}", report, mutates_args=()))
    return SCANS[name]


register_scan("asym.nn.ssm:selective_scan", selective_scan_call_flops)


# --- Mamba2's scan (SSD) ------------------------------------------------------------------------
# FLOPs of the state-space duality scan (asym.nn.ssd.ssd, mamba_chunk_scan_combined's semantics),
# counted as its recurrence, for each step t, batch row b and head h (dt scalar per head):
#   per head:     dA = exp(dt * A[h])              2  (the decay: a multiply, an exp)
#                 dt + dt_bias                     1  (when a bias is given)
#                 softplus = log(1 + exp(x))       3  (when dt_softplus)
#   per head channel p:  dt * x[p]                 1
#                        y += D * x                2  (the D skip, when D is given)
#                        y *= z * sigmoid(z)       6  (the SiLU(z) gate, when z is given)
#   per (p, state n):    (dt * x[p]) * B[n]        1
#                        h = dA * h + dBx          2
#                        y += C[n] * h             2
# The chunked form computes the same recurrence by matrix products; what is counted is the work of
# the recurrence, a lower bound that does not depend on the chunk length.
SSD_HEAD_FLOPS = {"decay": 2, "dt_bias": 1, "softplus": 3}
SSD_CHANNEL_FLOPS = {"dt_x": 1, "skip": 2, "gate": 6}
SSD_STATE_FLOPS = {"input": 1, "update": 2, "readout": 2}


def ssd_flops(batch: int, length: int, heads: int, headdim: int, d_state: int, *, dt_bias: bool = False,
              softplus: bool = False, skip: bool = False, gate: bool = False) -> int:
    """FLOPs of one SSD scan of `length` steps over `batch` x `heads` heads of `headdim` channels with
    `d_state` states (grouped B and C cost the same: each head reads its group's)."""
    per_head = SSD_HEAD_FLOPS["decay"] + sum(SSD_HEAD_FLOPS[k] for k, on in (
        ("dt_bias", dt_bias), ("softplus", softplus)) if on)
    per_channel = SSD_CHANNEL_FLOPS["dt_x"] + sum(SSD_CHANNEL_FLOPS[k] for k, on in (
        ("skip", skip), ("gate", gate)) if on)
    return batch * length * heads * (per_head + headdim * (per_channel + d_state * sum(SSD_STATE_FLOPS.values())))


def ssd_call_flops(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                   dt_softplus: bool = False, **_: Any) -> int:
    """`ssd_flops` of one call of asym.nn.ssd.ssd, from its arguments (x: (b, l, h, p), B: (b, l, g, n))."""
    batch, length, heads, headdim = x.shape
    return ssd_flops(batch, length, heads, headdim, B.shape[-1], dt_bias=dt_bias is not None,
                     softplus=bool(dt_softplus), skip=D is not None, gate=z is not None)


register_scan("asym.nn.ssd:ssd", ssd_call_flops)


def _reporting(scan: ScanCost, original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, run with the counter blind to it, then reporting `scan.flops` of the call."""
    signature = inspect.signature(original)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _disable_current_modes():
            out = original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        scan.op(int(scan.flops(**bound.arguments)))
        return out

    return wrapper


@contextlib.contextmanager
def counted_scans() -> Iterator[None]:
    """Inside, each registered scan called from asym's modules reports its FLOPs (see the module
    docstring); every reference is restored on leaving."""
    patched: list[tuple[Any, str, Any]] = []
    try:
        for scan in SCANS.values():
            original = scan.function()
            wrapper = _reporting(scan, original)
            for module in [m for n, m in list(sys.modules.items()) if n == "asym" or n.startswith("asym.")]:
                for attr, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attr, wrapper)
                        patched.append((module, attr, original))
        yield
    finally:
        for module, attr, original in reversed(patched):
            setattr(module, attr, original)


def _lstm_layer_flops(input: Any, w_ih: Any, w_hh: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
    """aten.mkldnn_rnn_layer (an LSTM layer, one direction, on the CPU): every step's gate
    pre-activations, x W_ih^T + h W_hh^T, over the (T, B) or (B, T) input's rows."""
    rows = input[0] * input[1]
    return FLOPS_PER_MAC * rows * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])


def _cpu_attention_flops(query: Any, key: Any, value: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
    """aten._scaled_dot_product_flash_attention_for_cpu: as the counter counts its CUDA twins."""
    return sdpa_flop_count(query, key, value)


EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    torch.ops.aten.mkldnn_rnn_layer: _lstm_layer_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
}
# Fused inference kernels that hide matrix products from the counter (the count runs with
# autograd on, so nn.Transformer* and nn.MultiheadAttention do not take them).
UNCOUNTED = frozenset({"aten._transformer_encoder_layer_fwd", "aten._native_multi_head_attention",
                       "aten._cudnn_rnn", "aten._thnn_fused_lstm_cell", "aten._thnn_fused_gru_cell"})


class _RefuseUncounted(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if str(func._overloadpacket) in UNCOUNTED:
            raise RuntimeError(f"{func} hides matrix products from the FLOP counter: register its formula in "
                               "asym.cost.EXTRA_FORMULAS")
        return func(*args, **(kwargs or {}))


def custom_mapping() -> dict[Any, Callable[..., int]]:
    """The counter's formulas beyond its own: EXTRA_FORMULAS and each registered scan's op."""
    scans = {scan.op: (lambda flops, out_shape=None: flops) for scan in SCANS.values()}
    return {**EXTRA_FORMULAS, **scans}


def count_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward pass of `model` on `inputs`, by op (`aten.mm`, `asym_cost.selective_scan`, ...)."""
    counter = FlopCounterMode(display=False, custom_mapping=custom_mapping())
    model.eval()
    with torch.enable_grad(), counter, _RefuseUncounted(), counted_scans():
        model(*inputs)
    return {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}


# --- measuring a model ------------------------------------------------------------------------
def widths_of(params: Params, dataset: str) -> tuple[int, int]:
    """(audio, visual) widths: the release's, or for a format whose widths come from its data, the
    dataset card's (its table must have been converted)."""
    fmt = formats.get(params.dataset(dataset).format)
    if fmt.widths is not None:
        return fmt.widths
    from asym.io import read_json
    from asym.layout import Layout

    card = Path(Layout.of(params).card_json(dataset))
    if not card.is_file():
        raise ConfigError(f"dataset {dataset!r} ({fmt.name}): its widths come from its data, and {card} is not "
                          "there: run `asym convert --dataset {dataset}` first")
    info = read_json(card)
    return int(info["audio_dim"]), int(info["visual_dim"])


def inputs(widths: tuple[int, int], frames: int, batch: int, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """A batch of `batch` random vlogs of `frames` frames on `widths`: audio, visual, lengths."""
    g = torch.Generator().manual_seed(INPUT_SEED)
    audio = torch.randn(batch, frames, widths[0], generator=g)
    visual = torch.randn(batch, frames, widths[1], generator=g)
    lengths = torch.full((batch,), frames, dtype=torch.long)
    return audio.to(device), visual.to(device), lengths.to(device)


def frames_of(minutes: float) -> int:
    return max(1, round(minutes * FRAMES_PER_MINUTE))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def latency_s(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], warmup: int, repeats: int,
              device: str = "cpu") -> float:
    """Median seconds of a forward pass over `repeats` timed ones, after `warmup` untimed ones."""
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(device)
            t0 = time.perf_counter()
            model(*batch)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith(f"{field}:")).split()[1])


@functools.cache
def _libc() -> Any:
    """glibc, for malloc_trim; None elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc's, not every libc's)
    except (OSError, AttributeError):
        return None
    return libc


def memory_available() -> bool:
    """Whether peak resident memory can be measured here: Linux's /proc with a writable
    clear_refs, and glibc's malloc_trim."""
    if not sys.platform.startswith("linux") or _libc() is None:
        return False
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> int:
    """The resident set's high-water mark over one forward pass, less the resident set before it
    (the model and its inputs loaded). Memory freed earlier is first handed back to the system
    (malloc_trim), so a pass that reuses it shows it; the mark is then reset (clear_refs)."""
    gc.collect()
    _libc().malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")      # VmHWM := VmRSS
    before = _status_kb("VmRSS")
    with torch.inference_mode():
        model(*batch)
    return (_status_kb("VmHWM") - before) * 1024


def _cuda_peak_bytes(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> int:
    """Peak bytes torch allocates on the GPU over one forward pass, beyond those held before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        model(*batch)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def model_names(params: Params) -> list[str]:
    """Every registered model: the built-ins and the params file's plug-ins."""
    return registry.names(modules=[*registry.builtins(), *params.plugins])


@contextlib.contextmanager
def threads_set(n: int) -> Iterator[None]:
    """`n` threads for torch's CPU ops and for the Numba scan (up to the NUMBA_NUM_THREADS it
    started with), restored on leaving."""
    try:
        import numba
    except ImportError:
        numba = None
    saved = torch.get_num_threads(), numba.get_num_threads() if numba else None
    torch.set_num_threads(n)
    if numba:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        if numba:
            numba.set_num_threads(saved[1])


def measure(params: Params, device: str = "cpu", models: list[str] | None = None,
            datasets: list[str] | None = None, minutes: list[float] | None = None, threads: int | None = None,
            memory: bool | None = None, count: bool = True) -> list[dict[str, Any]]:
    """One row per (dataset, model, vlog length) at `params`' scale: parameters, MACs (`count`),
    latency and peak memory (`memory`) on `device`. Defaults: `cost` of `params`, every registered
    model, the run's datasets."""
    cfg = params.cost
    cuda = device.startswith("cuda")
    threads = threads or cfg.threads
    memory = (cfg.memory.at(params.scale) if memory is None else memory) and (cuda or memory_available())
    rows = []
    with threads_set(threads):
        for dataset in datasets or params.datasets:
            widths = widths_of(params, dataset)
            for name in models or model_names(params):
                torch.manual_seed(INPUT_SEED)
                model = factory.from_params(name, params, dataset, widths=widths).eval()
                n_params = factory.trainable_count(model)
                for m in sorted(minutes or cfg.minutes.at(params.scale)):
                    frames = frames_of(m)
                    batch = inputs(widths, frames, cfg.batch)
                    flops = count_flops(model, *batch) if count else {}
                    model.to(device)
                    batch = tuple(t.to(device) for t in batch)
                    seconds = latency_s(model, batch, cfg.warmup, cfg.repeats.at(params.scale), device)
                    peak = (_cuda_peak_bytes if cuda else peak_rss_bytes)(model, batch) if memory else None
                    model.to("cpu")
                    rows.append(_row(params, dataset, name, device, threads, cfg.batch, m, frames, n_params, flops,
                                     seconds, peak))
    return rows


def _row(params: Params, dataset: str, name: str, device: str, threads: int, batch: int, minutes: float,
         frames: int, n_params: int, flops: dict[str, int], seconds: float, peak: int | None) -> dict[str, Any]:
    vlog_minutes = batch * minutes
    total = sum(flops.values())
    scans = sum(n for op, n in flops.items() if op.startswith(f"{LIBRARY}."))
    nan = float("nan")
    return {"dataset": dataset, "model": name, "kind": registry.get(name).kind, "scale": params.scale,
            "device": device, "threads": threads if not device.startswith("cuda") else nan, "batch": batch,
            "minutes": minutes, "frames": frames, "params": n_params,
            "macs": total / FLOPS_PER_MAC if flops else nan,
            "macs_per_min": total / FLOPS_PER_MAC / vlog_minutes if flops else nan,
            "scan_share": scans / total if total else nan,
            "latency_s": seconds, "latency_ms_per_min": 1e3 * seconds / vlog_minutes,
            "peak_mb": peak / BYTES_PER_MB if peak is not None else nan}


def device_rows(params: Params, device: str = "cuda", **kw: Any) -> list[dict[str, Any]]:
    """`measure`'s latency and peak-memory rows on `device` (a GPU), without the MACs (they do not
    depend on the device): what benchmarks/gpu_check.py's cost step collects."""
    return measure(params, device=device, count=False, **kw)
