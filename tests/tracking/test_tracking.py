"""MLflow: one FINISHED run per (dataset, model, seed) whatever happened before, real times,
inputs and tags; and a store that concurrent writers share through its lock."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient

from asym.evaluate import evaluate_run
from asym.io import read_json
from asym.layout import Layout
from asym.tracking import track as tracking
from asym.train.job import train_job
from tests.project import ROOT, prepared


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    p = prepared(tmp_path_factory.mktemp("track"), ["mean-mlp"], epochs=2)
    train_job(p, "dvlog", "mean-mlp", [0])
    run = Path(Layout.of(p).run_dir("dvlog", "mean-mlp", 0))
    evaluate_run(run)
    return p, run


def _client(p) -> tuple[MlflowClient, str]:
    c = MlflowClient(tracking_uri=tracking.tracking_uri(p))
    return c, c.get_experiment_by_name(p.mlflow.experiment).experiment_id


def _runs(p, key: str) -> list:
    c, exp = _client(p)
    return c.search_runs([exp], filter_string=f"tags.`asym.job_key` = '{key}'")


def test_a_run_is_logged_once_with_its_real_times_inputs_and_tags(trained):
    p, run = trained
    with tracking.client(p) as (c, exp):
        first = tracking.track_run(c, exp, p, run, "abc123")
        again = tracking.track_run(c, exp, p, run, "abc123")
    assert first == again
    [r] = _runs(p, "dvlog/mean-mlp/seed0")
    summary, metrics = read_json(run / "train.json"), read_json(run / "metrics.json")
    assert r.info.status == "FINISHED" and r.info.run_name == "dvlog/mean-mlp/seed0"
    assert r.info.start_time == int(summary["started_at"] * 1000) and r.info.end_time == int(summary["finished_at"] * 1000)
    # the training's own duration, not the moment of logging
    assert (r.info.end_time - r.info.start_time) / 1000 == pytest.approx(summary["train_time_s"], abs=0.002)
    tags = r.data.tags
    assert {tags[k] for k in ("dataset", "model", "seed", "scale", "recipe")} == {"dvlog", "mean-mlp", "0", "demo", "asym"}
    assert tags["mlflow.source.git.commit"] == "abc123" and tags["mlflow.source.name"] == "asym train"
    assert r.data.metrics["test_f1"] == pytest.approx(metrics["test"]["f1"])
    assert r.data.params["recipe.optimizer"] == "adamw"
    [inp] = r.inputs.dataset_inputs
    assert inp.dataset.name == "dvlog" and inp.dataset.digest == tracking.file_digest(Path(Layout.of(p).parquet("dvlog")))
    assert json.loads(inp.dataset.profile)["n_test"] == summary["n_test"]
    # the schema in the form MLflow's UI shows as a table (other forms show "Unrecognized Schema Format")
    colspec = json.loads(inp.dataset.schema)["mlflow_colspec"]
    arrow = pq.read_schema(Layout.of(p).parquet("dvlog"))
    assert [(c["name"], c["type"]) for c in colspec] == [(f.name, str(f.type)) for f in arrow]
    assert {"sample_id", "label", "fold", "audio", "visual"} <= {c["name"] for c in colspec}
    c, exp = _client(p)
    assert c.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    history = c.get_metric_history(r.info.run_id, "valid_f1")
    assert sorted(m.step for m in history) == [1, 2]
    names = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"metrics.json", "confusion.png", "predictions.parquet", "history.csv", "train.json"} <= names


def test_a_retrained_seed_replaces_its_run_and_unfinished_ones_are_removed(trained, tmp_path):
    p, run = trained
    with tracking.client(p) as (c, exp):
        tracking.track_run(c, exp, p, run, None)
        # a killed live run of the same job: RUNNING, never finished
        c.create_run(exp, run_name="dvlog/mean-mlp/seed0", tags={tracking.JOB_KEY: "dvlog/mean-mlp/seed0"})
    summary = read_json(run / "train.json")
    (run / "train.json").write_text(json.dumps({**summary, "finished_at": summary["finished_at"] + 1}))
    try:
        with tracking.client(p) as (c, exp):
            rid = tracking.track_run(c, exp, p, run, None)
        runs = _runs(p, "dvlog/mean-mlp/seed0")
        assert [r.info.run_id for r in runs] == [rid] and runs[0].info.status == "FINISHED"
    finally:
        (run / "train.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _artifacts(run) -> Path:
    from urllib.parse import urlparse

    return Path(urlparse(run.info.artifact_uri).path)


def test_a_run_tracked_before_models_were_logged_gets_its_model(trained):
    """A store written by an older asym: the run's fingerprint has no format version and its
    artifacts no model/. Tracking again logs the model (and so lets it be registered)."""
    p, run = trained
    with tracking.client(p) as (c, exp):
        rid = tracking.track_run(c, exp, p, run, None)
        old_uid = tracking.file_digest(run / "train.json", run / "metrics.json")
        c.set_tag(rid, tracking.UID, old_uid)
    [r] = _runs(p, "dvlog/mean-mlp/seed0")
    shutil.rmtree(_artifacts(r) / "model")
    c, _ = _client(p)
    assert not tracking.has_model(c, rid)
    with tracking.client(p) as (c, exp):
        new = tracking.track_run(c, exp, p, run, None)
        assert tracking.has_model(c, new)
        # the model/ of a run already up to date, removed from the store, is logged again
        shutil.rmtree(_artifacts(c.get_run(new)) / "model")
        assert tracking.track_run(c, exp, p, run, None) == new and tracking.has_model(c, new)
    [r] = _runs(p, "dvlog/mean-mlp/seed0")
    assert r.info.run_id == new and r.data.tags[tracking.UID] == tracking.run_uid(run) != old_uid


def test_nothing_is_registered_without_its_card_or_its_logged_model(trained):
    from asym.errors import DataError

    p, run = trained
    card = Path(Layout.of(p).model_card("dvlog", "mean-mlp"))
    assert not card.exists()
    with tracking.client(p) as (c, exp):
        record = {"dvlog/mean-mlp/seed0": tracking.track_run(c, exp, p, run, None)}
        with pytest.raises(DataError, match="missing model card"):
            tracking.register_models(c, p, record)
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text("# Model card\n")
        shutil.rmtree(_artifacts(c.get_run(record["dvlog/mean-mlp/seed0"])) / "model")
        try:
            with pytest.raises(DataError, match="has no logged model"):
                tracking.register_models(c, p, record)
            assert not c.search_model_versions("name = 'asym-dvlog-mean-mlp'")
        finally:
            card.unlink()
            tracking.track_run(c, exp, p, run, None)            # its model logged again for the others


def test_live_logging_is_completed_not_duplicated(trained):
    p, run = trained
    live = tracking.LiveRun(p, "dvlog", "mean-mlp")
    live.on_epoch(7, 0, {"epoch": 1, "train_loss": 0.5, "valid_f1": 0.4})
    key = "dvlog/mean-mlp/seed7"
    [r] = _runs(p, key)
    assert r.info.status == "RUNNING"
    seed7 = run.parent / "seed7"
    seed7.mkdir(exist_ok=True)
    for name in ("train.json", "metrics.json", "history.csv", "predictions.parquet", "confusion.png", "checkpoint.pt"):
        text = (run / name).read_bytes()
        (seed7 / name).write_bytes(text.replace(b'"seed": 0', b'"seed": 7') if name == "train.json" else text)
    live.on_seed_done(7, seed7)
    with tracking.client(p) as (c, exp):
        rid = tracking.track_run(c, exp, p, seed7, None)
    [r] = _runs(p, key)
    assert r.info.run_id == rid == live.run_ids[7] and r.info.status == "FINISHED"
    assert "test_f1" in r.data.metrics and r.data.metrics["valid_f1"] == pytest.approx(0.4)


WRITER = textwrap.dedent("""
    import json, os, sys, time
    from asym.config import load_params
    from asym.tracking import track as tracking
    p = load_params(sys.argv[1])
    k, n, barrier = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    open(os.path.join(barrier, k), "w").close()
    while len(os.listdir(barrier)) < n:
        time.sleep(0.005)
    start = time.time()
    for i in range(4):
        with tracking.client(p) as (c, exp):
            run = c.create_run(exp, run_name=f"w{k}-{i}", tags={"writer": k})
            tracking._batches(c, run.info.run_id, {"i": str(i)},
                              [tracking.Metric("loss", 1.0 / e, 0, e) for e in range(1, 6)])
            c.set_terminated(run.info.run_id)
    print(json.dumps({"start": start, "end": time.time()}))
""").replace("tracking.Metric", "__import__('mlflow.entities', fromlist=['Metric']).Metric")


def test_the_optimism_studys_training_never_logs_live(tmp_path, monkeypatch):
    """Its runs share the main grid's keys (<dataset>/<model>/seed<k>): a live run of the study
    would take the place of the main run's."""
    from asym import cli

    p = prepared(tmp_path, ["mean-mlp"], epochs=1, mlflow={"live": True},
                 optimism={"models": {"demo": ["mean-mlp"], "paper": ["mean-mlp"]}, "seeds": {"demo": [0], "paper": [0]}})
    started = []

    class Started(Exception):
        pass

    def start(self, *args):
        started.append(args)
        raise Started

    monkeypatch.setattr(tracking.LiveRun, "__init__", start)
    params = str(p.path)
    assert cli.main(["--params", params, "split", "--dataset", "dvlog", "--protocol", "kfold"]) == 0
    assert cli.main(["--params", params, "train", "--dataset", "dvlog", "--model", "mean-mlp", "--protocol", "kfold"]) == 0
    assert started == [] and p.for_optimism("kfold").runs()
    assert Layout.of(p.for_optimism("kfold")).run(p.for_optimism("kfold").runs()[0]).complete()
    with pytest.raises(Started):        # the main grid's training does start one (stopped by the stand-in)
        cli.main(["--params", params, "train", "--dataset", "dvlog", "--model", "mean-mlp"])
    assert len(started) == 1


def test_concurrent_writers_on_a_fresh_store_all_succeed(tmp_path):
    """Writers released together from a barrier onto a store that does not exist yet: without
    the lock they race to create its schema and experiment and some fail."""
    from tests.project import make_project

    root = make_project(tmp_path / "p", ["mean-mlp"], [0], epochs=1)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    n = 4
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root / "params.yaml"), str(k), str(n), str(barrier)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for k in range(n)]
    spans = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        spans.append(json.loads(out.strip().splitlines()[-1]))
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans)   # they really overlapped
    c = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = c.get_experiment_by_name("asym")
    runs = c.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.info.run_name for r in runs) == sorted(f"w{k}-{i}" for k in range(n) for i in range(4))
    assert all(r.info.status == "FINISHED" for r in runs)
    history = c.get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4, 5]


def test_the_ui_address_opens_this_experiments_training_runs(trained):
    p, _ = trained
    with tracking.client(p) as (_, exp):
        pass
    address = tracking.ui_address(p, "127.0.0.1", 5123)
    assert address == f"http://127.0.0.1:5123/#/experiments/{exp}/runs?workflowType=machine_learning"


def test_asym_ui_serves_this_configs_store_after_printing_the_runs_address(trained, monkeypatch, capsys):
    from asym import cli

    p, _ = trained
    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    assert cli.main(["--params", str(p.path), "ui", "--port", "5124"]) == 0
    [(path, argv)] = calls
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(p),
                    "--host", "127.0.0.1", "--port", "5124"]
    assert capsys.readouterr().out.strip() == f"MLflow UI: {tracking.ui_address(p, '127.0.0.1', 5124)}"


def test_asym_ui_points_at_a_tracking_server_instead_of_starting_a_ui(trained, tmp_path, monkeypatch, capsys):
    import yaml

    from asym import cli

    p, _ = trained
    raw = yaml.safe_load(p.path.read_text())
    raw["mlflow"]["tracking_uri"] = "https://mlflow.example.org"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(cli.os, "execv", lambda *a: pytest.fail("no local UI for a remote store"))
    assert cli.main(["--params", str(tmp_path / "params.yaml"), "ui"]) == 0
    assert "https://mlflow.example.org" in capsys.readouterr().out


# --- MLflow Models and the Model Registry ------------------------------------------------------
@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """Two seeds of a tiny run, reported (model card) and tracked: the seed chosen on validation
    is registered as a version of asym-dvlog-mean-mlp."""
    import yaml

    from asym.config import load_params
    from asym.data.splits import read_split, split_description
    from asym.io import write_json
    from asym.report.aggregate import aggregate, fairness
    from asym.report.model_card import write_model_cards

    root = tmp_path_factory.mktemp("registry")
    p = prepared(root, ["mean-mlp"], epochs=2)
    raw = yaml.safe_load(p.path.read_text())
    raw["run"]["seeds"]["demo"] = [0, 1]
    p.path.write_text(yaml.safe_dump(raw))
    p = load_params(p.path)
    lay = Layout.of(p)
    write_json(lay.split_json("dvlog"), split_description(read_split(lay.split_csv("dvlog"), subjects_disjoint=False),
                                                      False, "official"))
    train_job(p, "dvlog", "mean-mlp", [0, 1])
    for s in (0, 1):
        evaluate_run(Path(lay.run_dir("dvlog", "mean-mlp", s)))
    summary, all_runs = aggregate(p)
    write_model_cards(p, summary, fairness(p, all_runs))
    with tracking.client(p) as (c, exp):
        record = {f"dvlog/mean-mlp/seed{s}": tracking.track_run(c, exp, p, Path(lay.run_dir("dvlog", "mean-mlp", s)),
                                                                None) for s in (0, 1)}
        versions = tracking.register_models(c, p, record)
    return p, record, versions


def _test_fold_input(p):
    from asym.data.parquet import read_samples
    from asym.tracking.mlflow_model import frame_from_table

    lay = Layout.of(p)
    table = read_samples(Path(lay.parquet("dvlog")))
    test = table.select(i for i, f in enumerate(table.fold) if f == "test")
    return test, frame_from_table(test)


def test_the_seed_chosen_on_validation_is_registered_with_its_card_and_metrics(registered):
    p, record, versions = registered
    lay = Layout.of(p)
    scores = {s: np.mean(read_json(Path(lay.run_dir("dvlog", "mean-mlp", s)) / "train.json")["best_valid_selection"])
              for s in (0, 1)}
    seed = max(sorted(scores), key=lambda s: scores[s])
    c, _ = _client(p)
    [mv] = c.search_model_versions("name = 'asym-dvlog-mean-mlp'")
    assert mv.version == versions["asym-dvlog-mean-mlp"] and mv.run_id == record[f"dvlog/mean-mlp/seed{seed}"]
    assert mv.tags["seed"] == str(seed)
    metrics = read_json(Path(lay.run_dir("dvlog", "mean-mlp", seed)) / "metrics.json")["test"]
    assert float(mv.tags["test_f1"]) == pytest.approx(metrics["f1"], rel=1e-5)
    card = Path(lay.model_card("dvlog", "mean-mlp")).read_text()
    if len(card) <= tracking.DESCRIPTION_LIMIT:
        assert mv.description == card
    else:                               # the SQL store's limit: the card's head, and where the whole card is
        head, tail = mv.description.split("\n\n... (the whole card: ")
        assert len(mv.description) <= tracking.DESCRIPTION_LIMIT and card.startswith(head) and len(head) > 1000
        assert tail == f"artifact `{Path(lay.model_card('dvlog', 'mean-mlp')).name}` of run {mv.run_id})"
    assert "not a diagnostic tool" in mv.description
    with tracking.client(p) as (c2, _):                              # tracking again adds no version
        assert tracking.register_models(c2, p, record) == versions
    assert len(c.search_model_versions("name = 'asym-dvlog-mean-mlp'")) == 1
    model_dir = Path(c.download_artifacts(mv.run_id, "model"))
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
    # saved from code: the model's code file is copied in and run at load; nothing is pickled
    assert flavor["model_code_path"].endswith("mlflow_pyfunc.py") and (model_dir / "mlflow_pyfunc.py").is_file()
    assert not list(model_dir.rglob("*.pkl")) and "python_model" not in flavor
    assert (model_dir / "code" / "asym" / "inference" / "predict.py").is_file()
    # the input example is synthetic: zeros of the model's widths, no vlog of the dataset
    example = json.loads((model_dir / "input_example.json").read_text())
    rows = pd.DataFrame(example["data"], columns=example["columns"])
    assert {np.asarray(a).shape for a in rows["audio"]} == {(3, 25)} and {np.asarray(v).shape[1] for v in rows["visual"]} == {136}
    assert all(not np.any(a) for a in rows["audio"]) and all(not np.any(v) for v in rows["visual"])
    assert "eGeMAPSv02" in yaml.safe_load((model_dir / "MLmodel").read_text())["metadata"]["input"]


def test_the_models_requirements_are_asyms_declared_dependencies_without_local_labels(registered):
    """One list: pyproject.toml's dependencies, pinned at the installed versions, `+cpu` dropped
    (no index but PyTorch's serves it; the CPU or CUDA build is the user's choice)."""
    import importlib.metadata
    import re

    import tomllib
    import torch

    p, record, versions = registered
    c, _ = _client(p)
    [mv] = c.search_model_versions("name = 'asym-dvlog-mean-mlp'")
    reqs = Path(c.download_artifacts(mv.run_id, "model/requirements.txt")).read_text().split()
    pinned = dict(r.split("==") for r in reqs)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(pinned) == {re.match(r"[A-Za-z0-9._-]+", d).group(0) for d in declared}
    assert pinned["torch"] == torch.__version__.split("+")[0] and not any("+" in v for v in pinned.values())
    assert pinned["mlflow"] == importlib.metadata.version("mlflow")


def test_run_from_a_checkout_never_installed_the_requirements_come_from_pyproject(monkeypatch):
    """The rules' conda environment runs asym from the checkout, with no package metadata."""
    import importlib.metadata

    from asym.tracking import mlflow_model

    installed = mlflow_model.pinned_requirements()
    real = importlib.metadata.requires

    def no_metadata(name):
        if name == mlflow_model.PROJECT:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "requires", no_metadata)
    assert mlflow_model.pinned_requirements() == installed and len(installed) > 10


def test_the_registered_model_scores_exactly_as_asym_predict(registered, tmp_path):
    import mlflow.pyfunc

    from asym.inference.predict import load_run as load_asym_run
    from asym.inference.predict import predict_frame, run_dirs

    p, record, versions = registered
    mlflow.set_tracking_uri(tracking.tracking_uri(p))
    test, frame = _test_fold_input(p)
    with asym_unimported():                  # so the model runs the asym code logged with it
        model = mlflow.pyfunc.load_model(f"models:/asym-dvlog-mean-mlp/{versions['asym-dvlog-mean-mlp']}")
        used = Path(sys.modules["asym"].__file__)
        got = model.predict(frame)
        with pytest.raises(Exception, match="features per frame, expected 25"):
            model.predict(frame.assign(audio=[[r[:24] for r in a] for a in frame["audio"]]))
    assert used.parts[-3:] == ("code", "asym", "__init__.py") and ROOT not in used.parents
    seed = int(model.metadata.metadata["seed"])
    run = load_asym_run(run_dirs(Path(Layout.of(p).run_dir("dvlog", "mean-mlp", seed)))[0], torch_cpu())
    want = predict_frame([run], test, torch_cpu())
    assert list(got["id"]) == list(want["id"])
    np.testing.assert_array_equal(got["probability"].to_numpy(), want["probability"].to_numpy())
    np.testing.assert_array_equal(got["label"].to_numpy(), want["label"].to_numpy())
    saved = pd.read_parquet(Path(Layout.of(p).run_dir("dvlog", "mean-mlp", seed)) / "predictions.parquet")
    saved = saved.query("fold == 'test'").set_index("sample_id").loc[list(got["id"]), "prob"]
    np.testing.assert_array_equal(got["probability"].to_numpy(np.float32), saved.to_numpy())


@contextlib.contextmanager
def asym_unimported():
    """No asym module imported inside (an MLflow Model's `code_paths` then provide it); the
    modules and sys.path as they were afterwards."""
    def ours(name: str) -> bool:
        return name == "asym" or name.startswith("asym.")

    saved, path = {k: v for k, v in sys.modules.items() if ours(k)}, list(sys.path)
    for k in saved:
        del sys.modules[k]
    try:
        yield
    finally:
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.path[:] = path


def _serve(model_uri: str, env: dict[str, str], log: Path, attempts: int = 3) -> tuple[subprocess.Popen, int]:
    """`mlflow models serve` on a free loopback port, its output to `log` (never an undrained
    pipe); another port when the one picked was taken meanwhile."""
    import socket
    import time
    import urllib.request

    for _ in range(attempts):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                     "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        return proc, port
            except OSError:
                pass
            time.sleep(0.5)
        _stop(proc)
        text = log.read_text(errors="replace")
        if "address already in use" not in text.lower():
            pytest.fail(f"the model server did not answer within 120 s:\n{text[-3000:]}")
    pytest.fail(f"no free port in {attempts} attempts")


def _stop(proc: subprocess.Popen) -> None:
    """The server and its workers, whatever happened."""
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_mlflow_models_serve_gives_the_same_over_rest(registered, tmp_path):
    import os
    import urllib.request

    import mlflow.pyfunc

    p, _, versions = registered
    test, frame = _test_fold_input(p)
    uri = f"models:/asym-dvlog-mean-mlp/{versions['asym-dvlog-mean-mlp']}"
    # the server starts `uvicorn` by name: the venv's bin must be on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(p),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc, port = _serve(uri, env, tmp_path / "serve.log")
    try:
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            rows = json.loads(r.read())["predictions"]
    finally:
        _stop(proc)
    mlflow.set_tracking_uri(tracking.tracking_uri(p))
    local = mlflow.pyfunc.load_model(uri).predict(frame)
    assert [r["id"] for r in rows] == list(local["id"])
    assert [r["probability"] for r in rows] == list(local["probability"])


def torch_cpu():
    import torch

    return torch.device("cpu")
