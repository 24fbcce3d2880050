"""The paper grid's size and cost, from the registry and params.yaml: what README's compute
estimate says, and what a test checks it against.

    python benchmarks/paper_grid.py [--results benchmarks/results]

Every model the run trains (`run.models` at paper scale) x `run.datasets` x the paper seeds is one fit each; the optimism study
(params.yaml `optimism`, its paper models and seeds) adds its models x 2 protocols x `split.kfold.k`
folds x its seeds x the datasets, shown apart. Each fit is costed from the CPU train-step table
(benchmarks/results/train-step-*.json, benchmarks/train_step.py's projection: the recipe's epochs of
D-Vlog's or LMVD's training fold plus a validation pass); a model without a row is costed at the
slowest measured step, for its own epochs, and said so. An optimism fit is costed as a main-grid fit of its model on its
dataset: a `kfold` training part (4/5 of the vlogs less 1/8 for validation) is about the size of the
official training fold. Each model's GPU memory is asym.train.gpu_memory's.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_step import project_grid  # noqa: E402

from asym.config import Params, load_params  # noqa: E402
from asym.data.protocols import GENDER_PROTOCOLS, OPTIMISM_PROTOCOLS  # noqa: E402
from asym.models import registry  # noqa: E402
from asym.train import gpu_memory  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Grid:
    models: list[str]
    datasets: list[str]
    seeds: int
    fits: int
    hours: float                       # on the machine of the CPU table
    optimism_models: list[str]
    folds: int
    optimism_seeds: int
    optimism_fits: int
    optimism_hours: float
    unmeasured: list[str]              # costed at the slowest measured step
    per_model: dict[str, dict]
    cross_gender_models: list[str]
    cross_gender_datasets: list[str]
    cross_gender_seeds: int
    cross_gender_fits: int
    cross_gender_hours: float


def cpu_rows(results: Path = RESULTS) -> list[dict]:
    rows = []
    for path in sorted(results.glob("train-step-*.json")):
        rows += [r for r in json.loads(path.read_text())["rows"] if r.get("precision", "fp32") == "fp32"]
    return rows


def grid(params: Params | None = None, results: Path = RESULTS, optimism_models: list[str] | None = None) -> Grid:
    """The paper grid of `params` (the repository's params.yaml); `optimism_models` in place of
    the study's own, to cost another choice."""
    p = (params or load_params(ROOT / "params.yaml")).at_scale("paper")
    models, datasets, seeds = p.models, p.datasets, len(p.seeds)
    folds, o_seeds = p.split.kfold.k, len(p.optimism_seeds)
    o_models = p.optimism_models if optimism_models is None else optimism_models
    g_models, g_datasets, g_seeds = p.cross_gender_models, p.cross_gender_datasets, len(p.cross_gender_seeds)
    rows = {(r["model"], r["dataset"]): r for r in cpu_rows(results)}
    costed = list(dict.fromkeys([*models, *o_models, *g_models]))      # every model some part of the grid trains
    epochs = {m: p.recipe(registry.get(m).recipe).epochs for m in costed}

    def fit_hours(model: str, dataset: str) -> float | None:
        r = rows.get((model, dataset))
        return None if r is None else project_grid([r], 1, epochs, r["batch"])

    def dearest(model: str, dataset: str) -> float:
        """The slowest measured step on the dataset, for the model's own epochs."""
        measured_here = [r for (m, d), r in rows.items() if d == dataset]
        if not measured_here:
            raise SystemExit(f"paper_grid: no train-step row for {dataset} in {results}: run benchmarks/train_step.py")
        r = max(measured_here, key=lambda r: r["seconds"])
        return project_grid([r], 1, {r["model"]: epochs[model]}, r["batch"])

    measured = {(m, d): h for m in costed for d in datasets if (h := fit_hours(m, d)) is not None}
    cost = {(m, d): measured.get((m, d)) or dearest(m, d) for m in costed for d in datasets}
    unmeasured = [m for m in costed if any((m, d) not in measured for d in datasets)]
    o_fits_each = len(OPTIMISM_PROTOCOLS) * folds * o_seeds
    # A by-gender fit trains on one gender of the training fold: costed as a whole fit, an upper bound.
    g_fits_each = len(GENDER_PROTOCOLS) * g_seeds
    per_model = {m: {"recipe": registry.get(m).recipe, "epochs": epochs[m],
                     "batch": p.recipe(registry.get(m).recipe).batch_size,
                     "params": {d: rows[(m, d)]["params"] for d in datasets if (m, d) in rows},
                     "hours_per_fit": {d: cost[(m, d)] for d in datasets},
                     "gpu_mem_mb": {d: gpu_memory.gpu_mem_mb(m, d, "paper", p) for d in datasets},
                     "source": "/".join(sorted({gpu_memory.source(m, d) for d in datasets}))} for m in models}
    return Grid(models, datasets, seeds, len(models) * len(datasets) * seeds,
                sum(cost[(m, d)] for m in models for d in datasets) * seeds, o_models, folds, o_seeds,
                len(o_models) * o_fits_each * len(datasets),
                sum(cost[(m, d)] for m in o_models for d in datasets) * o_fits_each, unmeasured, per_model,
                g_models, g_datasets, g_seeds, len(g_models) * g_fits_each * len(g_datasets),
                sum(cost[(m, d)] for m in g_models for d in g_datasets) * g_fits_each)


def _hours(h: float) -> str:
    return f"about {h:,.0f} h ({h / 24:,.0f} days)"


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f} M"


def readme(g: Grid, alternative: Grid | None = None, card_mb: int = 80000) -> dict[str, str]:
    """The sentences README's "Paper scale" prints, each one line (the test compares them)."""
    per, big = g.per_model, {m: max(r["gpu_mem_mb"].values()) for m, r in g.per_model.items()}
    heavy = [m for m in ("caf-mamba", "mdd-net") if m in per]
    named = ", ".join(f"{m} ({_millions(max(per[m]['params'].values()))} parameters, {per[m]['epochs']} epochs)"
                      if per[m]["params"] else f"{m} ({per[m]['epochs']} epochs)" for m in heavy)
    grid_sentence = (f"{len(g.models)} models x {len(g.datasets)} datasets x {g.seeds} seeds = {g.fits} fits"
                     + (f", {named} among them" if named else "") + f": {_hours(g.hours)} on a 2-core CPU"
                     + (f" ({', '.join(g.unmeasured)}: not timed yet, costed at the slowest step timed)"
                        if g.unmeasured else "") + ".")
    optimism = (f"{len(g.optimism_models)} models ({', '.join(g.optimism_models)}) x 2 protocols x {g.folds} folds "
                f"x {g.optimism_seeds} seeds x {len(g.datasets)} datasets = {g.optimism_fits} fits: "
                f"{_hours(g.optimism_hours)}" if g.optimism_models else "off (no models).")
    if alternative is not None:
        optimism += (f"; with {', '.join(alternative.optimism_models)} it would be {alternative.optimism_fits} fits, "
                     f"{_hours(alternative.optimism_hours)}.")
    cross_gender = (f"{len(g.cross_gender_models)} models ({', '.join(g.cross_gender_models)}) x "
                    f"{len(GENDER_PROTOCOLS)} protocols x {g.cross_gender_seeds} seeds x "
                    f"{len(g.cross_gender_datasets)} dataset{'s' * (len(g.cross_gender_datasets) != 1)} = "
                    f"{g.cross_gender_fits} fits: at most {_hours(g.cross_gender_hours)[6:]}."
                    if g.cross_gender_fits else "off (no models).")
    largest = max(big, key=big.get)
    how = {"gpu": "measured on a GPU", "cpu": "from the CPU's table", "estimate": "not measured"}
    sure = lambda m: "; ".join(how.get(k, k) for k in per[m]["source"].split("/"))  # noqa: E731
    slots = gpu_slots()
    memory = f"the largest, {largest}, for {big[largest] / 1024:.1f} GB ({sure(largest)})"
    if "asym" in big:
        at_once = min(card_mb // big["asym"], slots)
        memory = (f"ASYM asks for {big['asym'] / 1024:.1f} GB ({sure('asym')}), {memory}: an 80 GB card with the "
                  f"profile's {slots} slots runs {at_once} ASYM jobs at once.")
    else:
        memory = memory[0].upper() + memory[1:] + "."
    return {"GRID_SENTENCE": grid_sentence, "OPTIMISM_SENTENCE": optimism, "CROSS_GENDER_SENTENCE": cross_gender,
            "MEMORY_SENTENCE": memory}


def gpu_slots() -> int:
    """The gpu profile's `gpu_slots`: how many training jobs share a card at most."""
    import yaml

    resources = yaml.safe_load((ROOT / "workflow" / "profiles" / "gpu" / "config.yaml").read_text())["resources"]
    return next(int(r.split("=")[1]) for r in resources if r.startswith("gpu_slots="))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--optimism-models", nargs="*", help="cost the optimism study with these models too")
    ap.add_argument("--readme", action="store_true", help="print README's sentences instead of the table")
    args = ap.parse_args()
    g = grid(results=args.results)
    if args.readme:
        alternative = grid(results=args.results, optimism_models=args.optimism_models) if args.optimism_models else None
        for sentence in readme(g, alternative).values():
            print(sentence)
        return
    print(f"{'model':28s} {'recipe':10s} {'epochs':>6s} {'batch':>5s} {'h/fit D-Vlog':>12s} {'h/fit LMVD':>10s} "
          f"{'GPU MB':>7s}  source")
    for m, row in g.per_model.items():
        h = row["hours_per_fit"]
        print(f"{m:28s} {row['recipe']:10s} {row['epochs']:>6d} {row['batch']:>5d} {h.get('dvlog', 0):>12.1f} "
              f"{h.get('lmvd', 0):>10.1f} {max(row['gpu_mem_mb'].values()):>7d}  {row['source']}")
    print(f"paper grid: {len(g.models)} models x {len(g.datasets)} datasets x {g.seeds} seeds = {g.fits} fits, "
          f"{g.hours:,.0f} h on the CPU table's machine")
    print(f"optimism study: {len(g.optimism_models)} models ({', '.join(g.optimism_models) or 'off'}) "
          f"x {len(OPTIMISM_PROTOCOLS)} protocols x folds x seeds x {len(g.datasets)} datasets = "
          f"{g.optimism_fits} fits, {g.optimism_hours:,.0f} h")
    print(f"cross-gender study: {len(g.cross_gender_models)} models ({', '.join(g.cross_gender_models) or 'off'}) "
          f"x {len(GENDER_PROTOCOLS)} protocols x {g.cross_gender_seeds} seeds x {len(g.cross_gender_datasets)} "
          f"datasets = {g.cross_gender_fits} fits, at most {g.cross_gender_hours:,.0f} h")
    if g.unmeasured:
        print(f"not in the CPU table (costed at the slowest measured step, for their own epochs): {', '.join(g.unmeasured)}")


if __name__ == "__main__":
    main()
