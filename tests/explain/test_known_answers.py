"""Known answers for `asym explain`: ASYM trained on the demos (asym.data.synthetic) through the
real steps, then explained by the `asym` command. The cues are planted in known columns: the
first `PROSODY_DIMS` acoustic dimensions (D-Vlog's layout) and the mouth landmarks (`MOUTH`,
x and y: 40 of the 136 visual columns).

- `synchrony`: the label lives only in how the mouth follows the prosodic dimensions, so a model
  that finds it must read both: ASYM's attribution on each planted group is far above the group's
  share of its modality's columns, and clearly above the re-initialised model's.
- `marginal` (params.yaml's demo): the prosodic dimensions carry the cue that the models learn at
  demo scale, and the same holds for them. The mouth's cue there is too weak for any model at
  demo scale (asym-visual-only is at chance on it in the demo's report), so nothing is claimed
  of the mouth: an explanation must not find what the model never learnt.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asym.config import load_params
from asym.data.synthetic import MOUTH
from asym.explain.groups import N_LANDMARKS
from tests.conftest import ROOT, params_beside
from tests.test_known_answers import ENV, PATHS

PROSODY_DIMS = 6                 # asym.data.synthetic.write_dvlog's prosody_dims on D-Vlog's 25 columns
PLANTED = {"audio": np.arange(PROSODY_DIMS), "visual": np.r_[MOUTH, MOUTH + N_LANDMARKS]}   # demo: xy_blocks
FAR_ABOVE = 1.4                  # times the group's share of its modality's columns
ABOVE_RANDOM = 0.10              # share of the modality's attribution above the re-initialised model's
# Few vlogs, few steps: the test's cost, not the study's settings
EXPLAIN = {"n_steps": 16, "internal_batch_size": 64, "max_vlogs": 24, "timelines": 1, "random_seed": 0,
           "generic_groups": 8}


def marginal_project(root: Path) -> Path:
    """params.yaml's own demo (mechanism `marginal`) for ASYM on seed 0 of D-Vlog, as demo_project does."""
    raw = copy.deepcopy(load_params(ROOT / "params.yaml").raw)
    raw["paths"] = dict(PATHS)
    raw["datasets"]["lmvd"]["subjects"] = "data/raw/lmvd/subjects.csv"
    raw["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"
    raw["run"].update(models=["asym"], datasets=["dvlog"])
    raw["run"]["seeds"]["demo"] = [0]
    raw.update(optimism=None, cross_gender=None)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root / "params.yaml"


def train_and_explain(params_file: Path, train: bool = True) -> Path:
    """fetch -> convert -> split -> train ASYM (unless trained already: `train`) -> explain its run;
    the explain folder."""
    explained = params_beside(params_file, "explain", explain=dict(EXPLAIN))
    asym = [sys.executable, "-m", "asym", "--params", str(explained)]
    steps = [[s, "--dataset", "dvlog"] for s in ("fetch", "convert", "split")] if train else []
    steps += [["train", "--dataset", "dvlog", "--model", "asym"]] if train else []
    steps += [["explain", "--run", "runs/dvlog/asym/seed0"]]
    for step in steps:
        proc = subprocess.run(asym + step, cwd=params_file.parent, env=ENV, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"asym {' '.join(step)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return params_file.parent / "reports" / "explain"


def planted_shares(out: Path) -> dict[str, dict[str, float]]:
    """Per modality: the planted columns' share of the modality's columns, of the trained model's
    attribution and of the re-initialised model's (within the modality, mean over vlogs)."""
    rows = pd.read_csv(out / "dvlog-asym-seed0.csv")
    shares = {}
    for modality, cols in PLANTED.items():
        f = rows[(rows["level"] == "feature") & (rows["modality"] == modality)].reset_index(drop=True).iloc[cols]
        shares[modality] = {k: float(f[c].sum()) for k, c in (
            ("features", "feature_share_in_modality"), ("trained", "attribution_share_in_modality"),
            ("randomised", "random_attribution_share_in_modality"))}
    return shares


def assert_planted_found(share: dict[str, float], what: str) -> None:
    assert share["trained"] >= FAR_ABOVE * share["features"], (what, share)
    assert share["trained"] >= share["randomised"] + ABOVE_RANDOM, (what, share)


def assert_outputs(out: Path) -> None:
    stem = "dvlog-asym-seed0"
    md = (out / f"{stem}.md").read_text()
    assert "not depression" in md and "Spearman" in md and "re-initialised" in md
    assert (out / f"{stem}-groups.png").stat().st_size > 0 and (out / f"{stem}-timelines" / "timeline-1.png").stat().st_size > 0
    headline = json.loads((out / f"{stem}.json").read_text())
    assert headline["n_vlogs"] == EXPLAIN["max_vlogs"] and -1 <= headline["spearman_vs_randomised"] <= 1
    vlogs = pd.read_csv(out / f"{stem}-vlogs.csv", dtype={"id": str})
    assert len(vlogs) == EXPLAIN["max_vlogs"]
    np.testing.assert_allclose(vlogs["audio_share"] + vlogs["visual_share"], 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group("synchrony")
def test_synchrony_attribution_lies_on_the_prosodic_dims_and_the_mouth(synchrony_demo):
    out = train_and_explain(synchrony_demo, train=False)
    shares = planted_shares(out)
    assert shares["audio"]["features"] == pytest.approx(6 / 25) and shares["visual"]["features"] == pytest.approx(40 / 136)
    for modality, share in shares.items():
        assert_planted_found(share, modality)
    assert_outputs(out)


@pytest.mark.slow
def test_marginal_attribution_lies_on_the_prosodic_dims(tmp_path):
    out = train_and_explain(marginal_project(tmp_path))
    assert_planted_found(planted_shares(out)["audio"], "audio")
    assert_outputs(out)
