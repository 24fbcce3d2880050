"""The errors a user can cause: the CLI prints them without a traceback and exits with 2."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Invalid input data; the message names the offending file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(ValueError):
    """Invalid params.yaml (unknown key, wrong type, unknown model name)."""
