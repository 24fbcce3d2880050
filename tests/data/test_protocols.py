"""The split protocols' table (asym.data.protocols): every row can run, and the params schema, the
DAG's split stages, the splitters, the published results and the optimism study read it, not a
list of their own."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from asym.config import ParamsFile, load_params
from asym.dag import stages
from asym.dag.code import code_deps
from asym.data import protocols, splits
from asym.data.parquet import FeatureTable
from asym.errors import ConfigError, DataError
from asym.layout import PACKAGE, Layout
from tests.project import ROOT

ROWS = list(protocols.PROTOCOLS.values())


def _ids(rows):
    return [r.name for r in rows]


def _with_protocol(tmp_path: Path, protocol: str, split_csv: str | None = None, dataset: str = "lmvd") -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["datasets"][dataset].update(protocol={"demo": protocol, "paper": protocol}, split_csv=split_csv)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


SUBJECT_FOLDS = ["train", "train", "valid", "valid", "test", "test"]     # each subject in one fold
LEAKY_FOLDS = ["train", "valid", "valid", "test", "test", "train"]       # each subject in two


def _table(folds: list[str]) -> FeatureTable:
    """Six vlogs of three subjects (two each), with the release folds `folds`."""
    z = [np.zeros((3, 2), np.float32)] * 6
    return FeatureTable([f"s{i}" for i in range(6)], ["a", "a", "b", "b", "c", "c"], np.array([0, 1, 0, 1, 0, 1]),
                        list(folds), z, z, {})


# ---- each row can run -------------------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_every_splitter_resolves_and_takes_what_its_row_gives_it(row):
    """split(table, source, **settings[, split_csv]): nothing more, nothing less, so the settings a
    splitter can read are the ones its split stage depends on."""
    fn = row.split_function()
    assert callable(fn) and fn.__module__ == row.splitter.split(":")[0]
    expected = ["table", "source", *row.settings, *(["split_csv"] if row.split_csv else []), *dict(row.arguments)]
    assert list(inspect.signature(fn).parameters) == expected


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_every_setting_is_a_key_of_the_params_split_block(row):
    schema = ParamsFile.model_fields["split"].annotation.model_fields
    written = yaml.safe_load((ROOT / "params.yaml").read_text())["split"]
    for key in row.settings:
        assert key in schema and key in written, key


@pytest.mark.parametrize("row", [r for r in ROWS if r.files], ids=_ids([r for r in ROWS if r.files]))
def test_every_package_file_exists_and_a_provenance_record_names_a_file_of_its_row(row):
    files = [PACKAGE.parent / f for f in row.files]
    assert all(f.is_file() for f in files)
    records = [f for f in files if f.suffix == ".json"]
    assert len(records) == 1
    assert records[0].parent / json.loads(records[0].read_text())["file"] in files
    df, _ = splits.published_split(row.name)       # its checksum holds
    assert len(df) > 0


def test_a_row_whose_files_miss_the_split_its_record_names_is_refused(monkeypatch):
    row = protocols.get("depmamba")
    record = next(f for f in row.files if f.endswith(".json"))
    monkeypatch.setitem(protocols.PROTOCOLS, "depmamba", type(row)(**{**row.__dict__, "files": (record,)}))
    with pytest.raises(DataError, match="not a file of protocol 'depmamba'"):
        splits.published_split("depmamba")


def test_the_optimism_study_pairs_an_honest_protocol_with_its_optimistic_twin():
    honest, optimistic = (protocols.get(n) for n in protocols.OPTIMISM_PROTOCOLS)
    assert not honest.optimistic and optimistic.optimistic
    assert (honest.splitter, honest.settings, honest.files) == (optimistic.splitter, optimistic.settings, optimistic.files)
    assert honest.selection_fold == "valid" and optimistic.selection_fold == "test"


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as err:
        protocols.get("kfolds")
    assert str(err.value) == f"unknown split protocol 'kfolds'; known: {list(protocols.names())}"


# ---- the params schema reads it --------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_the_params_schema_takes_every_row_and_a_split_csv_only_where_one_is_read(row, tmp_path):
    if row.genders:         # LMVD's release records no gender
        with pytest.raises(ConfigError, match="datasets.lmvd: a by-gender protocol splits by gender, which LMVD's"):
            load_params(_with_protocol(tmp_path, row.name))
        return
    p = load_params(_with_protocol(tmp_path, row.name, "folds.csv" if row.split_csv else None))
    assert p.protocol("lmvd") == row.name
    if row.split_csv:
        with pytest.raises(ConfigError, match=f"datasets.lmvd: protocol {row.name} needs split_csv"):
            load_params(_with_protocol(tmp_path, row.name, None))


def test_the_params_schema_refuses_a_name_not_in_the_table_and_lists_the_table(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(_with_protocol(tmp_path, "random"))
    assert "datasets.lmvd.protocol.demo" in str(err.value)
    assert f"unknown split protocol 'random'; known: {list(protocols.names())}" in str(err.value)


# ---- the split stages read it ------------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_the_split_stage_reads_the_rows_settings_and_depends_on_its_files(row, tmp_path):
    dataset = "dvlog" if row.genders else "lmvd"            # LMVD's release records no gender
    p = load_params(_with_protocol(tmp_path, row.name, "my/folds.csv" if row.split_csv else None, dataset))
    stage, w = next(s for s in stages.STAGES if s.name == "split"), {"dataset": dataset}
    assert stage.reads(p, w) == ["scale", f"datasets.{dataset}", *(f"split.{k}" for k in row.settings)]
    assert stage.data(p, w, False) == [*row.files, *(["my/folds.csv"] if row.split_csv else [])]


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_every_splitter_is_code_the_split_stages_count(row):
    """The table names its splitters as strings, which no import walk finds: a splitter outside the
    split stages' code would change splits without rerunning them."""
    module = row.splitter.split(":")[0]
    for name in ("split", "split_optimism"):
        stage = next(s for s in stages.STAGES if s.name == name)
        assert module.replace(".", "/") + ".py" in code_deps(stage.modules)


def test_the_optimism_stages_run_the_tables_optimism_protocols_and_the_report_reads_the_optimistic_ones_epochs():
    p = load_params(ROOT / "params.yaml")
    assert p.optimism_models and stages.optimism_protocols(p) == list(protocols.OPTIMISM_PROTOCOLS)
    with_epochs = {pr for pr in protocols.OPTIMISM_PROTOCOLS
                   for f in stages.optimism_reads(p, Layout.of(p)) if f.startswith(Layout.of(p.for_optimism(pr)).runs + "/")
                   and f.endswith(Path(Layout.of(p).run_file("dvlog", "mean-mlp", 0, "epochs")).name)}
    assert with_epochs == set(protocols.optimistic())


# ---- the splitters read it ---------------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_make_split_runs_the_rows_splitter_with_its_settings_by_key(row, monkeypatch, tmp_path):
    seen = {}

    def fake(table, source, **inputs):
        seen.update(inputs, source=source)
        return [SUBJECT_FOLDS, SUBJECT_FOLDS[::-1]]

    module, fn = row.splitter.split(":")
    monkeypatch.setattr(importlib.import_module(module), fn, fake)
    cfg = SimpleNamespace(seed=3, ratios=[0.6, 0.2, 0.2], kfold="the kfold block", gender="the gender block")
    csv = tmp_path / "folds.csv"
    split = splits.make_split(_table(LEAKY_FOLDS), row.name, cfg, tmp_path / "x.parquet", csv)
    assert seen == {"source": tmp_path / "x.parquet", **{k: getattr(cfg, k) for k in row.settings},
                    **({"split_csv": csv} if row.split_csv else {}), **dict(row.arguments)}
    assert split["fold"].tolist() == [*SUBJECT_FOLDS, *SUBJECT_FOLDS[::-1]]
    assert split["partition"].tolist() == [0] * 6 + [1] * 6


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_a_split_that_puts_a_subject_in_two_folds_is_refused_where_the_row_is_subject_disjoint(row, monkeypatch):
    """Leaky folds, from whatever splitter: refused unless the row applies a published split as
    published."""
    module, fn = row.splitter.split(":")
    monkeypatch.setattr(importlib.import_module(module), fn, lambda table, source, **_: [list(table.fold)])
    cfg = SimpleNamespace(seed=0, ratios=[0.6, 0.2, 0.2], kfold=None, gender=None)
    if row.subject_disjoint:
        with pytest.raises(DataError, match="leakage: subject 'a'"):
            splits.make_split(_table(LEAKY_FOLDS), row.name, cfg, "x.parquet", "folds.csv")
    else:
        split = splits.make_split(_table(LEAKY_FOLDS), row.name, cfg, "x.parquet", "folds.csv")
        assert splits.split_description(split, True, row.name)["subject_independent"] == "false"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_the_checkpoint_is_chosen_on_the_test_fold_exactly_under_an_optimistic_row(row):
    from asym.report.model_card import selection_fold as card_fold

    fold = "test" if row.optimistic else "valid"
    assert splits.selection_fold(row.name) == card_fold(row.name, []) == fold
    split = splits.make_split(_table(SUBJECT_FOLDS), "official", None, "x.parquet")
    description = splits.split_description(split, True, row.name)
    assert (protocols.OPTIMISTIC_FLAG in description["checkpoint_selection"]) is row.optimistic


def test_the_splitters_refuse_a_name_not_in_the_table():
    with pytest.raises(DataError, match="unknown split protocol 'random'; known: "):
        splits.make_split(_table(SUBJECT_FOLDS), "random", None, "x.parquet")


# ---- the published results read it -------------------------------------------------------------
def test_published_rows_may_name_every_protocol_but_a_users_own_file_and_flag_the_optimistic_ones():
    from asym.reference import OPTIMISTIC_PROTOCOLS, OPTIMISTIC_PUBLISHED, PROTOCOLS, PUBLISHED_ONLY

    assert set(PROTOCOLS) == {r.name for r in ROWS if not r.split_csv} | set(PUBLISHED_ONLY)
    assert set(OPTIMISTIC_PROTOCOLS) == {r.name for r in ROWS if r.optimistic} | set(OPTIMISTIC_PUBLISHED)
