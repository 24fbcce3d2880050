"""The DAG's one stage table: each stage's row holds its wildcards, command, inputs, outputs, the
params keys it reads, its code and its data dependencies. A row is built from named functions,
in a section per stage (`_train_inputs`, `_train_outputs`, `_train_reads`, ...).

Both DAGs are read off this table: the Snakemake rules (workflow/rules/<step>.smk, each written
out by name and reading its row through asym.dag.snakefile) and dvc.yaml (asym.dag.dvc_yaml). What
only Snakemake needs (a job's log, message, threads, GPU slot, conda environment) is written in
the rule itself. A stage's files come from asym.layout, given wildcard values that are either
concrete (`{"dataset": "dvlog"}`, for DVC and for Snakemake's input functions) or patterns
(`{"dataset": "{dataset}"}`, for Snakemake's outputs). tests/dag checks both DAGs against the
table, the rules as written against its rows, and every step's reads of params.yaml against its
row's keys.

Each seed's resume.pt (asym.train.resume) sits beside a training stage's outputs and is never one
of them: both tools remove a job's outputs before running it again, never that file, so a killed
job goes on inside its seeds.

A training stage (its row has `seeds`) has one job per (dataset, model) that trains its seeds in
turn, or, under `train.job: per_seed`, one job per seed: the row's wildcards then end with `seed`,
the command names it (`--seeds <k>`) and the job's outputs are that seed's folder alone. The run
folders, and so every later stage's inputs, are the same either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asym.dag.code import code_deps, code_digest, format_values, module_imports, training_values
from asym.data import formats, protocols
from asym.grid import Run, cross_gender_folders, seed_folder
from asym.layout import EVAL_FILES, KEYS, PACKAGE, PLOTS, TRAIN_FILES, Layout
from asym.models import registry

if TYPE_CHECKING:
    from asym.config import Params

Wild = Mapping[str, str]                      # wildcard -> its value, or its pattern
SEED = "seed"                                 # a per-seed training job's wildcard (`train.job: per_seed`)
Files = dict[str, list[str]]                  # named groups of files


def _no_data(p: Params, w: Wild, absolute: bool) -> list[str]:
    return []


def _dataset_option(p: Params, w: Wild) -> list[str]:
    """A job of one dataset names it; a job of the whole grid takes no option."""
    return ["--dataset", w["dataset"]] if "dataset" in w else []


@dataclass(frozen=True)
class Stage:
    name: str                                  # its Snakemake rule (workflow/rules/<step>.smk)
    step: str                                  # the `asym` command it runs (and its log folder)
    wildcards: tuple[str, ...]                 # those of every job; a per-seed job's add SEED (`job_wildcards`);
                                               # explain's end with SEED (its command's --seeds)
    cells: Callable[[Params], list[dict[str, str]]]        # its jobs' wildcards, SEED aside (`instances`)
    inputs: Callable[[Params, Layout, Wild], Files]        # the DAG's own files
    outputs: Callable[[Params, Layout, Wild], Files]
    reads: Callable[[Params, Wild], list[str]]             # the dotted params keys the step reads
    modules: tuple[str, ...]                   # the step's code (with the model's, for training)
    # the dataset's format's modules it runs (named by asym.data.formats, so no import finds them)
    format_code: Callable[[Params, Wild], tuple[str, ...]] | None = None
    options: Callable[[Params, Wild], list[str]] = _dataset_option       # the command's options
    data: Callable[[Params, Wild, bool], list[str]] = _no_data    # files besides the DAG's (absolute or not)
    directories: frozenset[str] = frozenset()  # output groups that are folders
    captioned: bool = False                    # its outputs go in `snakemake --report` (asym.dag.snakefile.report_entries)
    dvc_kinds: Mapping[str, str] = field(default_factory=dict)   # output group -> metrics | plots | uncached
    protocols: tuple[str, ...] = ()            # the values of its `protocol` wildcard (a study's stage)
    # a training stage's seeds: split into one job per seed under `train.job: per_seed`
    seeds: Callable[[Params], list[int]] | None = None
    # the registry entries a step builds besides its job's `model` (the cost of every model, the
    # robustness of several): their modules are its code too
    models: Callable[[Params], list[str]] | None = None

    def per_seed(self, p: Params) -> bool:
        """Whether the stage has a job per seed (a training stage, under `train.job: per_seed`)."""
        return self.seeds is not None and p.train_job == "per_seed"

    def job_wildcards(self, p: Params) -> tuple[str, ...]:
        """Its jobs' wildcards: the row's, and SEED for a job per seed."""
        return (*self.wildcards, SEED) if self.per_seed(p) else self.wildcards

    def instances(self, p: Params) -> list[dict[str, str]]:
        """Every job's wildcard values (one per seed of each cell under `train.job: per_seed`)."""
        if not self.per_seed(p):
            return self.cells(p)
        assert self.seeds is not None
        return [{**w, SEED: str(s)} for w in self.cells(p) for s in self.seeds(p)]

    def dvc_name(self, w: Wild) -> str:
        """`train-dvlog-asym`, or a per-seed job's `train-dvlog-asym-seed0`."""
        return "-".join([self.step, *(w[k] for k in self.wildcards if k != SEED),
                         *([seed_folder(w[SEED])] if SEED in w else [])])

    def command(self, p: Params, w: Wild) -> list[str]:
        """The `asym` command line after `asym --params <file>`, ending with the digest of the code
        the job runs: both DAGs see it (Snakemake in `params:`, DVC in `cmd`), so a job reruns when
        an edit can change its outputs, and only then (asym.dag.code)."""
        return [self.step, *self.options(p, w), "--code-digest", self.code_digest(p, w)]

    def job_modules(self, p: Params, w: Wild) -> tuple[str, ...]:
        """The step's modules, with the dataset's format's (read through asym.data.formats, which
        names them, so no import finds them) and a plug-in's package imports."""
        fmt = self.format_code(p, w) if self.format_code is not None else ()
        built = [registry.get(m).target.split(":")[0] for m in self.models(p)] if self.models is not None else []
        return (*self.modules, *fmt, *built, *plugin_imports(w.get("model")))

    def code(self, p: Params, w: Wild) -> list[str]:
        """The package files whose code the job runs (what its code digest covers); a plug-in's
        training also runs the package modules its file imports (the file itself is one of the
        job's `data`: it lies outside the package)."""
        return code_deps(self.job_modules(p, w), w.get("model"))

    def code_digest(self, p: Params, w: Wild) -> str:
        """The job's code, and the defaults config parsing gives the params.yaml sections it reads:
        its cell's (a per-seed job's seed aside), so a seed's job and its cell's share one digest,
        which `asym train` checks without knowing how the DAG cut its jobs."""
        w = {k: v for k, v in w.items() if k != SEED}
        model = w.get("model")             # a training job's, or a job's that loads a trained model
        resolved = training_values(p, w["dataset"], model) if model is not None and self.seeds is not None else \
            format_values(p, w["dataset"]) if self.format_code is not None else None
        return code_digest(self.job_modules(p, w), model, {k.split(".")[0] for k in self.reads(p, w)}, resolved)


# --- the grids ----------------------------------------------------------------------------------
def optimism_protocols(p: Params) -> list[str]:
    """The optimism study's protocols: none when its model list is empty (the study is off)."""
    return list(protocols.OPTIMISM_PROTOCOLS) if p.optimism_models else []


def gender_protocols(p: Params) -> list[str]:
    """The cross-gender study's protocols: none when it is off (no models, or no dataset)."""
    return list(protocols.GENDER_PROTOCOLS) if p.cross_gender_datasets else []


def _per_gender_protocol(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d} for pr in gender_protocols(p) for d in p.cross_gender_datasets]


def _per_gender_protocol_model(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d, "model": m} for pr in gender_protocols(p) for d in p.cross_gender_datasets
            for m in p.cross_gender_models]


def gender_layout(lay: Layout, protocol: str) -> Layout:
    """The cross-gender study's layout under `protocol` (its own folders: asym.grid.cross_gender_folders)."""
    return replace(lay, **cross_gender_folders({k: getattr(lay, k) for k in KEYS}, protocol))


def _per_dataset(p: Params) -> list[dict[str, str]]:
    return [{"dataset": d} for d in p.datasets]


def _per_model(p: Params) -> list[dict[str, str]]:
    return [{"dataset": d, "model": m} for d in p.datasets for m in p.models]


def _per_protocol(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d} for pr in optimism_protocols(p) for d in p.datasets]


def _per_protocol_model(p: Params) -> list[dict[str, str]]:
    return [{"protocol": pr, "dataset": d, "model": m} for pr in optimism_protocols(p) for d in p.datasets
            for m in p.optimism_models]


def _once(p: Params) -> list[dict[str, str]]:
    return [{}]


def _run_seeds(p: Params) -> list[int]:
    return p.seeds


def _optimism_seeds(p: Params) -> list[int]:
    return p.optimism_seeds


def _cross_gender_seeds(p: Params) -> list[int]:
    return p.cross_gender_seeds


# --- what several stages share ---------------------------------------------------------------------
def _run_files(p: Params, lay: Layout, keys: tuple[str, ...]) -> list[str]:
    return [lay.run_file(r.dataset, r.model, r.seed, k) for r in p.runs() for k in keys]


def _report_files(p: Params, lay: Layout) -> dict[str, str]:
    return lay.report_outputs(p.models, p.datasets, bool(p.optimism_models), bool(p.cross_gender_datasets))


def _readers(p: Params, dataset: str) -> list[str]:
    """What the dataset's reader reads (asym.data.formats.reader_settings): its `readers` block and
    the dataset's frame rates."""
    ds = p.dataset(dataset)
    fmt = formats.get(ds.format)
    block = [f"readers.{fmt.reader_block}"] if fmt.reader_block and getattr(p.readers, fmt.reader_block) else []
    rates = fmt.frame_rates and ds.frame_rates is not None    # an absent key: the default rates
    return [*block, *([f"datasets.{dataset}.frame_rates"] if rates else [])]




def _split_settings(protocol: str) -> list[str]:
    """The `split` settings the protocol's splitter is given (asym.data.protocols)."""
    return [f"split.{k}" for k in protocols.get(protocol).settings]


def _grid(p: Params) -> list[str]:
    # run.peer_ablations only widens `run.models: all`; a list of models is read as it is
    ablations = ["run.peer_ablations"] if p.data.run.models == "all" else []
    return ["scale", "run.datasets", "run.models", *ablations, f"run.seeds.{p.scale}"]


def _optimism_models(p: Params) -> list[str]:
    """Whether the optimism study is on, and over which models."""
    return [] if p.data.optimism is None else [f"optimism.models.{p.scale}"]


def _cross_gender_models(p: Params) -> list[str]:
    """Whether the cross-gender study is on, over which models and datasets."""
    return [] if p.data.cross_gender is None else [f"cross_gender.models.{p.scale}", "cross_gender.datasets"]


def _package(rel: str, absolute: bool) -> str:
    return str(PACKAGE.parent / rel) if absolute else rel


def _user(p: Params, path: Any, absolute: bool) -> str:
    return str(p.resolve(path)) if absolute else Path(path).as_posix()


# --- training, in both grids ---------------------------------------------------------------------------
def _training_options(p: Params, w: Wild) -> list[str]:
    """A training command names its registry entry's digest: the entry's content reaches the DAGs
    as a changed command line, so editing one entry reruns only its jobs (asym.cli checks it). A
    per-seed job names its seed."""
    return ["--dataset", w["dataset"], "--model", w["model"], *(["--protocol", w["protocol"]] if "protocol" in w else []),
            *(["--seeds", w[SEED]] if SEED in w else []), "--entry-digest", registry.get(w["model"]).digest()]


def _training_reads(p: Params, w: Wild, protocol: list[str], seeds: str) -> list[str]:
    """What a training reads: the dataset's format and reader, the model's widths and recipe at
    this scale, `train`, and the key of its `protocol` and its `seeds` (not a per-seed job's: its
    command names its seed, so adding a seed reruns no other seed's job)."""
    d, entry = w["dataset"], registry.get(w["model"])
    return ["scale", f"datasets.{d}.format", *protocol, *_readers(p, d),
            f"model.{p.scale}.{entry.family}", f"recipes.{p.scale}.{entry.recipe}", "train",
            *([] if SEED in w else [seeds])]


def _job_seeds(w: Wild, seeds: list[int]) -> list[int | str]:
    """The seeds whose folders a training job writes: its own (a value, or Snakemake's `{seed}`), or all of `seeds`."""
    return [w[SEED]] if SEED in w else list(seeds)


def plugin_imports(model: str | None) -> list[str]:
    """The asym modules a plug-in model's file imports (none for a built-in, whose module the
    code walk finds itself)."""
    plugin = registry.plugin_of(model) if model is not None else None
    if plugin is None:
        return []
    return sorted(module_imports(plugin["file"]))


def _plugin_file(p: Params, w: Wild, absolute: bool) -> list[str]:
    """A plug-in model's file: a dependency of its own training jobs, and of no other job. In
    dvc.yaml relative to the folder its other relative paths are (Params.root)."""
    plugin = registry.plugin_of(w["model"])
    if plugin is None:
        return []
    return [plugin["file"] if absolute else Path(os.path.relpath(plugin["file"], p.root)).as_posix()]


# --- fetch -----------------------------------------------------------------------------------------------
def _fetch_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """None of the DAG's: the release is read where params.yaml says (a manifest is the job's data)."""
    return {}


def _fetch_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"raw": [lay.raw_dir(w["dataset"])], "provenance": [lay.provenance(w["dataset"])]}


def _fetch_reads(p: Params, w: Wild) -> list[str]:
    """The dataset's entry; for a demo, the generator's seed and its block."""
    ds = p.dataset(w["dataset"])
    return [f"datasets.{w['dataset']}", *(("synth.seed", f"synth.{ds.format}") if ds.source == "demo" else ())]


def _fetch_code(p: Params, w: Wild) -> tuple[str, ...]:
    """A demo's writer; a manifest's reader (it copies the files the manifest names); else nothing
    of the format's: a release is copied or unpacked as it is."""
    ds = p.dataset(w["dataset"])
    fmt = formats.get(ds.format)
    if ds.source == "demo":
        return (fmt.demo_module,)
    return (fmt.module,) if fmt.manifest else ()


def _fetch_data(p: Params, w: Wild, absolute: bool) -> list[str]:
    """A manifest dataset's CSV: editing it fetches the dataset again (a release's source is read once)."""
    ds = p.dataset(w["dataset"])
    if not formats.get(ds.format).manifest or ds.source == "demo" or "://" in ds.source:
        return []
    path = Path(ds.source)
    csv = path if path.suffix == ".csv" else path / formats.MANIFEST
    return [_user(p, csv, absolute)]


FETCH = Stage("fetch", "fetch", ("dataset",), _per_dataset,
              inputs=_fetch_inputs, outputs=_fetch_outputs, reads=_fetch_reads, modules=("asym.data.fetch",),
              format_code=_fetch_code, data=_fetch_data, directories=frozenset({"raw"}))


# --- convert ---------------------------------------------------------------------------------------------
def _convert_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """What fetch wrote."""
    return _fetch_outputs(p, lay, w)


def _convert_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"parquet": [lay.parquet(w["dataset"])], "card": [lay.card_json(w["dataset"])],
            "card_md": [lay.card_md(w["dataset"])]}


def _convert_reads(p: Params, w: Wild) -> list[str]:
    return [f"datasets.{w['dataset']}", *_readers(p, w["dataset"])]


def _convert_code(p: Params, w: Wild) -> tuple[str, ...]:
    return (formats.get(p.dataset(w["dataset"]).format).module,)


def _convert_data(p: Params, w: Wild, absolute: bool) -> list[str]:
    """A user's subjects CSV; one inside the fetched folder is covered by the folder."""
    ds = p.dataset(w["dataset"])
    raw = p.resolve(p.paths.raw) / w["dataset"]
    return [_user(p, ds.subjects, absolute)] if ds.subjects is not None and raw not in p.resolve(ds.subjects).parents else []


CONVERT = Stage("convert", "convert", ("dataset",), _per_dataset,
                inputs=_convert_inputs, outputs=_convert_outputs, reads=_convert_reads,
                modules=("asym.data.convert",), format_code=_convert_code, data=_convert_data)


# --- split -----------------------------------------------------------------------------------------------
def _split_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"parquet": [lay.parquet(w["dataset"])]}


def _split_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"csv": [lay.split_csv(w["dataset"])], "description": [lay.split_json(w["dataset"])]}


def _split_reads(p: Params, w: Wild) -> list[str]:
    return ["scale", f"datasets.{w['dataset']}", *_split_settings(p.protocol(w["dataset"]))]


def _split_data(p: Params, w: Wild, absolute: bool) -> list[str]:
    """The files the protocol's row names (DepMamba's published LMVD split), or a user's split CSV."""
    row, ds = protocols.get(p.protocol(w["dataset"])), p.dataset(w["dataset"])
    user = [_user(p, ds.split_csv, absolute)] if row.split_csv and ds.split_csv is not None else []
    return [*(_package(f, absolute) for f in row.files), *user]


SPLIT = Stage("split", "split", ("dataset",), _per_dataset,
              inputs=_split_inputs, outputs=_split_outputs, reads=_split_reads, modules=("asym.data.splits",),
              data=_split_data)


# --- train -----------------------------------------------------------------------------------------------
def _train_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"data": [lay.parquet(w["dataset"])], "split": [lay.split_csv(w["dataset"])]}


def _train_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return lay.train_outputs(w["dataset"], w["model"], _job_seeds(w, p.seeds))


def _train_reads(p: Params, w: Wild) -> list[str]:
    """Its dataset's protocol (the split it trains on) and the run's seeds. `mlflow` is read too
    (with `mlflow.live` every epoch is logged to MLflow as it goes) and left out: it changes no
    file, so turning it on reruns nothing."""
    return _training_reads(p, w, [f"datasets.{w['dataset']}.protocol"], f"run.seeds.{p.scale}")


TRAIN = Stage("train", "train", ("dataset", "model"), _per_model,
              inputs=_train_inputs, outputs=_train_outputs, reads=_train_reads, modules=("asym.train.job",),
              options=_training_options, data=_plugin_file, seeds=_run_seeds)


# --- the optimism study: split and train again under each of its protocols -----------------------------------
def _split_optimism_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return _split_inputs(p, lay, w)


def _split_optimism_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    folders = lay.for_optimism(w["protocol"])
    return {"csv": [folders.split_csv(w["dataset"])], "description": [folders.split_json(w["dataset"])]}


def _split_optimism_reads(p: Params, w: Wild) -> list[str]:
    """The protocol's settings; the dataset's entry names another protocol, so it is not read."""
    return ["scale", *_split_settings(w["protocol"])]


def _split_optimism_options(p: Params, w: Wild) -> list[str]:
    return ["--dataset", w["dataset"], "--protocol", w["protocol"]]


SPLIT_OPTIMISM = Stage("split_optimism", "split", ("protocol", "dataset"), _per_protocol,
                       inputs=_split_optimism_inputs, outputs=_split_optimism_outputs, reads=_split_optimism_reads,
                       modules=("asym.data.splits",), options=_split_optimism_options,
                       protocols=protocols.OPTIMISM_PROTOCOLS)


def _train_optimism_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"data": [lay.parquet(w["dataset"])], "split": [lay.for_optimism(w["protocol"]).split_csv(w["dataset"])]}


def _train_optimism_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return lay.for_optimism(w["protocol"]).train_outputs(w["dataset"], w["model"], _job_seeds(w, p.optimism_seeds))


def _train_optimism_reads(p: Params, w: Wild) -> list[str]:
    """The study's seeds; its protocol is the command's, so the dataset's is not read."""
    return _training_reads(p, w, [], f"optimism.seeds.{p.scale}")


TRAIN_OPTIMISM = Stage("train_optimism", "train", ("protocol", "dataset", "model"), _per_protocol_model,
                       inputs=_train_optimism_inputs, outputs=_train_optimism_outputs, reads=_train_optimism_reads,
                       modules=("asym.train.job",), options=_training_options, data=_plugin_file,
                       protocols=protocols.OPTIMISM_PROTOCOLS, seeds=_optimism_seeds)


# --- the cross-gender study: split and train again under each by-gender protocol ------------------------------
def _split_cross_gender_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    folders = gender_layout(lay, w["protocol"])
    return {"csv": [folders.split_csv(w["dataset"])], "description": [folders.split_json(w["dataset"])]}


SPLIT_CROSS_GENDER = Stage("split_cross_gender", "split", ("protocol", "dataset"), _per_gender_protocol,
                           inputs=_split_inputs, outputs=_split_cross_gender_outputs, reads=_split_optimism_reads,
                           modules=("asym.data.splits",), options=_split_optimism_options,
                           protocols=protocols.GENDER_PROTOCOLS)


def _train_cross_gender_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"data": [lay.parquet(w["dataset"])], "split": [gender_layout(lay, w["protocol"]).split_csv(w["dataset"])]}


def _train_cross_gender_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return gender_layout(lay, w["protocol"]).train_outputs(w["dataset"], w["model"], _job_seeds(w, p.cross_gender_seeds))


def _train_cross_gender_reads(p: Params, w: Wild) -> list[str]:
    """The study's seeds; its protocol is the command's, so the dataset's is not read."""
    return _training_reads(p, w, [], f"cross_gender.seeds.{p.scale}")


TRAIN_CROSS_GENDER = Stage("train_cross_gender", "train", ("protocol", "dataset", "model"), _per_gender_protocol_model,
                           inputs=_train_cross_gender_inputs, outputs=_train_cross_gender_outputs,
                           reads=_train_cross_gender_reads, modules=("asym.train.job",), options=_training_options,
                           data=_plugin_file, protocols=protocols.GENDER_PROTOCOLS, seeds=_cross_gender_seeds)


# --- evaluate --------------------------------------------------------------------------------------------
def _evaluate_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"predictions": _run_files(p, lay, ("predictions",)), "summaries": _run_files(p, lay, ("summary",))}


def _evaluate_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"metrics": _run_files(p, lay, ("metrics",)), "confusion": _run_files(p, lay, ("confusion",))}


def _evaluate_reads(p: Params, w: Wild) -> list[str]:
    return _grid(p)


EVALUATE = Stage("evaluate", "evaluate", (), _once,
                 inputs=_evaluate_inputs, outputs=_evaluate_outputs, reads=_evaluate_reads, modules=("asym.evaluate",),
                 dvc_kinds={"metrics": "metrics"})


# --- report ----------------------------------------------------------------------------------------------
def optimism_reads(p: Params, lay: Layout) -> list[str]:
    """What the report reads of the optimism study: every run's predictions and train.json, each
    select-on-test run's epochs (its selection is made again inside the bootstrap:
    asym.report.optimism), and the splits."""
    read: set[str] = set()
    for pr in optimism_protocols(p):
        sl = lay.for_optimism(pr)
        keys = ("predictions", "summary", *(("epochs",) if protocols.get(pr).optimistic else ()))
        read |= {sl.run_file(r.dataset, r.model, r.seed, k) for r in p.for_optimism(pr).runs() for k in keys}
        read |= {f for d in p.datasets for f in (sl.split_csv(d), sl.split_json(d))}
    return sorted(read)


def cross_gender_reads(p: Params, lay: Layout) -> list[str]:
    """What the report reads of the cross-gender study: every run's predictions and train.json, and the splits."""
    read: set[str] = set()
    for pr in gender_protocols(p):
        sl = gender_layout(lay, pr)
        read |= {sl.run_file(r.dataset, r.model, r.seed, k) for r in p.for_cross_gender(pr).runs()
                 for k in ("predictions", "summary")}
        read |= {f for d in p.cross_gender_datasets for f in (sl.split_csv(d), sl.split_json(d))}
    return sorted(read)


def _report_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"metrics": _run_files(p, lay, ("metrics",)), "predictions": _run_files(p, lay, ("predictions",)),
            "summaries": _run_files(p, lay, ("summary",)),
            "splits": [lay.split_json(d) for d in p.datasets] + [lay.split_csv(d) for d in p.datasets],
            "cards": [lay.card_json(d) for d in p.datasets],         # the model cards' training-data section
            "optimism": optimism_reads(p, lay), "cross_gender": cross_gender_reads(p, lay)}


def _report_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {k: [f] for k, f in _report_files(p, lay).items()}


def _paper_sizes(p: Params) -> list[str]:
    """Below paper scale, the model cards count each model at its paper-scale widths too."""
    if p.scale == "paper":
        return []
    return sorted({f"model.paper.{registry.get(m).family}" for m in p.models})


def _optimism_report(p: Params) -> list[str]:
    """The optimism study's table when it is on (with the k of its folds); when it is off, what says so."""
    return ["optimism", "split.kfold"] if p.optimism_models else _optimism_models(p)


def _cross_gender_report(p: Params) -> list[str]:
    """The cross-gender study's table when it is on (with its protocols' settings); when it is off, what says so."""
    return ["cross_gender", "split.gender"] if p.cross_gender_datasets else _cross_gender_models(p)


def _report_reads(p: Params, w: Wild) -> list[str]:
    return ["scale", "run", "report", *(f"datasets.{d}.{k}" for d in p.datasets for k in ("protocol", "source")),
            *_paper_sizes(p), *_optimism_report(p), *_cross_gender_report(p)]


def _report_data(p: Params, w: Wild, absolute: bool) -> list[str]:
    """The published results the comparison table and figure stand beside."""
    return [_package("asym/reference/published_results.csv", absolute)]


REPORT = Stage("report", "report", (), _once,
               inputs=_report_inputs, outputs=_report_outputs, reads=_report_reads, modules=("asym.report.build",),
               data=_report_data, captioned=True, dvc_kinds={**{k: "plots" for k in PLOTS}, "summary_json": "metrics"})


# --- track -----------------------------------------------------------------------------------------------
def _study_outputs(p: Params, lay: Layout, stage: Stage) -> list[str]:
    return [f for w in stage.cells(p) for files in stage.outputs(p, lay, w).values() for f in files]


def _track_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """Every run, the report, and what robustness, cost and explain wrote (those the params turn on)."""
    return {"runs": _run_files(p, lay, (*TRAIN_FILES, *EVAL_FILES)),
            "data": [lay.parquet(d) for d in p.datasets],             # each run's input dataset, by digest
            "report": list(_report_files(p, lay).values()),
            **{s.name: _study_outputs(p, lay, s) for s in (ROBUSTNESS, COST, COST_PLOT, EXPLAIN)}}


def _track_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"record": [lay.tracking_record()]}


def _track_reads(p: Params, w: Wild) -> list[str]:
    """The runs, and the runs explained (robustness and cost reach it as their files)."""
    explain = [f"explain.{k}.{p.scale}" for k in ("models", "seeds")] if p.data.explain is not None else []
    return ["mlflow", *_grid(p), *_optimism_models(p), *_cross_gender_models(p), *explain]


TRACK = Stage("track", "track", (), _once,
              inputs=_track_inputs, outputs=_track_outputs, reads=_track_reads,
              # the MLflow Model's code, run by path
              modules=("asym.tracking.track", "asym.tracking.mlflow_pyfunc"), dvc_kinds={"record": "uncached"})


# --- robustness ------------------------------------------------------------------------------------------
def _robustness_runs(p: Params) -> list[Run]:
    """The runs `asym robustness` perturbs: those of robustness.models (asym.config.Params.robustness_models)."""
    models = p.robustness_models
    return [r for r in p.runs() if r.model in models]


def _if_robustness(p: Params) -> list[dict[str, str]]:
    """One job, when params has a `robustness` block."""
    return _once(p) if p.data.robustness is not None else []


def _robustness_models(p: Params) -> list[str]:
    return p.robustness_models


def _robustness_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """Each dataset's table and split, and each perturbed run's checkpoint, predictions and train.json
    (its training alone: no evaluation)."""
    runs = _robustness_runs(p)
    return {"data": [lay.parquet(d) for d in p.datasets],
            "splits": [f for d in p.datasets for f in (lay.split_csv(d), lay.split_json(d))],
            **{k: [lay.run_file(r.dataset, r.model, r.seed, k) for r in runs] for k in ("checkpoint", "predictions",
                                                                                       "summary")}}


def _robustness_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {k: [f] for k, f in lay.robustness_outputs(p.datasets).items()}


def _robustness_reads(p: Params, w: Wild) -> list[str]:
    return ["robustness", *_grid(p), *(f"datasets.{d}.protocol" for d in p.datasets), "train.device", "train.threads"]


ROBUSTNESS = Stage("robustness", "robustness", (), _if_robustness,
                   inputs=_robustness_inputs, outputs=_robustness_outputs, reads=_robustness_reads,
                   modules=("asym.robustness",), captioned=True, models=_robustness_models)


# --- cost ------------------------------------------------------------------------------------------------
def _if_cost(p: Params) -> list[dict[str, str]]:
    """One job, when params has a `cost` block."""
    return _once(p) if p.data.cost is not None else []


def _cost_models(p: Params) -> list[str]:
    """Every registered model (asym.cost.model_names: the built-ins and the params' plug-ins)."""
    return registry.names(modules=[*registry.builtins(), *p.plugins])


def _cost_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """No run: a dataset card only where the format's widths come from its data (asym.cost.widths_of)."""
    return {"cards": [lay.card_json(d) for d in p.datasets if formats.get(p.dataset(d).format).widths is None]}


def _cost_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {k: [f] for k, f in lay.cost_outputs().items()}


def _cost_reads(p: Params, w: Wild) -> list[str]:
    return ["cost", "scale", "run.datasets", *(f"datasets.{d}.format" for d in p.datasets), f"model.{p.scale}"]


COST = Stage("cost", "cost", (), _if_cost, inputs=_cost_inputs, outputs=_cost_outputs, reads=_cost_reads,
             modules=("asym.cost", "asym.report.cost"), captioned=True, models=_cost_models)


def _cost_plot_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """The cost table's CSV and the report's summary."""
    return {k: [f] for k, f in lay.cost_plot_inputs().items()}


def _cost_plot_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {"cost_png": [lay.cost_plot()]}


def _cost_plot_reads(p: Params, w: Wild) -> list[str]:
    return []


COST_PLOT = Stage("cost_plot", "cost-plot", (), _if_cost, inputs=_cost_plot_inputs, outputs=_cost_plot_outputs,
                  reads=_cost_plot_reads, modules=("asym.report.cost",), captioned=True,
                  dvc_kinds={"cost_png": "plots"})


# --- explain ---------------------------------------------------------------------------------------------
def _per_explained_run(p: Params) -> list[dict[str, str]]:
    """One job per run of explain.models and explain.seeds (none without an `explain` block)."""
    runs = p.explain_runs() if p.data.explain is not None else []
    return [{"dataset": r.dataset, "model": r.model, SEED: str(r.seed)} for r in runs]


def _explain_inputs(p: Params, lay: Layout, w: Wild) -> Files:
    """The dataset's table and split, and the run's checkpoint (with train.json, which marks it complete)."""
    d, m, k = w["dataset"], w["model"], w[SEED]
    return {"data": [lay.parquet(d)], "split": [lay.split_csv(d)],
            "run": [lay.run_file(d, m, k, key) for key in TRAIN_FILES]}


def _explain_outputs(p: Params, lay: Layout, w: Wild) -> Files:
    return {k: [Path(f).as_posix()] for k, f in lay.explain_outputs(w["dataset"], w["model"], w[SEED]).items()}


def _explain_reads(p: Params, w: Wild) -> list[str]:
    """The runs of the grid it picks from (their seeds), and D-Vlog's landmark order (asym.explain.groups)."""
    extract = ["extract.landmark_order"] if p.data.extract is not None else []
    return ["explain", "scale", f"run.seeds.{p.scale}", f"datasets.{w['dataset']}.protocol", "train.device",
            "train.threads", *extract]


def _explain_options(p: Params, w: Wild) -> list[str]:
    return ["--dataset", w["dataset"], "--model", w["model"], "--seeds", w[SEED]]


EXPLAIN = Stage("explain", "explain", ("dataset", "model", SEED), _per_explained_run,
                inputs=_explain_inputs, outputs=_explain_outputs, reads=_explain_reads, modules=("asym.explain.run",),
                options=_explain_options, data=_plugin_file, directories=frozenset({"timelines"}), captioned=True,
                dvc_kinds={"json": "metrics"})


# --- the table -------------------------------------------------------------------------------------------
STAGES: tuple[Stage, ...] = (FETCH, CONVERT, SPLIT, TRAIN, SPLIT_OPTIMISM, TRAIN_OPTIMISM, SPLIT_CROSS_GENDER,
                             TRAIN_CROSS_GENDER, EVALUATE, REPORT, ROBUSTNESS, COST, COST_PLOT, EXPLAIN, TRACK)
BY_NAME = {s.name: s for s in STAGES}


def get(name: str) -> Stage:
    return BY_NAME[name]


def of_command(step: str, wildcards: Wild) -> Stage | None:
    """The stage whose jobs run `asym <step>` with these wildcards' options (train with an
    optimism study's --protocol is train_optimism's, with a by-gender one train_cross_gender's), or None.
    A seed is none of them (a per-seed training job's, an explained run's): its code is its stage's,
    whatever the seed."""
    given = {k for k, v in wildcards.items() if v is not None}
    return next((s for s in STAGES if s.step == step and set(s.wildcards) - {SEED} == given
                 and ("protocol" not in given or wildcards["protocol"] in s.protocols)), None)
