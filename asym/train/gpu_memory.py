"""A training job's GPU memory in MB: Snakemake's `gpu_mem_mb` resource, so that a scheduler puts
on one card only the jobs whose memory it holds (the gpu profile) and asks SLURM for a card of
that size (the slurm profile).

The figure comes from the train-step tables in benchmarks/results/ (one optimiser step of a model
at paper-scale widths on a batch of 16 vlogs x 1000 frames, benchmarks/train_step.py), best first:

1. measured on a GPU: the GPU check's table (`steps.train_step.results.rows`, device `cuda`), at
   `train.precision` (fp32 where that precision was not measured); the largest over GPUs;
2. measured on the CPU: the process's peak resident set less what the interpreter and libraries
   hold (`CPU_BASELINE_MB`, as train_step.py says);
3. not measured (a model added since): the largest figure of any measured model on the dataset,
   which errs on the safe side: a job that asks too much shares a card with fewer others, one that
   asks too little runs out of memory.

The step's memory is a fixed part, `BYTES_PER_PARAM` per parameter (fp32 weights, gradients and
Adam's two moments), and activations, which grow with the batch; a job trains at its recipe's
batch size, so

    gpu_mem_mb = HEADROOM * (fixed + (peak - fixed) * recipe batch / measured batch) + CUDA_CONTEXT_MB

rounded up to `ROUND_MB`. HEADROOM covers the caching allocator (it holds more than it hands out)
and batches of vlogs longer than 1000 frames (recipes without a crop feed whole vlogs). At demo
scale every model is small: `DEMO_MB`. Only the standard library and the registry are imported:
the DAG calls this at start-up.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from asym.config import Params
from asym.models import registry

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
BYTES_PER_PARAM = 16          # fp32 weight + gradient + Adam's exp_avg and exp_avg_sq
CPU_BASELINE_MB = 400         # the interpreter, torch and numba in a CPU measurement's resident set
CUDA_CONTEXT_MB = 1024        # the CUDA context and cuBLAS/cuDNN workspaces, outside the allocator's peak
HEADROOM = 1.2                # the caching allocator's reserve, and batches of vlogs over 1000 frames
ROUND_MB = 256
DEMO_MB = 2048                # demo widths: a few hundred MB at most, with the context


@functools.lru_cache(maxsize=8)
def measured_rows(results: Path = RESULTS) -> tuple[dict, ...]:
    """Every train-step row at paper scale in `results`: the CPU tables (`train-step-*.json`) and
    the GPU check's (`steps.train_step.results.rows` of a JSON whose mode is `gpu`)."""
    rows = []
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON result ({exc})") from None
        if not isinstance(data, dict):
            continue
        if path.name.startswith("train-step-"):
            rows += [r for r in data.get("rows", []) if r.get("device") == "cpu"]
        elif data.get("mode") == "gpu":
            step = (data.get("steps") or {}).get("train_step") or {}
            rows += [r for r in (step.get("results") or {}).get("rows") or [] if r.get("device") == "cuda"]
    return tuple(r for r in rows if {"model", "dataset", "peak_mb", "params", "batch"} <= r.keys())


def _job_mb(row: dict, batch: int) -> float:
    """One measured row scaled to the job's batch, with the headroom and the CUDA context."""
    peak = row["peak_mb"] - (CPU_BASELINE_MB if row.get("device") == "cpu" else 0)
    fixed = row["params"] * BYTES_PER_PARAM / 2**20
    activations = max(peak - fixed, 0.0) * batch / row["batch"]
    return HEADROOM * (fixed + activations) + CUDA_CONTEXT_MB


def _best(rows: Iterable[dict], precision: str) -> list[dict]:
    """The GPU rows at `precision` (else fp32) where there are any, else the CPU rows."""
    rows = list(rows)
    gpu = [r for r in rows if r.get("device") == "cuda"]
    if gpu:
        at = [r for r in gpu if r.get("precision") == precision]
        return at or [r for r in gpu if r.get("precision", "fp32") == "fp32"] or gpu
    return rows


def gpu_mem_mb(model: str, dataset: str, scale: str, params: Params | None = None,
               results: Path = RESULTS) -> int:
    """MB of GPU memory one training job of `model` on `dataset` takes at `scale` (see above)."""
    if scale == "demo":
        return DEMO_MB
    if params is None:
        from asym.config import load_params

        params = load_params(RESULTS.parents[1] / "params.yaml")
    params = params.at_scale(scale)
    batch = params.recipe(registry.get(model).recipe).batch_size
    rows = [r for r in measured_rows(results) if r["dataset"] == dataset]
    if not rows:
        raise ValueError(f"{results}: no train-step row for dataset {dataset!r} "
                         "(run benchmarks/train_step.py or the GPU check)")
    own = _best((r for r in rows if r["model"] == model), params.train.precision)
    if own:
        mb = max(_job_mb(r, batch) for r in own)
    else:   # the largest measured model's own best figure: a GPU row of a small model never hides a large one
        known = {r["model"] for r in rows if r["model"] in registry.names()}
        if not known:
            raise ValueError(f"{results}: no train-step row of a registered model for dataset {dataset!r}")
        mb = max(_job_mb(r, params.recipe(registry.get(m).recipe).batch_size)
                 for m in known for r in _best((r for r in rows if r["model"] == m), params.train.precision))
    return int(math.ceil(mb / ROUND_MB) * ROUND_MB)


def source(model: str, dataset: str, results: Path = RESULTS) -> str:
    """Where `gpu_mem_mb`'s figure for the model comes from: gpu, cpu or estimate."""
    rows = [r for r in measured_rows(results) if r["dataset"] == dataset and r["model"] == model]
    return "gpu" if any(r.get("device") == "cuda" for r in rows) else "cpu" if rows else "estimate"


def resource(params: Params, uses_gpu: bool) -> Callable[[Any], int]:
    """A training rule's `gpu_mem_mb` (a function of its wildcards, `model` and `dataset`): the
    job's memory where training holds a GPU, 0 where it does not (as `gpu_slots`)."""
    def of(wildcards: Any) -> int:
        return gpu_mem_mb(wildcards.model, wildcards.dataset, params.scale, params) if uses_gpu else 0
    return of
