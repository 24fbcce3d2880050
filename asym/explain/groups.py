"""Names and groups of the input columns, read from the dataset's format, so attributions are
reported in the release's own terms.

- D-Vlog's 25 acoustic columns are openSMILE's eGeMAPSv02 low-level descriptors (D-Vlog's paper;
  `asym extract` writes them), named here in the order openSMILE outputs them, grouped as
  prosody (pitch, loudness), voice quality (jitter, shimmer, HNR, harmonic differences),
  formants (F1-F3 frequency, bandwidth, amplitude) and spectral shape (slopes, ratios, flux,
  MFCC 1-4).
- The 136 visual columns of D-Vlog, LMVD and DAIC-WOZ are dlib's / OpenFace's 68 landmarks,
  grouped by face region (iBUG 300-W's numbering: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
  mouth 48-67). LMVD and DAIC-WOZ lay them out `xy_blocks` (x_0..x_67, y_0..y_67, OpenFace's
  order); D-Vlog's documentation does not say, so its layout is `extract.landmark_order`, the
  setting that must match the release a model was trained on.
- Columns without names (LMVD's 128 VGGish dimensions, DAIC-WOZ's COVAREP vector as asym reads it,
  a manifest dataset's of any width) fall back to `explain.generic_groups` contiguous blocks: such
  groups say where attribution lies among the columns, not what it means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODALITIES = ("audio", "visual")

EGEMAPS_LLD = (
    "Loudness", "alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux",
    "mfcc1", "mfcc2", "mfcc3", "mfcc4", "F0semitoneFrom27.5Hz", "jitterLocal", "shimmerLocaldB", "HNRdBACF",
    "logRelF0-H1-H2", "logRelF0-H1-A3", "F1frequency", "F1bandwidth", "F1amplitudeLogRelF0",
    "F2frequency", "F2bandwidth", "F2amplitudeLogRelF0", "F3frequency", "F3bandwidth", "F3amplitudeLogRelF0",
)
EGEMAPS_GROUPS = {
    "prosody (pitch, loudness)": ("F0semitoneFrom27.5Hz", "Loudness"),
    "voice quality": ("jitterLocal", "shimmerLocaldB", "HNRdBACF", "logRelF0-H1-H2", "logRelF0-H1-A3"),
    "formants": tuple(f"F{k}{p}" for k in (1, 2, 3) for p in ("frequency", "bandwidth", "amplitudeLogRelF0")),
    "spectral shape": ("alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux",
                       "mfcc1", "mfcc2", "mfcc3", "mfcc4"),
}
N_LANDMARKS = 68
LANDMARK_REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
                    "mouth": range(48, 68)}
# The formats whose 136 visual columns are the 68 landmarks, and their layout where the reader fixes
# it (None: D-Vlog's, read from `extract.landmark_order`).
LANDMARK_FORMATS: dict[str, str | None] = {"dvlog": None, "lmvd": "xy_blocks", "daic_woz": "xy_blocks"}
NAMED_AUDIO = {"dvlog": EGEMAPS_LLD}


@dataclass(frozen=True)
class Columns:
    """One modality's column names, and its groups as column indices in the order reported."""

    modality: str
    names: tuple[str, ...]
    groups: dict[str, np.ndarray]
    scheme: str                        # how the groups were named (stated in the report)
    generic: bool                      # True: no names known, contiguous blocks instead

    @property
    def width(self) -> int:
        return len(self.names)


def landmark_columns(order: str) -> tuple[tuple[str, ...], dict[int, tuple[int, int]]]:
    """The 136 column names in `order` and, per landmark, its (x, y) column indices."""
    if order == "xy_blocks":
        names = tuple(f"x_{i}" for i in range(N_LANDMARKS)) + tuple(f"y_{i}" for i in range(N_LANDMARKS))
        where = {i: (i, N_LANDMARKS + i) for i in range(N_LANDMARKS)}
    elif order == "interleaved":
        names = tuple(f"{c}_{i}" for i in range(N_LANDMARKS) for c in "xy")
        where = {i: (2 * i, 2 * i + 1) for i in range(N_LANDMARKS)}
    else:
        raise ValueError(f"unknown landmark order {order!r} (xy_blocks or interleaved)")
    return names, where


def generic(modality: str, width: int, n_groups: int, why: str) -> Columns:
    names = tuple(f"{modality}_{j}" for j in range(width))
    blocks = np.array_split(np.arange(width), min(n_groups, width))
    groups = {f"{modality} {b[0]}-{b[-1]}" if len(b) > 1 else f"{modality} {b[0]}": b for b in blocks}
    return Columns(modality, names, groups, f"{len(groups)} contiguous blocks ({why})", True)


def audio_columns(fmt: str, width: int, n_groups: int) -> Columns:
    names = NAMED_AUDIO.get(fmt)
    if names is None or len(names) != width:
        return generic("audio", width, n_groups, f"no descriptor names for {fmt}'s {width} acoustic columns")
    groups = {g: np.array([names.index(n) for n in members]) for g, members in EGEMAPS_GROUPS.items()}
    return Columns("audio", names, groups, "eGeMAPSv02 descriptors (openSMILE's order), by parameter group", False)


def visual_columns(fmt: str, width: int, n_groups: int, dvlog_order: str) -> Columns:
    if fmt not in LANDMARK_FORMATS or width != 2 * N_LANDMARKS:
        return generic("visual", width, n_groups, f"no landmark layout known for {fmt}'s {width} visual columns")
    order = LANDMARK_FORMATS[fmt] or dvlog_order
    names, where = landmark_columns(order)
    groups = {region: np.array(sorted(c for i in points for c in where[i])) for region, points in LANDMARK_REGIONS.items()}
    return Columns("visual", names, groups, f"68 landmarks ({order}), by face region", False)


def columns_of(fmt: str, widths: tuple[int, int], n_groups: int, dvlog_order: str) -> tuple[Columns, Columns]:
    """The (audio, visual) columns of a model trained on `fmt` at `widths`."""
    return audio_columns(fmt, widths[0], n_groups), visual_columns(fmt, widths[1], n_groups, dvlog_order)
