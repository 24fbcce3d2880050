"""The figures' geometry, checked on the drawn figure: nothing overlaps, nothing is cut, every
mark is explained, every count readable; and which models the reliability diagram shows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure, FigureBase  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from asym.config import load_params  # noqa: E402
from asym.metrics import METRICS, all_metrics, confusion, expected_calibration_error  # noqa: E402
from asym.models import registry  # noqa: E402
from asym.reference import published_results  # noqa: E402
from asym.report import plots  # noqa: E402
from asym.report.runs import MACRO, DatasetRuns  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

MODELS = load_params(ROOT / "params.yaml").models   # the default demo's grid, as it draws them
DATASETS = ("dvlog", "lmvd")
BARS = ("accuracy", "precision", "recall", "f1")
WCAG_AA = 4.5                               # the least contrast for normal-size text
OVERLAP_TOLERANCE_PX = 1.0                  # boxes that merely touch do not overlap
SMALLEST_FONT_PT = 7


# --- what was drawn ------------------------------------------------------------------------------
@pytest.fixture
def drawn(monkeypatch) -> Iterator[Callable[[Figure], list[tuple[Text, Bbox]]]]:
    """Draws a figure and returns (text, its box in pixels) for every text actually rendered:
    hidden texts, empty ones and the tick labels of switched-off axes are never drawn."""
    rendered: list[Text] = []
    original = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            rendered.append(self)
        return original(self, renderer)

    monkeypatch.setattr(Text, "draw", record)
    figures: list[Figure] = []

    def draw(fig: Figure) -> list[tuple[Text, Bbox]]:
        figures.append(fig)
        rendered.clear()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        return [(t, t.get_window_extent(renderer)) for t in rendered]

    yield draw
    for fig in figures:
        plt.close(fig)


def _figures(fig: FigureBase) -> Iterator[FigureBase]:
    yield fig
    for sub in fig.subfigs:
        yield from _figures(sub)


def _axes(fig: Figure) -> list[Axes]:
    """The data panels (a figure's axes include its subfigures'), colour bars left out."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def _legends(fig: Figure) -> list[Legend]:
    return [leg for f in _figures(fig) for leg in f.legends] + [ax.get_legend() for ax in _axes(fig)
                                                                if ax.get_legend() is not None]


def _overlaps(boxes: list[tuple[Text, Bbox]]) -> list[tuple[str, str]]:
    out = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > OVERLAP_TOLERANCE_PX and dy > OVERLAP_TOLERANCE_PX:
                out.append((a.get_text(), b.get_text()))
    return out


def _outside(fig: Figure, boxes: list[tuple[Text, Bbox]]) -> list[str]:
    frame = fig.bbox
    return [t.get_text() for t, b in boxes if b.x0 < frame.x0 - OVERLAP_TOLERANCE_PX or b.y0 < frame.y0 -
            OVERLAP_TOLERANCE_PX or b.x1 > frame.x1 + OVERLAP_TOLERANCE_PX or b.y1 > frame.y1 + OVERLAP_TOLERANCE_PX]


def _unexplained_marks(fig: Figure) -> list[str]:
    """Every line, bar group, error bar and collection of the data axes whose label is in no
    legend (a container's parts count as the container)."""
    explained = {t.get_text() for leg in _legends(fig) for t in leg.get_texts()}
    missing = []
    for ax in _axes(fig):
        parts = {id(a) for c in ax.containers for a in c.get_children()}
        marks = [*ax.containers, *(a for a in [*ax.lines, *ax.collections, *ax.patches] if id(a) not in parts)]
        missing += [f"{ax.get_title()}: {m!r} labelled {m.get_label()!r}" for m in marks
                    if m.get_label() not in explained]
    return missing


def _look(line: Line2D) -> tuple[str, str]:
    """A line's colour and dash pattern as drawn (Line2D has no public getter for the pattern)."""
    return str(line.get_color()), str(line._dash_pattern)


def assert_reads_at_a_glance(fig: Figure, drawn) -> list[tuple[Text, Bbox]]:
    """No text over another, none outside the figure, none too small to read, every mark in a
    legend, no legend over a panel's data."""
    boxes = drawn(fig)
    assert boxes, "nothing was drawn"
    assert min(t.get_fontsize() for t, _ in boxes) >= SMALLEST_FONT_PT
    assert not _overlaps(boxes)
    assert not _outside(fig, boxes)
    assert not _unexplained_marks(fig)
    renderer = fig.canvas.get_renderer()
    for leg in _legends(fig):
        lb = leg.get_window_extent(renderer)
        assert not any(lb.overlaps(ax.get_window_extent(renderer)) for ax in _axes(fig)), "a legend covers a panel"
    return boxes


# --- made-up report inputs -------------------------------------------------------------------------------
def _summary(seed: int = 0) -> pd.DataFrame:
    """Every model of the default grid on both datasets and their macro-average, with bootstrap CIs reaching
    1.0 (a perfect resample) and both floors; the majority floor has no depressed-class precision
    where the majority is normal."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds in (*DATASETS, MACRO):
        for m in MODELS:
            row = {"dataset": ds, "model": m, "kind": registry.get(m).kind}
            for k in METRICS:
                v = rng.uniform(0.4, 0.95)
                row.update({k: v, f"{k}_ci_low": v - rng.uniform(0.05, 0.2), f"{k}_ci_high": min(1.0, v + 0.15)})
            rows.append(row)
        rows.append({"dataset": ds, "model": "majority", "kind": "floor",
                     **{k: 0.55 for k in METRICS}, "precision": np.nan})
        rows.append({"dataset": ds, "model": "chance", "kind": "floor", **{k: 0.5 for k in METRICS}})
    return pd.DataFrame(rows)


def _runs(name: str, probs: dict[str, np.ndarray], f1: dict[str, float], y: np.ndarray) -> DatasetRuns:
    """A dataset's runs whose per-run metrics carry the given F1 (what the results table reads)."""
    rows = [{"model": m, "seed": s, "partition": 0, **all_metrics(y, p), "f1": f1[m]}
            for m, ps in probs.items() for s, p in enumerate(ps)]
    n = len(y)
    return DatasetRuns(name, "official", "unknown", np.arange(n).astype(str), y, np.arange(n).astype(str),
                       np.full(n, None, object), np.arange(n), probs,
                       {m: (p >= 0.5).astype(int) for m, p in probs.items()}, pd.DataFrame(rows))


# --- the figures -----------------------------------------------------------------------------------------
def test_metric_bars_read_at_a_glance_and_no_whisker_is_cut(drawn):
    summary = _summary()
    trained, floors = summary[summary["kind"] != "floor"], summary[summary["kind"] == "floor"]
    fig = plots.draw_metric_bars(trained, BARS, floors)
    assert_reads_at_a_glance(fig, drawn)
    labels = {t.get_text() for leg in _legends(fig) for t in leg.get_texts()}
    assert {"floor: majority", "floor: chance", "ASYM", "baseline", "ablation of ASYM"} <= labels
    axes = _axes(fig)
    assert len(axes) == 3 * len(BARS)
    for ax in axes:
        right = ax.get_xlim()[1]
        whiskers = [seg for c in ax.containers if isinstance(c, ErrorbarContainer)
                    for col in c[2] for seg in col.get_segments()]
        assert whiskers and max(seg[:, 0].max() for seg in whiskers) < right     # the 1.0 whiskers included
    assert [t.get_text() for t in axes[0].get_yticklabels()] == MODELS


def test_metric_bars_skip_an_undefined_floor():
    summary = _summary()
    fig = plots.draw_metric_bars(summary[summary["kind"] != "floor"], BARS, summary[summary["kind"] == "floor"])
    precision = [ax for ax in _axes(fig) if ax.get_title().endswith("precision")]
    recall = [ax for ax in _axes(fig) if ax.get_title().endswith("recall")]
    def floors(ax: Axes) -> list[str]:
        return [ln.get_label() for ln in ax.lines if ln.get_label().startswith("floor")]

    assert all(floors(ax) == ["floor: chance"] for ax in precision)     # majority's is NaN there
    assert all(floors(ax) == ["floor: majority", "floor: chance"] for ax in recall)
    plt.close(fig)


def test_floors_of_equal_value_share_one_line_with_a_style_of_its_own():
    summary = _summary()
    always = summary[summary["model"] == "majority"].assign(model="always-depressed")
    always.loc[always["dataset"] == "lmvd", BARS] = 0.3                          # coincides on dvlog only
    summary = pd.concat([summary, always], ignore_index=True)
    fig = plots.draw_metric_bars(summary[summary["kind"] != "floor"], BARS, summary[summary["kind"] == "floor"])
    floor_lines = [ln for ax in _axes(fig) for ln in ax.lines if ln.get_label().startswith("floor")]
    dvlog_f1 = next(ax for ax in _axes(fig) if ax.get_title() == "dvlog: f1")
    assert sorted(ln.get_label() for ln in dvlog_f1.lines if ln.get_label().startswith("floor")) == [
        "floor: chance", "floor: majority = always-depressed"]
    style = {}
    for ln in floor_lines:                                       # one look per label, one label per look
        look = _look(ln)
        assert style.setdefault(ln.get_label(), look) == look
    assert len(set(style.values())) == len(style) == 4
    plt.close(fig)


def _cells(seed: int = 0) -> list[tuple[str, str, dict[str, int]]]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(30, int), np.zeros(20, int)]
    cells = []
    for ds in DATASETS:
        for m in MODELS:
            pred = np.where(rng.random(len(y)) < rng.uniform(0.5, 1.0), y, 1 - y)
            cells.append((ds, m, confusion(y, pred)))
    return cells


def test_confusion_grid_reads_at_a_glance_and_every_count_contrasts_with_its_cell(drawn):
    cells = _cells()
    cells[0] = (cells[0][0], cells[0][1], {"tn": 0, "fp": 20, "fn": 0, "tp": 30})    # calls every vlog depressed
    fig = plots.draw_confusion_grid(cells)
    assert_reads_at_a_glance(fig, drawn)
    counted = 0
    for ax in _axes(fig):
        if not ax.images:
            continue
        image = ax.images[0]
        share = image.get_array()
        for t in ax.texts:
            j, i = (int(round(v)) for v in t.get_position())
            cell = image.cmap(image.norm(share[i, j]))
            assert plots.contrast_ratio(t.get_color(), cell) >= WCAG_AA, (ax.get_title(), t.get_text())
            counted += 1
        assert image.norm.vmin == 0 and image.norm.vmax == 1          # one colour scale: the share of a row
    assert counted == 4 * len(cells)
    colourbars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(colourbars) == len(DATASETS) and all(ax.get_ylabel() for ax in colourbars)


def test_text_colour_follows_the_luminance_of_the_cell():
    assert plots.text_colour_on("#08306b") == "white"              # the darkest of Blues: navy
    assert plots.text_colour_on("#f7fbff") == "black"
    assert plots.contrast_ratio("black", "#08306b") < WCAG_AA       # black on navy, as it was
    assert plots.contrast_ratio("black", "white") == pytest.approx(21.0)


def test_confusion_counts_are_in_their_cells():
    fig, ax = plt.subplots()
    plots.draw_confusion(ax, {"tn": 5, "fp": 1, "fn": 2, "tp": 7}, ("N", "D"))
    at = {tuple(int(round(v)) for v in t.get_position()): t.get_text() for t in ax.texts}
    assert at == {(0, 0): "5", (1, 0): "1", (0, 1): "2", (1, 1): "7"}       # (column, row): rows truth
    np.testing.assert_allclose(ax.images[0].get_array(), [[5 / 6, 1 / 6], [2 / 9, 7 / 9]])
    plt.close(fig)


def _reliability_runs() -> list[DatasetRuns]:
    """asym, an ablation identical to it, and baselines of known F1; registry order puts the
    ablations before any baseline."""
    y = np.r_[np.ones(40, int), np.zeros(40, int)]
    f1 = {"asym": 0.7, "asym-no-mamba-interaction": 0.7, "asym-no-mem": 0.65, "asym-no-gate": 0.6,
          "mean-mlp": 0.4, "bilstm": 0.5, "mult": 0.62, "tamfn": 0.55, "depmamba": 0.66}

    def probs_of(f1: dict[str, float]) -> dict[str, np.ndarray]:
        """Labels that miss k of the 40 depressed and k of the 40 normal vlogs have precision =
        recall = F1 = 1 - k / 40 exactly: the F1 the table computes from the predictions."""
        rng = np.random.default_rng(1)
        out = {}
        for m, target in f1.items():
            k = round((1 - target) * 40)
            miss = np.r_[np.arange(40) < k, np.arange(40) < k]
            pred = np.where(miss, 1 - y, y)
            out[m] = np.clip(pred * 0.55 + rng.uniform(0, 0.4, (3, len(y))), 0, 1)
        out["asym-no-mamba-interaction"] = out["asym"].copy()
        return out

    return [_runs("dvlog", probs_of(f1), f1, y), _runs("lmvd", probs_of({**f1, "bilstm": 0.8}), {**f1, "bilstm": 0.8}, y)]


def test_reliability_shows_asym_the_best_baselines_and_a_reference():
    dvlog, lmvd = _reliability_runs()
    assert plots.reliability_models(dvlog) == {"asym": "ours", "depmamba": "best baseline by F1",
                                               "mult": "best baseline by F1", "mean-mlp": "simplest baseline"}
    assert set(plots.reliability_models(lmvd)) == {"asym", "bilstm", "depmamba", "mean-mlp"}
    no_mlp = _runs("dvlog", {m: p for m, p in dvlog.probs.items() if m != "mean-mlp"},
                   {"asym": 0.7, "asym-no-mamba-interaction": 0.7, "asym-no-mem": 0.65, "asym-no-gate": 0.6,
                    "bilstm": 0.5, "mult": 0.62, "tamfn": 0.55, "depmamba": 0.66}, dvlog.y)
    assert plots.reliability_models(no_mlp)["bilstm"] == "weakest baseline"
    swapped = {**dvlog.probs, "mean-mlp": dvlog.probs["asym"], "asym": dvlog.probs["mean-mlp"]}
    best = _runs("dvlog", swapped, dict.fromkeys(dvlog.probs, 0.5), dvlog.y)       # the per-run rows say nothing
    assert plots.reliability_models(best)["mean-mlp"] == "best baseline by F1; simplest baseline"


def test_reliability_curves_carry_the_pooled_and_the_table_ece():
    runs = _reliability_runs()
    curves = plots.reliability_curves(runs)
    assert [(c.dataset, c.model) for c in curves][:4] == [("dvlog", m) for m in ("asym", "depmamba", "mult", "mean-mlp")]
    for c in curves:
        r = next(r for r in runs if r.name == c.dataset)
        pooled = expected_calibration_error(np.tile(r.y, 3), r.probs[c.model].ravel())
        per_run = np.mean([expected_calibration_error(r.y, p) for p in r.probs[c.model]])
        assert c.ece_pooled == pytest.approx(pooled) and c.ece_table == pytest.approx(per_run)
        assert c.ece_pooled != pytest.approx(c.ece_table)
    table = {(c.dataset, c.model): c.ece_table for c in curves}
    from_predictions = [replace(r, run_metrics=None) for r in runs]       # no per-run metrics: the same ECEs
    again = plots.reliability_curves(from_predictions)
    assert {(c.dataset, c.model) for c in again} & set(table)
    for c in again:
        if (c.dataset, c.model) in table:
            assert c.ece_table == pytest.approx(table[(c.dataset, c.model)])


def test_reliability_reads_at_a_glance_and_identical_curves_stay_visible(drawn):
    dvlog, lmvd = _reliability_runs()
    curves = plots.reliability_curves([dvlog, lmvd])
    twin = next(c for c in curves if c.model == "asym" and c.dataset == "dvlog")
    longest_role = "best baseline by F1; simplest baseline"            # the longest reliability_models gives
    curves.append(plots.ReliabilityCurve("dvlog", "asym-no-mamba-interaction", longest_role, twin.predicted,
                                         twin.observed, twin.ece_pooled, twin.ece_table))
    fig = plots.draw_reliability(curves)
    boxes = assert_reads_at_a_glance(fig, drawn)
    texts = " ".join(t.get_text() for t, _ in boxes)
    assert "pooled" in texts and "mean of each run's ECE" in texts
    for ax in _axes(fig):
        lines = [ln for ln in ax.lines if ln.get_label() != "perfect calibration"]
        styles = [(ln.get_marker(), _look(ln)) for ln in lines]
        assert len(set(styles)) == len(styles)
        by_z = sorted(lines, key=lambda ln: ln.get_zorder())
        assert by_z[-1].get_label().startswith("asym (ours)")                 # asym on top
        sizes = [ln.get_markersize() for ln in by_z]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)   # rings show beneath


def test_published_reads_at_a_glance(drawn):
    summary = _summary()
    protocols = {"dvlog": "official", "lmvd": "depmamba"}
    points = plots.published_points(summary, published_results(), protocols)
    fig = plots.draw_published(summary, points, protocols, "demo")
    boxes = assert_reads_at_a_glance(fig, drawn)
    titles = [ax.get_title() for ax in _axes(fig)]
    assert titles == ["dvlog: published vs measured here", "lmvd: published vs measured here"]
    assert sum(t.get_text() in titles for t, _ in boxes) == 2                  # both drawn, inside the figure
    assert any("synthetic" in t.get_text() for t, _ in boxes)


def test_plots_write_pngs(tmp_path):
    summary = _summary()
    open_before = set(plt.get_fignums())
    plots.plot_metric_bars(summary[summary["kind"] != "floor"], BARS, summary[summary["kind"] == "floor"],
                           tmp_path / "metrics.png")
    image = plt.imread(tmp_path / "metrics.png")
    assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert set(plt.get_fignums()) == open_before                               # the figure was freed
