"""What a training job tells the world while it runs, through one interface.

The job reports events to a `TrainObserver`: the progress bar (`Progress`), the warning that a
paper-scale run on the CPU will take hours (`EtaWarning`) and live MLflow logging
(asym.tracking.track.LiveRun) each follow the events they need; `Observers` passes every event
on to several, in order. Observers see; none changes what is trained.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import numpy as np
from tqdm import tqdm

SECONDS_PER_HOUR = 3600


class TrainObserver:
    """Every event of a training job, each ignored here: an observer overrides those it follows."""

    def on_seed_start(self, seed: int) -> None:
        """`seed` starts (or resumes) training."""

    def on_step(self, seconds: float) -> None:
        """One optimiser step, of `seconds` wall time (its batch's transfer included)."""

    def on_resume(self, steps: int) -> None:
        """A resumed partition: `steps` steps its killed run had trained are not trained again."""

    def on_epoch(self, seed: int, partition: int, row: Mapping[str, float]) -> None:
        """One epoch's history row, as history.csv holds it. A resumed seed reports the rows of
        the epochs its killed run had finished again, in order, before its next epoch."""

    def on_seed_done(self, seed: int, folder: Path) -> None:
        """`seed`'s files are written, in its run `folder`."""


class Observers(TrainObserver):
    """Several observers as one: each event goes to each of them, in their order."""

    def __init__(self, observers: Iterable[TrainObserver] = ()) -> None:
        self.observers = list(observers)

    def on_seed_start(self, seed: int) -> None:
        for o in self.observers:
            o.on_seed_start(seed)

    def on_step(self, seconds: float) -> None:
        for o in self.observers:
            o.on_step(seconds)

    def on_resume(self, steps: int) -> None:
        for o in self.observers:
            o.on_resume(steps)

    def on_epoch(self, seed: int, partition: int, row: Mapping[str, float]) -> None:
        for o in self.observers:
            o.on_epoch(seed, partition, row)

    def on_seed_done(self, seed: int, folder: Path) -> None:
        for o in self.observers:
            o.on_seed_done(seed, folder)


class Progress(TrainObserver):
    """The job's progress bar: one tick per step, the current seed beside it (off when stderr
    is no terminal). A context manager: the bar is closed when the job ends."""

    def __init__(self, total_steps: int, label: str) -> None:
        self.bar = tqdm(total=total_steps, desc=label, unit="step", leave=False, disable=None)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.__exit__(kind, exc, tb)

    def on_seed_start(self, seed: int) -> None:
        self.bar.set_postfix(seed=seed)

    def on_step(self, seconds: float) -> None:
        self.bar.update(1)

    def on_resume(self, steps: int) -> None:
        self.bar.update(steps)


class EtaWarning(TrainObserver):
    """At `scale: paper` without a GPU, warn once with the projected wall time per run, from the
    median of its first `after` steps."""

    def __init__(self, steps_per_run: int, label: str, after: int = 3) -> None:
        self.steps_per_run, self.label, self.after = steps_per_run, label, after
        self.times: list[float] = []
        self.done = False

    def on_step(self, seconds: float) -> None:
        if self.done:
            return
        self.times.append(seconds)
        if len(self.times) >= self.after:
            self.done = True
            hours = float(np.median(self.times)) * self.steps_per_run / SECONDS_PER_HOUR
            tqdm.write(f"asym train: warning: {self.label} runs at scale `paper` on the CPU; from its first "
                       f"{self.after} steps one run will take about {hours:.1f} h. Paper scale needs a CUDA GPU "
                       "(see benchmarks/train_step.py for the projected cost of the whole grid).", file=sys.stderr)
