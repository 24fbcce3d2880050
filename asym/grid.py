"""The run grid and the studies' folders (optimism, cross-gender): what the params (asym.config) and the layout
(asym.layout) are both built on, so neither imports the other for it.

A Run is one cell of the grid (dataset, model, seed; `Params.runs` lists them); its key is also
its folder under runs/. The optimism study runs the same steps in folders of its own, and
`optimism_folders` alone says which: `Params.for_optimism` and `Layout.for_optimism` both ask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SEED_FOLDER = "seed{}"               # a run's folder inside runs/<dataset>/<model>/, and its key's last part
# The folders (params.yaml's `paths` keys) the optimism study keeps apart from the main runs'; it
# shares the others (raw data, processed tables, reports, logs).
OPTIMISM_FOLDERS = ("splits", "runs")
# Likewise the cross-gender study's (params.yaml `cross_gender`).
CROSS_GENDER_FOLDERS = OPTIMISM_FOLDERS


def seed_folder(seed: int | str) -> str:
    return SEED_FOLDER.format(seed)


@dataclass(frozen=True, order=True)
class Run:
    """One trained (dataset, model, seed): the unit every step after the split works on."""

    dataset: str
    model: str
    seed: int

    @property
    def key(self) -> str:
        """`dvlog/asym/seed0`: how logs, MLflow and the CLI name the run (and its folder under runs/)."""
        return f"{self.dataset}/{self.model}/{seed_folder(self.seed)}"


def optimism_folders(folders: Mapping[str, str], protocol: str) -> dict[str, str]:
    """The optimism study's own folders under `protocol`, from the main ones (`folders`: `paths`
    key -> folder): each of OPTIMISM_FOLDERS inside its main folder, `runs/optimism/kfold` (its runs
    then in `runs/optimism/kfold/dvlog/mean-mlp/seed0/`). A pattern in `protocol` (`{protocol}`)
    gives Snakemake's."""
    return {k: f"{folders[k]}/optimism/{protocol}" for k in OPTIMISM_FOLDERS}


def cross_gender_folders(folders: Mapping[str, str], protocol: str) -> dict[str, str]:
    """The cross-gender study's own folders under `protocol`, as `optimism_folders` gives that
    study's: `runs/cross_gender/cross_gender_f_to_m` (its runs then in
    `runs/cross_gender/cross_gender_f_to_m/dvlog/mean-mlp/seed0/`)."""
    return {k: f"{folders[k]}/cross_gender/{protocol}" for k in CROSS_GENDER_FOLDERS}
