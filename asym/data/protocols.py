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

By gender. `cross_gender_f_to_m` trains on one gender's vlogs and tests on the other's, as
DynMultiDep's `--train_gender` / `--test_gender` do (github 3166074787/DynMultiDep @5fd29e3,
datasets/dvlog.py `is_sample`): inside the dataset's own train / valid / test folds, the training
fold keeps the training gender's vlogs, the test fold the test gender's, and the validation fold
the test gender's too (DynMultiDep filters it by `test_gender`), or the training gender's with
`split.gender.validation: source`, so that no label of the target gender is seen before the test.
Every other vlog is in no fold (splits.EXCLUDED). `within_gender_f` (train and test on f) is the
same-gender reference on the very test vlogs of `cross_gender_m_to_f`. The codes are D-Vlog's
labels.csv column `gender` (`m` / `f`: DynMultiDep compares them verbatim, so its config's
`male` / `female` would select nothing); a release that records none (LMVD) is refused.

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
    arguments: tuple[tuple[str, str], ...] = ()   # fixed keyword arguments of its splitter (a row's own)

    def split_function(self) -> Callable[..., list[list[str]]]:
        module, fn = self.splitter.split(":")
        return getattr(importlib.import_module(module), fn)

    @property
    def genders(self) -> tuple[str, str] | None:
        """(training gender, test gender) of a by-gender protocol, else None."""
        args = dict(self.arguments)
        return (args["train"], args["test"]) if {"train", "test"} <= set(args) else None

    @property
    def selection_fold(self) -> str:
        """The fold whose score chooses the checkpoint. It chooses the checkpoint only: the
        scheduler's loss and a tuned threshold always come from the validation fold."""
        return "test" if self.optimistic else "valid"


# The gender codes the by-gender protocols split on (D-Vlog's labels.csv; the demos write the same).
GENDER_CODES: tuple[str, str] = ("f", "m")
# The formats whose releases record no gender (asym/data/lmvd.py reads none): the gender study
# refuses them by name.
NO_GENDER_FORMATS: frozenset[str] = frozenset({"lmvd"})


def _gender_name(train: str, test: str) -> str:
    return f"cross_gender_{train}_to_{test}" if train != test else f"within_gender_{train}"


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
    *(SplitProtocol(_gender_name(train, test),
                    f"the dataset's own folds, trained on gender {train}'s vlogs, tested on gender {test}'s "
                    "(DynMultiDep's --train_gender / --test_gender)",
                    "asym.data.splits:by_gender", settings=("ratios", "seed", "gender"),
                    arguments=(("train", train), ("test", test)))
      for train in GENDER_CODES for test in GENDER_CODES),
)}

# The optimism study (params.yaml `optimism`): an honest protocol, then its twin that chooses the
# checkpoint on the fold it reports (the same splitter and settings, so the same folds).
OPTIMISM_PROTOCOLS: tuple[str, str] = ("kfold", "kfold_select_on_test")

# What every table that shows an optimistic protocol's numbers says of them.
OPTIMISTIC_FLAG = "optimistic: selection on the test fold"


# The cross-gender study (params.yaml `cross_gender`): per test gender, its same-gender reference
# and its cross-gender protocol, on the same test vlogs.
GENDER_PAIRS: dict[str, tuple[str, str]] = {
    test: (_gender_name(test, test), _gender_name(other, test))
    for test, other in (GENDER_CODES, GENDER_CODES[::-1])}
GENDER_PROTOCOLS: tuple[str, ...] = tuple(p for pair in GENDER_PAIRS.values() for p in pair)


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
