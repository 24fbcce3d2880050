"""asym.report.cost: the cost table's files (written atomically), its view, the F1-against-cost
figure, and `asym cost` / `asym cost-plot` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asym.cli import main
from asym.config import load_params
from asym.layout import Layout
from asym.report import cost as report_cost

ROOT = Path(__file__).resolve().parents[2]


def _rows(models=("asym", "depmamba", "transformer"), minutes=(1.0, 10.0)) -> pd.DataFrame:
    rows = []
    for ds in ("dvlog", "lmvd"):
        for i, m in enumerate(models):
            for t in minutes:
                per_min = 1e6 * (i + 1) * (t if m == "transformer" else 1.0)
                rows.append({"dataset": ds, "model": m, "kind": "asym" if m == "asym" else "baseline", "scale": "demo",
                             "device": "cpu", "threads": 1, "batch": 1, "minutes": t, "frames": int(60 * t),
                             "params": 1000 * (i + 1), "macs": per_min * t, "macs_per_min": per_min,
                             "scan_share": 0.1 if "mamba" in m or m == "asym" else 0.0, "latency_s": 0.01 * t,
                             "latency_ms_per_min": 10.0, "peak_mb": float("nan") if m == "transformer" else 2.0 * t})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def test_the_view_gives_each_model_its_growth_per_minute():
    view = report_cost.table_view(_rows()[lambda d: d["dataset"] == "dvlog"])
    assert list(view["model"]) == ["**asym** ◀", "depmamba", "transformer"]
    growth = view.set_index("model")["×MACs/min, 10 min vs 1 min"]
    assert growth["depmamba"] == "1.00" and growth["transformer"] == "10.00"
    assert view.set_index("model").loc["transformer", "peak MB, 10 min"] == "–"
    assert view.set_index("model").loc["depmamba", "MACs/min, 1 min"] == "2M"


def test_the_table_is_written_in_four_formats(tmp_path, params):
    paths = {k: tmp_path / v.name for k, v in report_cost.table_outputs(Layout.of(params)).items()}
    report_cost.write_table(_rows(), params, paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost.csv", "cost.html", "cost.md", "cost.tex"]
    md = paths["cost_md"].read_text()
    assert "## dvlog" in md and "## lmvd" in md and "selective_scan_flops" in md
    pd.testing.assert_frame_equal(pd.read_csv(paths["cost_csv"]), _rows(), check_dtype=False)
    assert paths["cost_tex"].read_text().isascii()
    assert "<table>" in paths["cost_html"].read_text()


def test_a_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path, params, monkeypatch):
    paths = {k: tmp_path / v.name for k, v in report_cost.table_outputs(Layout.of(params)).items()}
    report_cost.write_table(_rows(), params, paths)
    before = paths["cost_csv"].read_bytes()

    def half_then_fail(self, path, **kw):
        Path(path).write_text("dataset,model\n")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        report_cost.write_table(_rows(models=("asym",)), params, paths)
    assert paths["cost_csv"].read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost.csv", "cost.html", "cost.md", "cost.tex"]


def _summary(models=("asym", "depmamba", "transformer")) -> pd.DataFrame:
    rows = [{"dataset": ds, "model": m, "kind": "asym" if m == "asym" else "baseline", "f1": 0.6 + 0.05 * i,
             "f1_ci_low": 0.5, "f1_ci_high": 0.8} for ds in ("dvlog", "lmvd", "macro-avg") for i, m in enumerate(models)]
    rows += [{"dataset": ds, "model": "majority", "kind": "floor", "f1": 0.7, "f1_ci_low": np.nan, "f1_ci_high": np.nan}
             for ds in ("dvlog", "lmvd")]
    return pd.DataFrame(rows)


def test_the_figure_plots_trained_models_at_the_longest_length(tmp_path):
    cost_csv, summary_csv = tmp_path / "cost.csv", tmp_path / "summary.csv"
    _rows().to_csv(cost_csv, index=False)
    _summary(models=("asym", "depmamba")).to_csv(summary_csv, index=False)
    points = report_cost.plot_cost(cost_csv, summary_csv, tmp_path / "cost.png")
    assert (tmp_path / "cost.png").stat().st_size > 0
    assert sorted(zip(points["dataset"], points["model"], strict=True)) == [
        ("dvlog", "asym"), ("dvlog", "depmamba"), ("lmvd", "asym"), ("lmvd", "depmamba")]
    assert set(points["minutes"]) == {10.0}
    assert points.set_index(["dataset", "model"]).loc[("dvlog", "depmamba"), "f1"] == pytest.approx(0.65)


def test_asym_cost_and_cost_plot_write_their_files(tmp_path, capsys):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["paths"]["reports"] = str(tmp_path / "reports")
    raw["run"]["datasets"] = ["dvlog"]
    raw["cost"].update(minutes={"demo": [0.25, 0.5], "paper": [0.25, 0.5]},
                       memory={"demo": False, "paper": False})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    assert main(["--params", str(params), "cost", "--models", "mean-mlp", "caf-mamba"]) == 0
    rows = pd.read_csv(tmp_path / "reports" / "cost.csv")
    assert sorted(set(rows["model"])) == ["caf-mamba", "mean-mlp"] and set(rows["minutes"]) == {0.25, 0.5}
    assert main(["--params", str(params), "cost-plot"]) == 2           # no summary yet
    assert "summary.csv is not there" in capsys.readouterr().err
    _summary(models=("mean-mlp", "caf-mamba")).to_csv(tmp_path / "reports" / "summary.csv", index=False)
    assert main(["--params", str(params), "cost-plot"]) == 0
    assert (tmp_path / "reports" / "cost.png").is_file()
