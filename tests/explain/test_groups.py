"""Column names and groups read from the formats: every column in exactly one group, the
landmark regions where the layout puts them, generic blocks where no names are known."""

from __future__ import annotations

import numpy as np
import pytest

from asym.data import formats
from asym.data.synthetic import MOUTH
from asym.explain.groups import (
    EGEMAPS_LLD,
    LANDMARK_REGIONS,
    N_LANDMARKS,
    columns_of,
    landmark_columns,
)


def _partition(groups: dict[str, np.ndarray], width: int) -> None:
    cols = np.concatenate(list(groups.values()))
    assert sorted(cols.tolist()) == list(range(width))


@pytest.mark.parametrize("fmt", ["dvlog", "lmvd", "daic_woz", "manifest"])
def test_every_column_is_in_exactly_one_group(fmt):
    widths = formats.get(fmt).widths or (40, 17)
    for c in columns_of(fmt, widths, 8, "xy_blocks"):
        assert c.width == len(set(c.names))
        _partition(c.groups, c.width)


def test_dvlog_audio_is_named_by_egemaps_descriptor():
    audio, visual = columns_of("dvlog", (25, 136), 8, "xy_blocks")
    assert audio.names == EGEMAPS_LLD and not audio.generic and not visual.generic
    named = {g: {audio.names[j] for j in idx} for g, idx in audio.groups.items()}
    assert named["prosody (pitch, loudness)"] == {"F0semitoneFrom27.5Hz", "Loudness"}
    assert {"jitterLocal", "shimmerLocaldB", "HNRdBACF"} <= named["voice quality"]
    assert {f"mfcc{k}" for k in range(1, 5)} <= named["spectral shape"]


@pytest.mark.parametrize(("order", "mouth"), [
    ("xy_blocks", [*MOUTH, *(MOUTH + N_LANDMARKS)]),          # x_48..x_67, then y_48..y_67
    ("interleaved", [c for i in MOUTH for c in (2 * i, 2 * i + 1)]),
])
def test_landmark_regions_follow_the_layout(order, mouth):
    _, visual = columns_of("dvlog", (25, 136), 8, order)
    assert sorted(visual.groups["mouth"].tolist()) == sorted(mouth)
    assert len(visual.groups["mouth"]) == 40 and len(visual.groups["jaw"]) == 34
    names, _ = landmark_columns(order)
    assert {names[c] for c in visual.groups["mouth"]} == {f"{a}_{i}" for i in MOUTH for a in "xy"}
    assert list(visual.groups) == list(LANDMARK_REGIONS)


def test_openface_layouts_ignore_the_dvlog_setting_and_unnamed_widths_fall_back():
    audio, visual = columns_of("lmvd", (128, 136), 8, "interleaved")
    assert sorted(visual.groups["mouth"].tolist()) == [*MOUTH, *(MOUTH + N_LANDMARKS)]   # OpenFace: xy_blocks
    assert audio.generic and len(audio.groups) == 8 and "no descriptor names" in audio.scheme
    audio, visual = columns_of("manifest", (40, 17), 5, "xy_blocks")
    assert audio.generic and visual.generic and len(visual.groups) == 5
    assert "no landmark layout" in visual.scheme
    # D-Vlog's names only at D-Vlog's width
    assert columns_of("dvlog", (30, 136), 8, "xy_blocks")[0].generic
