"""The split protocols: one row per protocol, the one list that the params schema, the DAG's split
stages, `asym split`, training, the published results and the reports read.

Each row names its splitter, a "module:function" looked up when a split is made:

    split(table, source, **inputs) -> list[list[str]]   # one fold per vlog, per partition

`table` is the dataset's FeatureTable, `source` its Parquet file (the file a refusal names), and
`inputs` are the row's `split.<key>` settings by key (`settings`), with `split_csv=` the dataset's
CSV where the row reads one. A hold-out protocol gives one partition; `kfold` gives k, each vlog in
the test fold of exactly one. `asym.data.splits.make_split` runs it and checks every partition
for leakage (a subject in two folds is refused unless the row says its split is not
subject-disjoint, as a published split may be).

Select-on-test. `kfold_select_on_test` is what the LMVD authors' code, MDD-Net's and MMFformer's
do, measured rather than adopted: its split file is `kfold`'s (the same outer folds, training part
and validation part), and the trainer chooses the checkpoint on the test fold and on nothing else
(asym.train.loop): a plateau scheduler still steps on the validation part's loss and a tuned
threshold is still tuned on it, so on one seed both protocols follow the same training trajectory
and label with the same rule, and their difference is the cost of selecting on test alone. The
published protocols train on that validation part too (and split by vlog, into 10 folds): their
numbers carry a tag of their own (asym.reference). Never a default; every table that shows an
optimistic protocol says OPTIMISTIC_FLAG.

This module imports nothing heavy, so the Snakefile and the params schema may import it. The jobs
that read it (splitting, training, the report) count its code (asym.dag.code): a row's edit reruns
them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from asym.errors import ConfigError


@dataclass(frozen=True)
class SplitProtocol:
    name: str
    description: str
    splitter: str                      # "module:function": split(table, source, **inputs) (see above)
    settings: tuple[str, ...] = ()     # the `split.<key>` settings it reads, passed to the splitter by key
    files: tuple[str, ...] = ()        # package files it reads (repository-relative)
    split_csv: bool = False            # reads the dataset's `split_csv` (then required)
    subject_disjoint: bool = True      # its splits keep each subject in one fold of a partition
    optimistic: bool = False           # the checkpoint is chosen on the test fold it is scored on

    def split_function(self) -> Callable[..., list[list[str]]]:
        module, fn = self.splitter.split(":")
        return getattr(importlib.import_module(module), fn)

    @property
    def selection_fold(self) -> str:
        """The fold whose score chooses the checkpoint. It chooses the checkpoint only: the
        scheduler's loss and a tuned threshold always come from the validation fold."""
        return "test" if self.optimistic else "valid"


PROTOCOLS: dict[str, SplitProtocol] = {p.name: p for p in (
    SplitProtocol("official", "the release's own train / valid / test folds (D-Vlog's)",
                  "asym.data.splits:official"),
    SplitProtocol("depmamba", "DepMamba's published 8:1:1 LMVD split by vlog, shipped with the package",
                  "asym.data.splits:depmamba",
                  files=("asym/reference/splits/lmvd_depmamba.csv", "asym/reference/splits/lmvd_depmamba.json"),
                  # LMVD ships no participant ids: the published split is applied as published
                  subject_disjoint=False),
    SplitProtocol("stratified_group", "seeded, class-stratified, whole subjects per fold",
                  "asym.data.splits:stratified_group", settings=("ratios", "seed")),
    SplitProtocol("kfold", "k stratified outer folds grouped by subject; a validation part carved (grouped, "
                  "stratified) from the training folds chooses the checkpoint, never the test fold",
                  "asym.data.splits:kfold", settings=("kfold", "seed")),
    SplitProtocol("kfold_select_on_test", "kfold's folds, the checkpoint chosen on the very fold that is reported",
                  "asym.data.splits:kfold", settings=("kfold", "seed"), optimistic=True),
    SplitProtocol("csv", "a user's sample,fold file", "asym.data.splits:from_csv", split_csv=True),
)}

# The optimism study (params.yaml `optimism`): an honest protocol, then its twin that chooses the
# checkpoint on the fold it reports (the same splitter and settings, so the same folds).
OPTIMISM_PROTOCOLS: tuple[str, str] = ("kfold", "kfold_select_on_test")

# What every table that shows an optimistic protocol's numbers says of them.
OPTIMISTIC_FLAG = "optimistic: selection on the test fold"


def names() -> tuple[str, ...]:
    return tuple(PROTOCOLS)


def get(name: str) -> SplitProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown split protocol {name!r}; known: {list(PROTOCOLS)}") from None


def optimistic() -> tuple[str, ...]:
    """The protocols that choose the checkpoint on the test fold."""
    return tuple(n for n, p in PROTOCOLS.items() if p.optimistic)
