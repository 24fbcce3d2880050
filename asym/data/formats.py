"""The feature widths of each release format: facts of the releases, read by the readers, the
model factory and the checkpoints (no dependency, so anything may import it)."""

from __future__ import annotations

# (audio, visual) columns: D-Vlog's 25 eGeMAPS descriptors and 68 (x, y) landmarks; LMVD's 128
# VGGish dimensions and the same 68 landmarks.
WIDTHS: dict[str, tuple[int, int]] = {"dvlog": (25, 136), "lmvd": (128, 136)}


def input_widths() -> dict[str, tuple[int, int]]:
    """(audio, visual) feature widths of each release format."""
    return dict(WIDTHS)
