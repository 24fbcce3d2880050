"""The cross-gender study: each by-gender protocol trained in its own folders, and the
`cross_gender` table computed from those runs: per test gender, the same-gender and the
cross-gender score on the same test vlogs, their paired difference, each point inside its CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

import asym.train.job as train_mod
from asym.cli import main
from asym.data.protocols import GENDER_PAIRS, GENDER_PROTOCOLS
from asym.data.splits import EXCLUDED, read_split
from asym.errors import DataError
from asym.grid import Run
from asym.io import read_json
from asym.layout import Layout, report_tables
from asym.report import cross_gender
from tests.project import prepared

STUDY = {"cross_gender": {"models": {"demo": ["mean-mlp"], "paper": []}, "seeds": {"demo": [0, 1], "paper": [0]},
                          "datasets": ["dvlog"]},
         "split": {"gender": {"validation": "target", "min_test_per_class": 2}}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """mean-mlp under the four by-gender protocols, two seeds, on a 160-vlog D-Vlog demo."""
    root = tmp_path_factory.mktemp("gender")
    prepared(root, ["mean-mlp"], epochs=2, n_samples=160, **STUDY)
    from asym.config import load_params

    p = load_params(root / "params.yaml")
    for protocol in GENDER_PROTOCOLS:
        assert main(["--params", str(root / "params.yaml"), "split", "--dataset", "dvlog", "--protocol", protocol]) == 0
        train_mod.train_job(p.for_cross_gender(protocol), "dvlog", "mean-mlp", p.cross_gender_seeds)
    return p


def _predictions(p, protocol: str, seed: int) -> pd.DataFrame:
    files = Layout.of(p.for_cross_gender(protocol)).run(Run("dvlog", "mean-mlp", seed))
    return pd.read_parquet(files.file("predictions")).sort_values("sample_id")


def test_each_protocol_trains_in_its_own_folders_on_its_genders(study):
    p = study
    assert not Layout.of(p).run(Run("dvlog", "mean-mlp", 0)).folder.exists()           # main runs untouched
    for protocol in GENDER_PROTOCOLS:
        lay = Layout.of(p.for_cross_gender(protocol))
        assert lay.runs.endswith(f"runs/cross_gender/{protocol}") and lay.splits.endswith(f"splits/cross_gender/{protocol}")
        split = read_split(Path(lay.split_csv("dvlog")))
        assert (split["fold"] == EXCLUDED).any()
        summary = read_json(lay.run(Run("dvlog", "mean-mlp", 0)).file("summary"))
        genders = read_json(lay.split_json("dvlog"))["genders"]
        pred = _predictions(p, protocol, 0)
        assert set(pred.loc[pred["fold"] == "test", "gender"]) == {genders["test"]}
        assert set(pred.loc[pred["fold"] == "valid", "gender"]) == {genders["test"]}     # validation: target
        assert summary["n_params"] > 0


def test_the_table_sets_each_cross_gender_score_beside_its_same_gender_one(study, tmp_path):
    p = study
    table = cross_gender.compare(p)
    assert sorted(zip(table["test_gender"], table["model"], strict=True)) == [("f", "mean-mlp"), ("m", "mean-mlp")]
    for _, row in table.iterrows():
        within, cross = GENDER_PAIRS[row["test_gender"]]
        assert (row["within_protocol"], row["cross_protocol"]) == (within, cross)
        preds = {arm: [_predictions(p, pr, s).query("fold == 'test'") for s in (0, 1)]
                 for arm, pr in (("within", within), ("cross", cross))}
        y = preds["within"][0]["label"].to_numpy(int)
        assert row["n_test"] == len(y) and row["n_test_depressed"] == y.sum()
        assert list(preds["within"][0]["sample_id"]) == list(preds["cross"][1]["sample_id"])       # the same test vlogs
        for k, metric in (("accuracy", accuracy_score), ("f1", lambda a, b: f1_score(a, b, zero_division=0))):
            for arm in ("within", "cross"):
                expected = np.mean([metric(y, d["pred"].to_numpy(int)) for d in preds[arm]])
                assert row[f"{k}_{arm}"] == pytest.approx(expected)
                assert row[f"{k}_{arm}_ci_low"] <= row[f"{k}_{arm}"] <= row[f"{k}_{arm}_ci_high"]
            assert row[f"delta_{k}"] == pytest.approx(row[f"{k}_cross"] - row[f"{k}_within"])
            assert row[f"delta_{k}_ci_low"] <= row[f"delta_{k}"] <= row[f"delta_{k}_ci_high"]
        assert 0 < row["delta_f1_p"] <= 1
        for arm, pr in (("within", within), ("cross", cross)):
            split = read_split(Path(Layout.of(p.for_cross_gender(pr)).split_csv("dvlog")))
            assert row[f"n_train_{arm}"] == (split["fold"] == "train").sum()
    paths = {f"cross_gender_{fmt}": tmp_path / f"cross_gender.{fmt}" for fmt in ("md", "csv", "tex")}
    cross_gender.write_table(table, p, paths)
    md = paths["cross_gender_md"].read_text()
    assert "tested on gender m: `within_gender_m` (same) vs `cross_gender_f_to_m` (cross)" in md
    assert "as DynMultiDep's code filters it" in md
    assert pd.read_csv(paths["cross_gender_csv"]).shape[0] == 2 and "tabular" in paths["cross_gender_tex"].read_text()
    assert "cross_gender" in report_tables(["mean-mlp"], cross_gender=True)
    assert "cross_gender_md" in Layout.of(p).report_outputs(p.models, p.datasets, cross_gender=bool(p.cross_gender_datasets))


def test_the_table_refuses_arms_tested_on_different_vlogs(study):
    path = Path(Layout.of(study.for_cross_gender("cross_gender_f_to_m")).run(Run("dvlog", "mean-mlp", 0)).file("predictions"))
    kept = path.read_bytes()
    try:
        pred = pd.read_parquet(path)
        pred = pred.drop(pred.index[pred["fold"] == "test"][0])
        pred.to_parquet(path)
        with pytest.raises(DataError, match="test vlogs differ"):
            cross_gender.compare(study)
    finally:
        path.write_bytes(kept)
