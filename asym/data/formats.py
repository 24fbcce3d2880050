"""The dataset formats asym reads: one row per on-disk layout, the one list that the params schema,
`asym convert`, `asym fetch`, `asym synth`, `asym predict` and the model cards read.

Each row names the module that reads the layout. That module defines

    read(path, settings, labels_required=True) -> (samples: Iterator[Sample], layout: str)
    detect(path) -> Path      # the layout's root under `path`, or a DataError saying why not

`settings` is a plain dict (what `reader_settings` makes of params.yaml, recorded in every
table's and checkpoint's metadata so that `asym predict` reads new vlogs the same way). A demo
writer (`demo`) writes a synthetic dataset in the exact layout, read by that same reader.

This module imports nothing heavy, so the Snakefile and the params schema may import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asym.errors import ConfigError

if TYPE_CHECKING:
    from asym.data.sample import Sample


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    title: str                         # how messages and model cards name the release
    citation: str | None               # the paper that published it (None: the user's own data)
    module: str                        # defines read() and detect() (see the module docstring)
    demo: str                          # "module:function": write(out, cfg, seed) in this layout
    widths: tuple[int, int] | None     # (audio, visual) fixed by the release; None: from the data
    reader_block: str | None = None    # the `readers.<block>` of params.yaml its reader reads
    frame_rates: bool = False          # whether `datasets.<name>.frame_rates` applies (else fixed)
    demo_seed: int = 0                 # added to synth.seed, so no two demos share a stream
    demo_layouts: tuple[str, ...] = ("release",)
    manifest: bool = False             # `source` names a CSV whose rows point at feature files

    def reader(self) -> Any:
        return importlib.import_module(self.module)

    def read(self, path: Path, settings: Mapping[str, Any],
             labels_required: bool = True) -> tuple[Iterator[Sample], str]:
        return self.reader().read(Path(path), dict(settings), labels_required)

    def detect(self, path: Path) -> Path:
        return self.reader().detect(Path(path))

    @property
    def demo_module(self) -> str:
        return self.demo.split(":")[0]

    def demo_writer(self) -> Callable[..., None]:
        module, fn = self.demo.split(":")
        return getattr(importlib.import_module(module), fn)


FORMATS: dict[str, DatasetFormat] = {f.name: f for f in (
    # D-Vlog: 25 eGeMAPS descriptors and 68 (x, y) landmarks per second
    DatasetFormat("dvlog", "D-Vlog", "Yoon et al., AAAI 2022", "asym.data.dvlog", "asym.data.synthetic:write_dvlog",
                  (25, 136)),
    # LMVD: 128 VGGish dimensions and the same 68 landmarks
    DatasetFormat("lmvd", "LMVD", "He et al., 2024", "asym.data.lmvd", "asym.data.synthetic:write_lmvd",
                  (128, 136), reader_block="lmvd", demo_seed=1, demo_layouts=("authors", "derived")),
    # DAIC-WOZ: COVAREP at 100 Hz and CLNF landmarks at 30 Hz, pooled to one row per second
    DatasetFormat("daic_woz", "DAIC-WOZ", "Gratch et al., LREC 2014", "asym.data.daic_woz",
                  "asym.data.daic_woz_demo:write_daic_woz", (74, 136), reader_block="daic_woz", demo_seed=2),
    # Any dataset: a CSV of id,label,fold,audio,visual[,subject,gender] rows pointing at .npy files
    DatasetFormat("manifest", "manifest", None, "asym.data.manifest", "asym.data.manifest_demo:write_manifest",
                  None, frame_rates=True, demo_seed=3, manifest=True),
)}


# The file a manifest dataset's `source` folder holds (asym.data.manifest).
MANIFEST = "manifest.csv"

# The releases the ASYM paper's comparison runs on: the params file's default datasets, and the
# widths at which `asym models --details` counts every model's parameters.
PAPER_RELEASES = ("dvlog", "lmvd")


def input_widths() -> dict[str, tuple[int, int]]:
    """(audio, visual) widths of the paper's two releases, by format name."""
    return {name: FORMATS[name].widths for name in PAPER_RELEASES}


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def get(name: str) -> DatasetFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset format {name!r}; known: {list(FORMATS)}") from None


def title(name: str) -> str:
    """The release's name for messages, or the format's own name where it is not a release."""
    return FORMATS[name].title if name in FORMATS else name


def reader_settings(fmt: str, readers: Any, frame_rates: Any = None) -> dict[str, Any]:
    """What the format's reader reads: its `readers.<block>` and a dataset's frame rates, as plain
    values (the tables' and checkpoints' `readers` record)."""
    f = get(fmt)
    block = getattr(readers, f.reader_block, None) if f.reader_block else None
    out = block.model_dump(mode="json") if block is not None else {}
    if f.frame_rates and frame_rates is not None:
        out["frame_rates"] = frame_rates.model_dump(mode="json") if hasattr(frame_rates, "model_dump") else dict(frame_rates)
    return out


def dataset_settings(ds: Any, readers: Any) -> dict[str, Any]:
    """`reader_settings` of a params dataset entry (its frame rates read only where its format has them)."""
    f = get(ds.format)
    return reader_settings(f.name, readers, ds.frame_rates if f.frame_rates else None)
