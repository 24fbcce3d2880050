"""What `asym explain` writes, by name, and which vlogs get a timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asym.explain.attribute import VlogAttribution
from asym.explain.run import _timeline_picks, group_key, outputs, timeline_file


def _vlog(logit: float) -> VlogAttribution:
    return VlogAttribution(str(logit), 0, np.zeros((2, 1)), np.zeros((2, 1)), logit, 0.0, 0.0)


def test_outputs_are_named_from_the_run_with_a_folder_of_timelines(tmp_path):
    files = outputs(tmp_path, "dvlog", "asym", 2)
    stem = tmp_path / "explain" / "dvlog-asym-seed2"
    assert files == {"md": Path(f"{stem}.md"), "csv": Path(f"{stem}.csv"), "vlogs_csv": Path(f"{stem}-vlogs.csv"),
                     "json": Path(f"{stem}.json"), "groups_png": Path(f"{stem}-groups.png"),
                     "timelines": Path(f"{stem}-timelines")}
    assert timeline_file(files["timelines"], 2) == Path(f"{stem}-timelines") / "timeline-2.png"


def test_timelines_spread_from_the_lowest_logit_to_the_highest():
    vlogs = [_vlog(x) for x in (0.3, -2.0, 5.0, 1.0, 0.0)]
    assert _timeline_picks(vlogs, 3) == [1, 0, 2]                 # lowest, median, highest
    assert sorted(_timeline_picks(vlogs, 9)) == list(range(5))    # never more than there are vlogs
    assert _timeline_picks(vlogs, 0) == []


def test_group_keys_are_safe_metric_names():
    assert group_key("audio", "prosody (pitch, loudness)") == "audio.prosody_pitch_loudness"
    assert group_key("visual", "visual 0-16") == "visual.visual_0-16"
