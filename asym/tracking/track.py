"""MLflow: every finished run logged from its files, exactly once, by one `track` step.

Training jobs write files only; `asym track` then gives each (dataset, model, seed) exactly one
FINISHED MLflow run, with its real start and end times, params, tags, per-epoch curves, test
metrics, input dataset and artifacts, plus one `report` run with the tables. Runs are keyed by
a job-key tag and fingerprinted by the content of their files: a rerun of the step changes
nothing, a retrained seed replaces its run, and an unfinished predecessor (a live run of a
killed job) is deleted. With `mlflow.live: true`, training jobs also log their curves while
they run (for long GPU runs); `track` then completes that run instead of creating another.

SQLite allows one writer at a time and MLflow surfaces "database is locked" as a failure, so
every write goes through an inter-process file lock beside the store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from asym.grid import Run
from asym.io import read_json, write_json
from asym.layout import EVAL_FILES, TRAIN_FILES, Layout
from asym.train.observe import TrainObserver

if TYPE_CHECKING:
    from asym.config import Params

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

JOB_KEY, UID, STAGE = "asym.job_key", "asym.uid", "asym.stage"
# What a tracked training run holds beyond its files; part of its fingerprint (`asym.uid`), so a
# run logged by an older asym is logged again. 2: its MLflow Model (`model/`).
LOGGED_FORMAT = 2
# The experiment's kind in MLflow's own terms (shown on its page; MLflow 3.17's UI still opens on the
# GenAI view unless the address asks for the machine-learning one, see `ui_address`).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def tracking_uri(params: Params) -> str:
    uri = params.mlflow.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(params.resolve(uri[len("sqlite:///"):]))
    return uri


def ui_address(params: Params, host: str, port: int) -> str:
    """Where `mlflow ui` shows this experiment's training runs. MLflow 3.17 opens an experiment on
    the GenAI view whatever its kind tag says, unless the address asks for the machine-learning
    one (its `workflowType` parameter)."""
    from mlflow.tracking import MlflowClient

    base = f"http://{host}:{port}"
    exp = MlflowClient(tracking_uri=tracking_uri(params)).get_experiment_by_name(params.mlflow.experiment)
    return base if exp is None else f"{base}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"


def lock_path(params: Params) -> Path:
    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):] + ".lock")
    return params.path_of("runs") / ".mlflow.lock"


@contextlib.contextmanager
def client(params: Params) -> Iterator[tuple[Any, str]]:
    """A client and the experiment id, inside the store's write lock."""
    from mlflow.tracking import MlflowClient

    lock = lock_path(params)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=params.mlflow.lock_timeout_s):
        c = MlflowClient(tracking_uri=tracking_uri(params))
        exp = c.get_experiment_by_name(params.mlflow.experiment)
        if exp is None:
            root = params.resolve(params.mlflow.artifact_root)
            root.mkdir(parents=True, exist_ok=True)
            exp_id = c.create_experiment(params.mlflow.experiment, artifact_location=root.as_uri(), tags=EXPERIMENT_KIND)
        else:
            exp_id = exp.experiment_id
            if exp.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
                for k, v in EXPERIMENT_KIND.items():
                    c.set_experiment_tag(exp_id, k, v)
        yield c, exp_id


def flat(prefix: str, d: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flat(key, v))
        else:
            out[key] = str(v)[:6000]
    return out


def file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _table_facts(path: Path, mtime_ns: int, size: int) -> tuple[str, str]:
    """Digest and schema of a dataset's Parquet, read once per version of the file."""
    return file_digest(path), _parquet_schema(path)


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _runs_with_key(c: Any, exp_id: str, key: str) -> list[Any]:
    return c.search_runs([exp_id], filter_string=f"tags.`{JOB_KEY}` = '{key}'", max_results=100)


def _runs_by_key(c: Any, exp_id: str) -> dict[str, list[Any]]:
    """Every run of the experiment that carries a job key, grouped by it."""
    out: dict[str, list[Any]] = {}
    token = None
    while True:
        page = c.search_runs([exp_id], filter_string=f"tags.`{JOB_KEY}` != ''", max_results=1000, page_token=token)
        for r in page:
            out.setdefault(r.data.tags[JOB_KEY], []).append(r)
        token = page.token
        if not token:
            return out


def _batches(c: Any, run_id: str, params: Mapping[str, str] = (), metrics: list[Any] = ()) -> None:
    from mlflow.entities import Param

    ps = [Param(k, v) for k, v in dict(params).items()]
    for i in range(0, len(ps), 100):
        c.log_batch(run_id, params=ps[i: i + 100])
    metrics = list(metrics)
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i: i + 1000])


def _history_metrics(history_csv: Path, stamp: int) -> list[Any]:
    import pandas as pd
    from mlflow.entities import Metric

    hist = pd.read_csv(history_csv)
    several = hist["partition"].nunique() > 1
    out = []
    for row in hist.to_dict("records"):
        prefix = f"p{int(row['partition'])}." if several else ""
        for k, v in row.items():
            if k not in ("epoch", "partition") and v == v:
                out.append(Metric(prefix + k, float(v), stamp, int(row["epoch"])))
    return out


def _parquet_schema(parquet: Path) -> str:
    """The file's own columns and Arrow types, under the key MLflow's UI reads as a column schema
    (it shows the types as written: "int8", "list<element: fixed_size_list<element: float>[25]>")."""
    import pyarrow.parquet as pq

    return json.dumps({"mlflow_colspec": [{"name": f.name, "type": str(f.type)} for f in pq.read_schema(parquet)]})


def _dataset_input(params: Params, dataset: str, summary: dict[str, Any]) -> Any:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    parquet = Path(Layout.of(params).parquet(dataset))
    profile = {"n_train": summary["n_train"], "n_valid": summary["n_valid"], "n_test": summary["n_test"],
               "protocol": summary.get("protocol")}
    stat = parquet.stat()
    digest, schema = _table_facts(parquet, stat.st_mtime_ns, stat.st_size)
    ds = Dataset(name=dataset, digest=digest, source_type="local", source=parquet.as_uri(), schema=schema,
                 profile=json.dumps(profile))
    return DatasetInput(dataset=ds, tags=[InputTag("mlflow.data.context", "training")])


def _tags(params: Params, summary: dict[str, Any], key: str, commit: str | None) -> dict[str, str]:
    tags = {JOB_KEY: key, STAGE: "train", "dataset": summary["dataset"], "model": summary["model"],
            "seed": str(summary["seed"]), "scale": summary["scale"], "recipe": summary["recipe_name"],
            "kind": summary["kind"], "protocol": str(summary.get("protocol")),
            "mlflow.source.name": "asym train", "mlflow.source.type": "LOCAL", "mlflow.user": os.environ.get("USER", "asym")}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if summary.get("plugin"):            # a model of the user's own, outside the package
        tags.update({"plugin": summary["plugin"]["file"], "plugin_sha256": summary["plugin"]["sha256"]})
    return tags


def track_run(c: Any, exp_id: str, params: Params, run_dir: Path, commit: str | None,
              existing: list[Any] | None = None) -> str:
    """Ensure one FINISHED MLflow run mirrors this run folder; return its id. `existing`: the
    runs already under this job key, when the caller has searched for them."""
    from mlflow.entities import Metric, RunStatus

    summary = read_json(run_dir / TRAIN_FILES["summary"])
    metrics = read_json(run_dir / EVAL_FILES["metrics"])
    key = Run(summary["dataset"], summary["model"], int(summary["seed"])).key
    uid = run_uid(run_dir)
    train_uid = file_digest(run_dir / TRAIN_FILES["summary"])
    live = None
    for r in _runs_with_key(c, exp_id, key) if existing is None else existing:
        done = r.info.status == "FINISHED"
        if done and r.data.tags.get(UID) == uid:
            if not has_model(c, r.info.run_id):                     # its model/ removed from the store
                log_run_model(c, r.info.run_id, run_dir)
            return r.info.run_id                                    # already mirrors these files
        if done and r.data.tags.get("asym.train_uid") == train_uid and live is None and UID not in r.data.tags:
            live = r                                                # a live run of this very training
            continue
        c.delete_run(r.info.run_id)                                 # stale or unfinished: replaced
    start, end = int(summary["started_at"] * 1000), int(summary["finished_at"] * 1000)
    if live is None:
        run = c.create_run(exp_id, start_time=start, run_name=key, tags=_tags(params, summary, key, commit))
        rid = run.info.run_id
        _batches(c, rid, flat("", {"recipe": summary["recipe"], "model_config": summary["model_config"],
                                   "n_params": summary["n_params"], "device": summary["device"],
                                   "precision": summary["precision"], "epochs": summary["epochs"]}),
                 _history_metrics(run_dir / TRAIN_FILES["history"], start))
        c.log_inputs(rid, datasets=[_dataset_input(params, summary["dataset"], summary)])
    else:
        rid = live.info.run_id
    stamp = end
    evals = [Metric(f"test_{k}", float(v), stamp, 0) for k, v in metrics["test"].items() if isinstance(v, int | float)]
    evals += [Metric(f"selected_valid_{k}", float(v), stamp, 0) for k, v in metrics["valid"].items()
              if isinstance(v, int | float)]
    _batches(c, rid, metrics=[m for m in evals if m.value == m.value])
    for name in (*TRAIN_FILES.values(), *EVAL_FILES.values()):
        if name != TRAIN_FILES["checkpoint"]:
            c.log_artifact(rid, str(run_dir / name))
    log_run_model(c, rid, run_dir)
    c.set_tag(rid, UID, uid)
    c.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED), end_time=end)
    return rid


def run_uid(run_dir: Path) -> str:
    """The fingerprint of what a tracked run mirrors: its files, and what asym logs of them."""
    files = file_digest(run_dir / TRAIN_FILES["summary"], run_dir / EVAL_FILES["metrics"],
                        run_dir / TRAIN_FILES["checkpoint"])
    return hashlib.sha256(f"{files}/{LOGGED_FORMAT}".encode()).hexdigest()[:16]


def track_report(c: Any, exp_id: str, params: Params, files: dict[str, Path], commit: str | None) -> str:
    import pandas as pd
    from mlflow.entities import Metric, RunStatus

    summary_csv = files["summary_csv"]
    uid = file_digest(*[p for p in files.values() if p.is_file()])
    for r in _runs_with_key(c, exp_id, "report"):
        if r.info.status == "FINISHED" and r.data.tags.get(UID) == uid:
            return r.info.run_id
        c.delete_run(r.info.run_id)
    now = int(time.time() * 1000)
    tags = {JOB_KEY: "report", STAGE: "report", "scale": params.scale, "mlflow.source.name": "asym report",
            "mlflow.source.type": "LOCAL", **({"mlflow.source.git.commit": commit} if commit else {})}
    run = c.create_run(exp_id, start_time=int(summary_csv.stat().st_mtime * 1000), run_name="report", tags=tags)
    rid = run.info.run_id
    summary = pd.read_csv(summary_csv)
    macro = summary[summary["dataset"] == ("macro-avg" if "macro-avg" in set(summary["dataset"]) else params.datasets[0])]
    ms = [Metric(f"{r['model']}.{k}", float(r[k]), now, 0) for r in macro.to_dict("records")
          for k in ("accuracy", "precision", "recall", "f1", "f1_weighted", "auroc") if r[k] == r[k]]
    _batches(c, rid, flat("", {"scale": params.scale, "seeds": params.seeds, "datasets": params.datasets,
                               "models": params.models}), ms)
    for path in files.values():
        if path.is_file():
            c.log_artifact(rid, str(path))
    c.set_tag(rid, UID, uid)
    c.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED), end_time=now)
    return rid


def track_files(c: Any, exp_id: str, params: Params, key: str, files: Mapping[str, Path], commit: str | None,
                metrics: Mapping[str, float], tags: Mapping[str, str] = (), folders: Sequence[Path] = ()) -> str:
    """One FINISHED run under job key `key` mirroring a step's files (and `folders`, whole) with
    `metrics`: kept while its files are the same (their digest is its uid), else replaced, as the
    report's run is."""
    from mlflow.entities import Metric, RunStatus

    present = [p for p in files.values() if p.is_file()]
    shown = [f for d in folders if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    uid = hashlib.sha256(f"{file_digest(*present, *shown)}/{LOGGED_FORMAT}".encode()).hexdigest()[:16]
    for r in _runs_with_key(c, exp_id, key):
        if r.info.status == "FINISHED" and r.data.tags.get(UID) == uid:
            return r.info.run_id
        c.delete_run(r.info.run_id)
    now = int(time.time() * 1000)
    step = key.split("/")[0]
    run = c.create_run(exp_id, start_time=int(max(p.stat().st_mtime for p in present) * 1000), run_name=key,
                       tags={JOB_KEY: key, STAGE: step, "scale": params.scale, "mlflow.source.name": f"asym {step}",
                             "mlflow.source.type": "LOCAL", **({"mlflow.source.git.commit": commit} if commit else {}),
                             **dict(tags)})
    rid = run.info.run_id
    _batches(c, rid, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if float(v) == float(v)])
    for path in present:
        c.log_artifact(rid, str(path))
    for folder in folders:
        if folder.is_dir():
            c.log_artifacts(rid, str(folder), artifact_path=folder.name)
    c.set_tag(rid, UID, uid)
    c.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED), end_time=now)
    return rid


def robustness_metrics(csv: Path) -> dict[str, float]:
    """`<dataset>.<model>.<kind>.<relative_robustness|retained|effective_robustness>` of the summary rows."""
    import pandas as pd

    rows = pd.read_csv(csv)
    rows = rows[rows["table"] == "summary"]
    return {f"{r['dataset']}.{r['model']}.{r['kind']}.{k}": float(r[k]) for r in rows.to_dict("records")
            for k in ("relative_robustness", "retained", "effective_robustness")}


def cost_metrics(csv: Path) -> dict[str, float]:
    """`<dataset>.<model>.params`, and `.macs_per_min` and `.peak_mb` at each vlog length (`<minutes>min.`)."""
    import pandas as pd

    out: dict[str, float] = {}
    for r in pd.read_csv(csv).to_dict("records"):
        out[f"{r['dataset']}.{r['model']}.params"] = float(r["params"])
        for k in ("macs_per_min", "latency_ms_per_min", "peak_mb"):
            out[f"{r['dataset']}.{r['model']}.{r['minutes']:g}min.{k}"] = float(r[k])
    return out


def explain_metrics(headline: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of an explanation's JSON (asym.explain.run.headline), nested keys joined by `.`."""
    return {k: float(v) for k, v in flat("", headline).items() if _is_number(v)}


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def track_studies(c: Any, exp_id: str, params: Params, record: Mapping[str, str], commit: str | None) -> dict[str, str]:
    """The robustness and cost tables, one run each, and each explained run's files, a run of its
    own tagged with the training run it explains: those the params turn on whose files are there."""
    layout = Layout.of(params)
    out: dict[str, str] = {}
    if params.data.robustness is not None:
        files = {k: Path(f) for k, f in layout.robustness_outputs(params.datasets).items()}
        if all(p.is_file() for p in files.values()):
            out["robustness"] = track_files(c, exp_id, params, "robustness", files, commit,
                                            robustness_metrics(files["robustness_csv"]))
    if params.data.cost is not None:
        files = {**{k: Path(f) for k, f in layout.cost_outputs().items()}, "cost_png": Path(layout.cost_plot())}
        if files["cost_csv"].is_file():
            out["cost"] = track_files(c, exp_id, params, "cost", files, commit, cost_metrics(files["cost_csv"]))
    for run in params.explain_runs() if params.data.explain is not None else []:
        files = {k: Path(f) for k, f in layout.explain_outputs(run.dataset, run.model, run.seed).items()}
        folder = files.pop("timelines")
        if files["json"].is_file():
            key = f"explain/{run.key}"
            out[key] = track_files(c, exp_id, params, key, files, commit, explain_metrics(read_json(files["json"])),
                                   {"dataset": run.dataset, "model": run.model, "seed": str(run.seed),
                                    **({"asym.train_run": record[run.key]} if run.key in record else {})}, [folder])
    return out


def track_all(params: Params) -> dict[str, str]:
    """The `track` step: one run per (dataset, model, seed), one report run, and one run per study
    output (robustness, cost, each explanation)."""
    from tqdm import tqdm

    layout = Layout.of(params)
    commit = _git_commit(params.root)
    record: dict[str, str] = {}
    with client(params) as (c, exp_id):
        by_key = _runs_by_key(c, exp_id)                  # one search, not one per run
        for run in tqdm(params.runs(), desc="mlflow", unit="run", leave=False, disable=None):
            record[run.key] = track_run(c, exp_id, params, layout.run(run).folder, commit, by_key.get(run.key, []))
        files = {k: Path(v) for k, v in layout.report_outputs(params.models, params.datasets,
                                                              optimism=bool(params.optimism_models),
                                                              cross_gender=bool(params.cross_gender_datasets)).items()}
        record["report"] = track_report(c, exp_id, params, files, commit)
        record.update(track_studies(c, exp_id, params, record, commit))
        register_models(c, params, record)
    write_json(layout.tracking_record(), record)
    return record


# --- MLflow Models and the Model Registry --------------------------------------------------------
DESCRIPTION_LIMIT = 5000         # characters of a registered version's description in MLflow's SQL store
# room kept, below that limit, for the line that says where the whole card is
DESCRIPTION_TAIL = 200


def log_run_model(c: Any, rid: str, run_dir: Path) -> None:
    """The run's model as an MLflow Model under its artifacts (`model/`)."""
    import tempfile

    from asym.tracking.mlflow_model import MODEL_PATH, save_run_model

    with tempfile.TemporaryDirectory() as tmp:
        dest = save_run_model(run_dir, Path(tmp) / MODEL_PATH)
        c.log_artifacts(rid, str(dest), artifact_path=MODEL_PATH)


def has_model(c: Any, rid: str) -> bool:
    """Whether the run's artifacts hold its MLflow Model (`model/MLmodel`)."""
    from asym.tracking.mlflow_model import MODEL_PATH

    return any(Path(f.path).name == "MLmodel" for f in c.list_artifacts(rid, MODEL_PATH))


def chosen_seed(params: Params, dataset: str, model: str) -> int:
    """The seed whose checkpoints scored best on validation (mean over partitions; ties: lowest seed)."""
    import numpy as np

    lay = Layout.of(params)
    scores = {run.seed: float(np.mean(read_json(lay.run(run).file("summary"))["best_valid_selection"]))
              for run in params.runs(dataset, model)}
    return max(sorted(scores), key=lambda s: scores[s])


def registered_name(dataset: str, model: str) -> str:
    return f"asym-{dataset}-{model}"


def register_models(c: Any, params: Params, record: dict[str, str]) -> dict[str, str]:
    """Per (dataset, model): the seed chosen on validation as a version of `asym-<dataset>-<model>`,
    tagged with its test metrics, its model card as description. A version that already holds this
    run and card is kept; `models:/<name>/<version>` loads it. Refused, never registered empty: a
    missing model card (`asym report` writes it) or a run without its logged model."""
    from mlflow.exceptions import MlflowException

    from asym.errors import DataError
    from asym.tracking.mlflow_model import MODEL_PATH

    lay = Layout.of(params)
    out = {}
    for d in params.datasets:
        for m in params.models:
            run = Run(d, m, chosen_seed(params, d, m))
            files = lay.run(run)
            rid, name = record[run.key], registered_name(d, m)
            card_path = Path(lay.model_card(d, m))
            if not card_path.is_file():
                raise DataError(card_path, "missing model card: `asym report` writes it before `asym track`")
            card = card_path.read_text(encoding="utf-8")
            if not has_model(c, rid):
                raise DataError(files.folder, f"its MLflow run {rid} has no logged model "
                                f"({MODEL_PATH}/MLmodel): not registered; run `asym track` again")
            metrics = read_json(files.file("metrics"))["test"]
            tags = {"seed": str(run.seed), "dataset": d, "model": m, "selected_on": "validation",
                    **{f"test_{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, int | float)}}
            uid = hashlib.sha256(json.dumps([rid, card, tags], sort_keys=True).encode()).hexdigest()[:16]
            try:
                c.create_registered_model(name, description=f"asym: {m} trained on {d} (research use only; not a "
                                          "diagnostic tool). Each version: the seed chosen on validation.")
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            same = [v for v in c.search_model_versions(f"name = '{name}'") if v.tags.get(UID) == uid]
            if same:
                out[name] = same[0].version
                continue
            c.log_artifact(rid, str(card_path))
            description = card if len(card) <= DESCRIPTION_LIMIT else (
                card[: DESCRIPTION_LIMIT - DESCRIPTION_TAIL].rsplit("\n", 1)[0]
                + f"\n\n... (the whole card: artifact `{card_path.name}` of run {rid})")
            mv = c.create_model_version(name, source=f"runs:/{rid}/{MODEL_PATH}", run_id=rid, description=description,
                                        tags={**tags, UID: uid})
            out[name] = mv.version
    return out


class LiveRun(TrainObserver):
    """`mlflow.live: true`: a training job's curves in MLflow while it runs, as one of its
    observers. The run is tagged with its job key and finished only after the seed's files are
    in place; a killed job leaves it unfinished, and the next `track` replaces it."""

    def __init__(self, params: Params, dataset: str, model: str) -> None:
        self.params, self.dataset, self.model = params, dataset, model
        self.run_ids: dict[int, str] = {}

    def on_epoch(self, seed: int, partition: int, row: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        with client(self.params) as (c, exp_id):
            if seed not in self.run_ids:
                key = Run(self.dataset, self.model, seed).key
                for r in _runs_with_key(c, exp_id, key):
                    if r.info.status != "FINISHED":
                        c.delete_run(r.info.run_id)               # a killed predecessor
                run = c.create_run(exp_id, run_name=key, tags={JOB_KEY: key, STAGE: "train", "dataset": self.dataset,
                                                               "model": self.model, "seed": str(seed)})
                self.run_ids[seed] = run.info.run_id
            now = int(time.time() * 1000)
            prefix = f"p{partition}." if partition else ""
            _batches(c, self.run_ids[seed], metrics=[Metric(prefix + k, float(v), now, int(row["epoch"]))
                                                     for k, v in row.items() if k != "epoch"])

    def on_seed_done(self, seed: int, folder: Path) -> None:
        """After the seed's files are written: params, inputs, and FINISHED."""
        from mlflow.entities import RunStatus

        rid = self.run_ids.get(seed)
        if rid is None:
            return
        summary = read_json(folder / TRAIN_FILES["summary"])
        key = Run(self.dataset, self.model, seed).key
        with client(self.params) as (c, _):
            for k, v in _tags(self.params, summary, key, _git_commit(self.params.root)).items():
                c.set_tag(rid, k, v)
            c.set_tag(rid, "asym.train_uid", file_digest(folder / TRAIN_FILES["summary"]))
            _batches(c, rid, flat("", {"recipe": summary["recipe"], "model_config": summary["model_config"],
                                       "n_params": summary["n_params"], "device": summary["device"],
                                       "precision": summary["precision"], "epochs": summary["epochs"]}))
            c.log_inputs(rid, datasets=[_dataset_input(self.params, self.dataset, summary)])
            c.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED), end_time=int(summary["finished_at"] * 1000))
