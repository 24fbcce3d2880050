"""The report step: every run aggregated (asym.report.aggregate) and written as the tables,
model cards, figures and HTML pages. The writers read the aggregate; only this module calls them,
so none of them imports another's step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asym.config import Params
from asym.io import atomic_path, write_json
from asym.layout import Layout
from asym.metrics import METRICS, confusion
from asym.reference import published_results
from asym.report import cross_gender, html, optimism, plots, tables
from asym.report.aggregate import aggregate, fairness
from asym.report.model_card import write_model_cards


def make_report(params: Params) -> dict[str, Path]:
    layout = Layout.of(params)
    out = layout.report_outputs(params.models, params.datasets, optimism=bool(params.optimism_models),
                                cross_gender=bool(params.cross_gender_datasets))
    summary, all_runs = aggregate(params)
    runs = pd.concat([r.run_metrics.assign(dataset=r.name) for r in all_runs], ignore_index=True)
    with atomic_path(out["runs_csv"]) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(out["summary_csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    write_json(out["summary_json"], {f"{r.dataset}/{r.model}/{k}": float(getattr(r, k))
                                     for r in summary.itertuples() for k in METRICS if np.isfinite(getattr(r, k))})
    fair = fairness(params, all_runs)
    context = tables.Context.of(params, summary, all_runs)
    for name in ("results", "comparison", "ablation"):
        if f"{name}_md" in out:
            tables.write_table(name, context, {k: Path(v) for k, v in out.items() if k.startswith(f"{name}_")})
    tables.write_fairness(fair, context, {k: Path(v) for k, v in out.items() if k.startswith("fairness_")})
    write_model_cards(params, summary, fair)                 # reports/model_cards/<dataset>-<model>.md
    trained = summary[summary["kind"] != "floor"]
    plots.plot_metric_bars(trained, ("accuracy", "precision", "recall", "f1"), summary[summary["kind"] == "floor"],
                           Path(out["metrics_plot"]))
    cells = []
    for r in all_runs:
        for model in params.models:
            counts = [confusion(r.y, pred) for pred in r.preds[model]]
            cells.append((r.name, model, {k: sum(c[k] for c in counts) for k in counts[0]}))
    plots.plot_confusion_grid(cells, Path(out["confusion_plot"]))
    plots.plot_reliability(plots.reliability_curves(all_runs), Path(out["reliability_plot"]))
    plots.plot_published(summary, published_results(), context.protocols, params.scale, Path(out["published_plot"]))
    if "protocol_optimism_md" in out:
        optimism.write_table(optimism.compare(params), params, {k: Path(v) for k, v in out.items()
                                                                  if k.startswith("protocol_optimism_")})
    if f"{cross_gender.TABLE}_md" in out:
        cross_gender.write_table(cross_gender.compare(params), params, {k: Path(v) for k, v in out.items()
                                                                        if k.startswith(f"{cross_gender.TABLE}_")})
    html.write_pages(params, {k: Path(v) for k, v in out.items()})
    return {k: Path(v) for k, v in out.items()}
