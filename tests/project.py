"""A throw-away copy of the pipeline (Snakefile, workflow/, params.yaml) with a small config."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def small_params(models: list[str], seeds: list[int], epochs: int, synth: dict[str, Any] | None = None,
                 bootstrap: int = 200, **sections: dict[str, Any]) -> dict[str, Any]:
    """params.yaml with fewer models, seeds, epochs and resamples (demo scale)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["run"]["models"] = models
    raw["run"]["seeds"]["demo"] = seeds
    for recipe in raw["recipes"]["demo"].values():
        recipe["epochs"] = epochs
    raw["report"].update(bootstrap=bootstrap, chance_draws=20)
    raw["robustness"]["bootstrap"] = bootstrap
    raw["cost"]["minutes"]["demo"] = [1]      # every model costed on one length (the step's work, not its wiring)
    raw["optimism"]["models"]["demo"] = []    # the optimism study off unless `optimism=` turns it on
    raw["cross_gender"]["models"]["demo"] = []    # the cross-gender study too, unless `cross_gender=` turns it on
    for name, over in (synth or {}).items():
        raw["synth"][name].update(over)
    for key, over in sections.items():
        raw[key].update(over)
    return raw


WORKFLOW_FILES = ("Snakefile", "environment.yml")     # beside workflow/: the DAG and every rule's environment


def copy_workflow(source: Path, dest: Path) -> None:
    """The files Snakemake reads (the Snakefile, workflow/, the rules' conda environment) from
    `source` to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        shutil.copy(source / name, dest / name)
    shutil.copytree(source / "workflow", dest / "workflow")


def make_project(dest: Path, models: list[str], seeds: list[int], epochs: int, synth: dict[str, Any] | None = None,
                 dvc: bool = False, **sections: dict[str, Any]) -> Path:
    """The workflow files and a small params.yaml in `dest`; with `dvc`, also the DVC
    configuration and the package folder, which dvc.yaml's code dependencies name."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_workflow(ROOT, dest)
    (dest / "profiles").symlink_to("workflow/profiles")
    raw = small_params(models, seeds, epochs, synth, **sections)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if dvc:
        shutil.copytree(ROOT / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "tmp*"))
        shutil.copy(ROOT / ".dvcignore", dest / ".dvcignore")
        shutil.copytree(ROOT / "asym", dest / "asym", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def prepared(root: Path, models: list[str], epochs: int, n_samples: int = 60, **sections: dict[str, Any]) -> Any:
    """A params file in `root` with the D-Vlog demo converted and split (official folds):
    what a test needs to train without running the DAG."""
    from asym.config import load_params
    from asym.data.convert import convert
    from asym.data.parquet import read_samples
    from asym.data.splits import make_split
    from asym.data.synthetic import write_dvlog
    from asym.layout import Layout

    raw = small_params(models, [0], epochs, **sections)
    raw["run"]["datasets"] = ["dvlog"]
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(root / "params.yaml")
    lay = Layout.of(p)
    write_dvlog(Path(lay.raw_dir("dvlog")), {**p.synth.dvlog.model_dump(), "n_samples": n_samples, "seconds": [12, 24]},
                seed=4)
    convert("dvlog", Path(lay.raw_dir("dvlog")), Path(lay.parquet("dvlog")), p.readers)
    Path(lay.splits).mkdir(parents=True, exist_ok=True)
    data = Path(lay.parquet("dvlog"))
    make_split(read_samples(data), "official", p.split, data).to_csv(lay.split_csv("dvlog"), index=False)
    return p


# A plug-in's params blocks (the GRU of tests/models/test_add_a_model.py).
PLUGIN_BLOCKS = {"demo": {"gru": {"hidden": 8, "dropout": 0.1}}, "paper": {"gru": {"hidden": 64, "dropout": 0.1}}}


def plugin_project(root: Path, source: str | None, models: Any = ("asym", "gru"), plugins: Any = ("models/gru.py",),
                   blocks: dict[str, Any] | None = None, seeds: list[int] | None = None, **sections: Any) -> Path:
    """A user's project: `source` written to root/models/gru.py (when given), and root/params.yaml
    that `extends` the default, lists `plugins` and adds the plug-in's `blocks`; `sections` are
    more top-level keys. Returns the params file."""
    root.mkdir(parents=True, exist_ok=True)
    if source is not None:
        (root / "models").mkdir(exist_ok=True)
        (root / "models" / "gru.py").write_text(source)
    raw = {"extends": str(ROOT / "params.yaml"), "plugins": list(plugins) if not isinstance(plugins, str) else plugins,
           "run": {"datasets": ["dvlog"], "models": models if isinstance(models, str) else list(models),
                   **({"seeds": {"demo": seeds}} if seeds else {})},
           "model": PLUGIN_BLOCKS if blocks is None else blocks, **sections}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root / "params.yaml"


@contextlib.contextmanager
def registry_restored() -> Iterator[None]:
    """On leaving, the model registry and sys.modules are as they were: plug-ins loaded inside
    leave no model behind for the next test."""
    from asym.models import registry

    names = ("_ENTRIES", "_FAMILIES", "_DECLARED_IN", "_MODULES", "_FILES", "_DIGESTS", "_AS_FILE", "_REST")
    registry.names()                                   # the built-ins collected first
    saved = {n: getattr(registry, n).copy() for n in names}
    modules = set(sys.modules)
    try:
        yield
    finally:
        for n, value in saved.items():
            current = getattr(registry, n)
            current.clear()
            current.update(value) if not isinstance(current, list) else current.extend(value)
        for name in set(sys.modules) - modules:
            if not name.startswith(("asym", "torch", "numpy", "pandas", "pydantic", "yaml", "snakemake", "mlflow")):
                sys.modules.pop(name, None)

# --- code edits (asym.dag.code) ---------------------------------------------------------------------
MODEL_FILE = "asym/models/baselines/bilstm.py"
# A comment, a blank line and a docstring added, a docstring reworded: no job's outputs can change.
COMMENT_EDITS: dict[str, Callable[[str], str]] = {
    "asym/config.py": lambda s: s.replace('"""', '"""Reworded. ', 1).replace("\nclass ", "\n# a comment\n\nclass ", 1),
    MODEL_FILE: lambda s: s.replace("    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:\n",
                                    "    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:\n"
                                    '        """The final states."""  # a comment\n', 1),
}
# A real edit of BiLSTM's forward (the two directions' final states swapped before the head): the
# bilstm jobs' outputs change, no other model's.
REAL_EDIT: tuple[str, Callable[[str], str]] = (
    MODEL_FILE, lambda s: s.replace("return torch.cat([h[-2], h[-1]], dim=-1)", "return torch.cat([h[-1], h[-2]], dim=-1)"))


def edit(root: Path, rel: str, change: Callable[[str], str]) -> None:
    """Apply `change` to the file `rel` under `root` (it must change it)."""
    path = root / rel
    before = path.read_text()
    path.write_text(change(before))
    assert path.read_text() != before, f"{rel}: the edit no longer applies"


def edit_comments(root: Path) -> None:
    for rel, change in COMMENT_EDITS.items():
        edit(root, rel, change)


def own_package(root: Path) -> Path:
    """A copy of the package in the project `root`, to edit there (PYTHONPATH=root, or cwd=root
    with `python -m`, imports it in place of this one)."""
    import asym

    shutil.copytree(Path(asym.__file__).parent, root / "asym", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "asym"
