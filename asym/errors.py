"""One exception type for bad input, so the CLI can print it cleanly and exit non-zero."""

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
