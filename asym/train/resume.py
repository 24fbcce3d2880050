"""Training that survives a kill inside a seed.

After every epoch, a seed's resume.pt (asym.layout.RESUME_FILE, beside its declared outputs)
holds everything its next epoch depends on, so a rerun of the job goes on after the last
finished epoch and ends as the uninterrupted run would (bit-identical on the CPU):

- the loop's objects: the weights (buffers included), the optimiser (moments, step counts, the
  learning rate of each group), the scheduler's position and, where fp16 training uses one, the
  GradScaler's scale;
- the training feed: its views (offline crops are drawn once, when the feed is built) and its
  own numpy Generator, which shuffles each epoch and draws the random windows;
- every other generator: torch's CPU generator (dropout, initialisation), CUDA's where present,
  numpy's global one and python's `random`;
- the best epoch so far (its number, score and weights), the history so far and, under `kfold`,
  every partition the seed has finished.

The file holds tensors and plain containers only and is read with
`torch.load(weights_only=True)`, like every checkpoint here. It carries a fingerprint of what
the seed is trained from (dataset, model, seed, registry entry, recipe, model configuration,
precision, device kind, the data and split files, the digest of the code the training stage
runs as asym.dag.code counts it, so comments and docstrings do not count). A file that cannot be
read (truncated, not a torch file, holding pickled objects) or that was written for other inputs
is not resumed from: a warning names it and the reason, the seed starts again from its first
epoch, and its first finished epoch overwrites the file: such a file never stops a job. One
that matches but does not fit the model being built stops it with an error naming it.

Once the seed's files are written, resume.pt keeps only what rebuilds them without training (each
partition's best weights and history), and the job removes it when all its seeds are complete:
Snakemake and DVC delete every declared output of a job they run again, so the seeds a killed
job had completed are written again in seconds instead of being trained again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from asym.errors import DataError
from asym.io import atomic_path, remove_temporaries

if TYPE_CHECKING:
    from asym.train.feed import TrainFeed

FORMAT = 1                                     # the layout of the record below
_KEYS = ("format", "fingerprint", "started_at", "finished", "current")
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, IndexError,
               pickle.UnpicklingError, zipfile.BadZipFile)
Warn = Callable[[str], None]


# --- random generators --------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """A numpy bit generator's state with its arrays as tensors (weights_only refuses arrays)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return {"ndarray": torch.from_numpy(obj.astype(np.int64)), "dtype": str(obj.dtype)}
    return obj


def _unplain(obj: Any) -> Any:
    if isinstance(obj, dict) and set(obj) == {"ndarray", "dtype"}:
        return obj["ndarray"].numpy().astype(obj["dtype"])
    if isinstance(obj, dict):
        return {k: _unplain(v) for k, v in obj.items()}
    return obj


def capture_rng(feed_rng: np.random.Generator) -> dict[str, Any]:
    """Every generator the next epoch draws from, as tensors and plain values."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        # CUDA's generators only once CUDA is in use (asking earlier would start it in a CPU run)
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "feed": _plain(feed_rng.bit_generator.state),
    }


def restore_rng(state: Mapping[str, Any], feed_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        for device, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, device)
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss_next"]))
    feed_rng.bit_generator.state = _unplain(state["feed"])


# --- what a seed is trained from ----------------------------------------------------------------
def fingerprint(facts: Mapping[str, Any], files: Iterable[str | os.PathLike]) -> str:
    """A digest of the facts (JSON) and of the files' contents: equal digests, same training."""
    h = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode())
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars as python numbers (the same values): weights_only refuses numpy scalars."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


# --- the loop and its saved state ---------------------------------------------------------------
@dataclass
class Loop:
    """The live objects of one partition's epoch loop whose state resume.pt keeps."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None          # an LRScheduler, or anything with state_dict / load_state_dict
    feed: TrainFeed                # its `views` and its Generator `rng` are saved
    scaler: Any | None = None      # a torch.amp.GradScaler, where fp16 training uses one

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "views": torch.tensor(self.feed.views, dtype=torch.int64).reshape(-1, 3)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])   # after the scheduler set its first lr
        for name in ("scheduler", "scaler"):
            live, saved = getattr(self, name), state[name]
            if (live is None) != (saved is None):
                raise ValueError(f"the {name} was {'not ' if saved is None else ''}saved, "
                                 f"but the loop has {'one' if live is not None else 'none'}")
            if live is not None:
                live.load_state_dict(saved)
        self.feed.views = [tuple(int(x) for x in v) for v in state["views"].tolist()]


@dataclass
class Saved:
    """One partition's epoch loop as resume.pt left it, after its epoch `epoch`."""

    path: Path
    epoch: int
    best: dict[str, Any] | None    # {"epoch", "score", "state"} of the best epoch so far
    history: list[dict[str, Any]]
    loop: dict[str, Any]
    rng: dict[str, Any]

    def restore(self, loop: Loop) -> None:
        """The weights, optimiser, scheduler, scaler and feed; the generators come last (see
        `restore_rng`), once nothing else will draw before the next epoch."""
        try:
            loop.load(self.loop)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise DataError(self.path, f"does not fit the model and recipe being trained ({exc}); "
                                       "delete it to train the seed from its first epoch") from exc

    def restore_rng(self, feed_rng: np.random.Generator) -> None:
        restore_rng(self.rng, feed_rng)


class SeedResume:
    """One seed's resume.pt: read once when the seed starts, rewritten after every epoch.

    The record: `finished`, the partitions trained to their end, and `current`, the partition in
    progress (None once the seed is complete, see `complete`)."""

    def __init__(self, path: Path, fingerprint: str, started_at: float,
                 record: Mapping[str, Any] | None = None) -> None:
        self.path, self.fingerprint = path, fingerprint
        self.current: Mapping[str, Any] | None = record["current"] if record else None
        self.started_at = float(record["started_at"]) if record else started_at
        # finished partitions: {"best_epoch", "best_score", "best_state", "history"} each
        self.finished: list[dict[str, Any]] = list(record["finished"]) if record else []
        self.resumed = record is not None

    @classmethod
    def open(cls, path: Path, fingerprint: str, started_at: float, warn: Warn) -> SeedResume:
        remove_temporaries(path)                  # a kill in the middle of a save
        return cls(path, fingerprint, started_at, read(path, fingerprint, warn))

    @property
    def resumed_from(self) -> tuple[int, int] | None:
        """(partition, last finished epoch) of the partition the killed run was inside, or None."""
        c = self.current
        return None if c is None else (int(c["partition"]), int(c["epoch"]))

    def saved(self, partition: int) -> Saved | None:
        """The saved loop of `partition`, when the killed run was inside it."""
        c = self.current
        if c is None or int(c["partition"]) != partition:
            return None
        return Saved(self.path, int(c["epoch"]), c["best"], list(c["history"]), c["loop"], c["rng"])

    def save(self, partition: int, epoch: int, loop: Loop, best: Mapping[str, Any] | None,
             history: list[dict[str, Any]]) -> None:
        """After each epoch: the partition's loop, its best epoch so far and its history."""
        self._write({"partition": partition, "epoch": epoch, "loop": loop.state(),
                     "best": None if best is None else {"epoch": int(best["epoch"]), "score": float(best["score"]),
                                                        "state": best["state"]},
                     "history": [_plain_row(r) for r in history], "rng": capture_rng(loop.feed.rng)})

    def finish(self, partition: int, best_epoch: int, best_score: float, best_state: dict[str, torch.Tensor],
               history: list[dict[str, Any]]) -> None:
        """A partition trained to its end: kept whole in later saves, never trained again."""
        if partition == len(self.finished):
            self.finished.append({"best_epoch": best_epoch, "best_score": float(best_score),
                                  "best_state": best_state, "history": [_plain_row(r) for r in history]})

    def complete(self) -> None:
        """The seed's files are written: keep only what rebuilds them without training (the best
        weights and the history of each partition) until the job ends. Snakemake and DVC delete
        every declared output of a job they run again, complete seeds' included."""
        self._write(None)

    def _write(self, current: dict[str, Any] | None) -> None:
        """Written beside the outputs and synced before it replaces the previous one, so a kill or a
        node failure leaves the last epoch's file or the one before it, never a partial one."""
        record = {"format": FORMAT, "fingerprint": self.fingerprint, "started_at": self.started_at,
                  "finished": self.finished, "current": current}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            torch.save(record, fh)
            fh.flush()
            os.fsync(fh.fileno())


def read(path: Path, fingerprint: str, warn: Warn) -> dict[str, Any] | None:
    """The record in `path`, or None (with a warning saying why) when it cannot be resumed from."""
    if not path.exists():
        return None
    restart = "the seed starts again from its first epoch"
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or any(k not in record for k in _KEYS):
            raise ValueError("not a resume record")
        if record["format"] != FORMAT:
            raise ValueError(f"format {record['format']}, not {FORMAT}")
    except _UNREADABLE as exc:
        reason = (str(exc).splitlines() or [""])[0][:200]
        warn(f"{path}: cannot be resumed from ({type(exc).__name__}: {reason}); {restart}")
        return None
    if record["fingerprint"] != fingerprint:
        warn(f"{path}: written for other inputs (data, split, code or configuration changed since); {restart}")
        return None
    return record
