"""Debian's pdflatex with the LaTeX packages the report's tables need, for tests that compile them.

texlive-latex-base brings pdflatex, graphicx and longtable; texlive-latex-recommended brings
booktabs and pdflscape (together about 100 MB, against several GB for all of TeX Live). Nothing is
downloaded at run time: the packages are installed with apt-get, as root, where they are missing.
Standard library only at load time, so `.ci/run` can read APT_PACKAGES with the system Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.workflow import debian

APT_PACKAGES = ("texlive-latex-base", "texlive-latex-recommended")
ENGINE = "pdflatex"
FIND = "kpsewhich"          # TeX's own file search: tells whether a .sty is installed
RERUN = "Rerun LaTeX"       # longtable's word for "the column widths have changed"
MAX_RUNS = 4


def missing(packages: Iterable[str]) -> list[str]:
    """The engine, or the LaTeX packages among `packages`, that cannot be found here."""
    absent = debian.missing((ENGINE, FIND))
    if absent:
        return absent
    found = subprocess.run([FIND, *(f"{p}.sty" for p in packages)], capture_output=True, text=True).stdout
    return [f"{p}.sty" for p in packages if f"/{p}.sty" not in found]


def unavailable_reason(packages: Iterable[str]) -> str | None:
    """Why no engine with `packages` can be had here (missing, and no root or no apt-get), or None."""
    absent = missing(packages)
    if not absent:
        return None
    if os.geteuid() != 0:
        return f"no root to apt-get install {', '.join(APT_PACKAGES)} (missing: {', '.join(absent)})"
    if shutil.which("apt-get") is None:
        return f"no apt-get to install Debian's {', '.join(APT_PACKAGES)} (missing: {', '.join(absent)})"
    return None


def install(timeout_s: int = 900) -> None:
    debian.apt_install(APT_PACKAGES, (ENGINE, FIND), timeout_s)


def document(body: str, packages: Iterable[str]) -> str:
    """A minimal article around `body` that loads exactly `packages`. A glyph missing from a font
    is an error (\\tracinglostchars=3), not a line in the log."""
    return "\n".join([r"\documentclass{article}", *(rf"\usepackage{{{p}}}" for p in packages),
                      r"\tracinglostchars=3", r"\begin{document}", body, r"\end{document}", ""])


def compile_pdf(tex: Path, timeout_s: int = 120) -> subprocess.CompletedProcess[str]:
    """pdflatex on `tex` in its folder, stopping at the first error, and run again while LaTeX asks
    for it (a longtable's column widths settle over runs, as in any paper); the log is beside it."""
    for _ in range(MAX_RUNS):
        proc = subprocess.run([ENGINE, "-halt-on-error", "-interaction=nonstopmode", "-no-shell-escape", tex.name],
                              cwd=tex.parent, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or RERUN not in tex.with_suffix(".log").read_text(errors="replace"):
            break
    return proc
