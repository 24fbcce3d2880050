"""asym.train.gpu_memory: a training job's GPU memory from the train-step tables, GPU rows first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from asym.config import Params, load_params
from asym.models import registry
from asym.train import gpu_memory as gm
from tests.conftest import ROOT

PARAMS = load_params(ROOT / "params.yaml")


def with_precision(params: Params, precision: str) -> Params:
    data = params.data.model_copy(update={"train": params.data.train.model_copy(update={"precision": precision})})
    return Params(data, params.path, params.raw)


def row(model: str, dataset: str, device: str, peak_mb: float, params: int = 4_000_000, batch: int = 16,
        precision: str = "fp32") -> dict:
    return {"model": model, "dataset": dataset, "device": device, "precision": precision, "seconds": 1.0,
            "peak_mb": peak_mb, "params": params, "frames": 1000, "batch": batch, "threads": 2}


def results(tmp_path: Path, cpu: list[dict], gpu: list[dict] | None = None, mode: str = "gpu") -> Path:
    folder = tmp_path / "results"
    folder.mkdir(parents=True)
    (folder / "train-step-cpu-2core.json").write_text(json.dumps({"rows": cpu, "grid_hours": {}}))
    (folder / "scan-cpu-2core.json").write_text(json.dumps({"rows": [row("asym", "dvlog", "cpu", 1e6)]}))
    if gpu is not None:
        (folder / "2026-12-07-h100.json").write_text(json.dumps(
            {"mode": mode, "gpu": "NVIDIA H100", "steps": {"train_step": {"returncode": 0, "results": {"rows": gpu}}}}))
    return folder


def expected(r: dict, batch: int) -> int:
    """The module docstring's formula, written out once more."""
    peak = r["peak_mb"] - (gm.CPU_BASELINE_MB if r["device"] == "cpu" else 0)
    fixed = r["params"] * 16 / 2**20
    mb = gm.HEADROOM * (fixed + (peak - fixed) * batch / r["batch"]) + gm.CUDA_CONTEXT_MB
    return math.ceil(mb / gm.ROUND_MB) * gm.ROUND_MB


@pytest.mark.parametrize("dataset", ["dvlog", "lmvd"])
def test_every_registry_model_has_a_figure_from_the_tables_in_the_repository(dataset):
    figures = {m: gm.gpu_mem_mb(m, dataset, "paper", PARAMS) for m in registry.names()}
    assert all(mb % gm.ROUND_MB == 0 and mb > gm.CUDA_CONTEXT_MB for mb in figures.values())
    measured = {r["model"]: r for r in gm.measured_rows() if r["dataset"] == dataset and r["device"] == "cpu"}
    asym_row = measured["asym"]
    assert figures["asym"] == expected(asym_row, PARAMS.at_scale("paper").recipe("asym").batch_size)
    assert figures["asym"] > asym_row["peak_mb"] - gm.CPU_BASELINE_MB    # never less than it measured
    assert figures["mean-mlp"] < figures["asym"]
    for m in registry.names():
        if m not in measured:                               # unmeasured: the largest measured figure
            assert gm.source(m, dataset) == "estimate"
            assert figures[m] == max(figures[k] for k in measured if k in figures)
    assert {gm.gpu_mem_mb(m, dataset, "demo", PARAMS) for m in registry.names()} == {gm.DEMO_MB}


def test_a_gpu_row_wins_over_the_cpu_row_at_the_precision_training_uses(tmp_path):
    cpu = [row("asym", "dvlog", "cpu", 12000.0), row("mean-mlp", "dvlog", "cpu", 500.0, params=100_000)]
    gpu = [row("asym", "dvlog", "cuda", 9000.0), row("asym", "dvlog", "cuda", 5000.0, precision="bf16")]
    folder = results(tmp_path, cpu, gpu)
    assert gm.gpu_mem_mb("asym", "dvlog", "paper", PARAMS, folder) == expected(gpu[0], 16)
    assert gm.gpu_mem_mb("asym", "dvlog", "paper", with_precision(PARAMS, "bf16"), folder) == expected(gpu[1], 16)
    assert gm.source("asym", "dvlog", folder) == "gpu" and gm.source("mean-mlp", "dvlog", folder) == "cpu"
    # a rehearsal's rows (the CPU, demo widths) are no GPU measurement
    rehearsal = results(tmp_path / "r", cpu, [row("asym", "dvlog", "cuda", 10.0)], mode="rehearse")
    assert gm.gpu_mem_mb("asym", "dvlog", "paper", PARAMS, rehearsal) == expected(cpu[0], 16)


def test_activations_follow_the_recipes_batch_and_the_weights_do_not(tmp_path):
    batch = PARAMS.at_scale("paper").recipe(registry.get("mdd-net").recipe).batch_size
    assert batch == 8                                     # MDD-Net's recipe trains at half the measured batch
    r = row("mdd-net", "lmvd", "cuda", 20000.0, params=35_283_569)
    folder = results(tmp_path, [], [r])
    got = gm.gpu_mem_mb("mdd-net", "lmvd", "paper", PARAMS, folder)
    assert got == expected(r, 8)
    fixed = r["params"] * 16 / 2**20
    assert got < expected(r, 16) and got > gm.HEADROOM * (fixed + (r["peak_mb"] - fixed) / 2)


def test_an_unmeasured_model_takes_the_largest_measured_figure(tmp_path):
    cpu = [row("mult", "dvlog", "cpu", 16000.0), row("mean-mlp", "dvlog", "cpu", 500.0, params=100_000)]
    folder = results(tmp_path, cpu)
    mult_batch = PARAMS.at_scale("paper").recipe(registry.get("mult").recipe).batch_size
    assert gm.gpu_mem_mb("caf-mamba", "dvlog", "paper", PARAMS, folder) == expected(cpu[0], mult_batch)
    # a GPU measurement of a small model does not hide the CPU's figure of a larger one
    folder = results(tmp_path / "gpu", cpu, [row("mean-mlp", "dvlog", "cuda", 300.0, params=100_000)])
    assert gm.gpu_mem_mb("caf-mamba", "dvlog", "paper", PARAMS, folder) == expected(cpu[0], mult_batch)
    with pytest.raises(ValueError, match="no train-step row for dataset 'lmvd'"):
        gm.gpu_mem_mb("caf-mamba", "lmvd", "paper", PARAMS, folder)


def test_an_unreadable_result_is_named(tmp_path):
    folder = results(tmp_path, [row("asym", "dvlog", "cpu", 12000.0)])
    (folder / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not a readable JSON result"):
        gm.gpu_mem_mb("asym", "dvlog", "paper", PARAMS, folder)


def test_the_rule_resource_is_zero_where_training_holds_no_gpu():
    wildcards = SimpleNamespace(model="asym", dataset="lmvd")
    paper = PARAMS.at_scale("paper")
    assert gm.resource(paper, uses_gpu=False)(wildcards) == 0
    assert gm.resource(paper, uses_gpu=True)(wildcards) == gm.gpu_mem_mb("asym", "lmvd", "paper", paper)
