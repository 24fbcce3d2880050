"""The MLflow UI in a real browser: headless Chromium over the store a tiny pipeline run filled.

What a person sees is checked, not what the REST API returns: the run names in the runs table, the
report run, a metric column they add, each training run's Duration against the training's own
clock, its input dataset and its source. MLflow 3.17's UI opens an experiment on its GenAI overview
whatever the experiment's kind (the choice between "GenAI" and "Model training" is the browser's),
so the test checks that the address `asym ui` prints opens the runs, and, where a fresh browser
lands elsewhere, switches to "Model training" as the README says and checks that the choice is
remembered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from asym.config import load_params
from asym.layout import Layout
from asym.tracking.track import file_digest, ui_address
from tests.project import ROOT, small_params
from tests.workflow import headless_chromium
from tests.workflow.conftest import BIN, ENV, TINY, job_counts, run, snakemake
from tests.workflow.headless_chromium import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

MODELS, SEEDS, EPOCHS = TINY["models"], [0], 3
SERVER_START_S = 120
SCREENSHOT, FAILURE_SCREENSHOT = "mlflow-ui.png", "mlflow-ui-failure.png"
WINDOW = (1600, 720)
METRICS = ("test_f1", "test_auroc")


@pytest.fixture(scope="module")
def project(data_stages, tmp_path_factory) -> Path:
    """The shared data stages, then training, evaluation, report and tracking at one seed, in a git
    clone (so runs carry their commit, as in a user's clone)."""
    root = tmp_path_factory.mktemp("browser") / "p"
    shutil.copytree(data_stages, root, symlinks=True)
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(MODELS, SEEDS, EPOCHS), sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "add", "Snakefile", "environment.yml", "params.yaml", "workflow"], root)
    run(["git", "commit", "-q", "-m", "tiny project"], root)
    out = snakemake(root, "all")
    assert job_counts(out).get("fetch") is None, "the shared data stages were run again"
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


@pytest.fixture(scope="module")
def server(project, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """`mlflow ui` on a free loopback port over the project's store; stopped by its process group."""
    log = tmp_path_factory.mktemp("mlflow-ui") / "server.log"
    port = _free_port()
    # One worker: the machine has two cores, and a page's requests need no more.
    cmd = [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=asym",
                                            timeout=10) as resp:
                    experiment = json.loads(resp.read())["experiment"]
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow ui not serving after {SERVER_START_S} s ({exc}):\n{_tail(log)}")
                time.sleep(1)
        yield {"base": base, "experiment_id": experiment["experiment_id"], "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


# --- reading the page -------------------------------------------------------------------------

RUN_NAME_COL = "attributes.`Run Name`"
DURATION = re.compile(r"^([\d.]+)(ms|s|min|h|d)$")
SECONDS = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def view_of(url: str, experiment_id: str) -> str | None:
    """The experiment page's view in a URL (`runs`, `overview`, ...), once the app has routed."""
    m = re.search(rf"#/experiments/{re.escape(experiment_id)}/([a-z-]+)", url)
    return m.group(1) if m else None


def shown_runs(driver: Any) -> dict[str, str]:
    """Run name -> run id, for every run name visible in the runs table."""
    out = {}
    for a in driver.find_elements(By.CSS_SELECTOR, f'[col-id="{RUN_NAME_COL}"] a[href*="/runs/"]'):
        if a.is_displayed() and a.text.strip():
            out[a.text.strip()] = a.get_attribute("href").rsplit("/runs/", 1)[1]
    return out


def cell(driver: Any, run_id: str, col_id: str) -> str:
    """The text a row shows in a column (the grid splits a row between pinned and scrolling parts)."""
    cells = driver.find_elements(By.CSS_SELECTOR, f'[role="row"][row-id="{run_id}"] [col-id="{col_id}"]')
    return " ".join(c.text.strip() for c in cells if c.is_displayed())


def header_texts(driver: Any) -> list[str]:
    return [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, ".ag-header-cell") if h.is_displayed()]


def seconds(duration: str) -> float:
    """MLflow's Duration text ("46ms", "9.1s", "1.2min") in seconds."""
    m = DURATION.match(duration.strip())
    assert m, f"not a duration: {duration!r}"
    return float(m.group(1)) * SECONDS[m.group(2)]


def add_column(driver: Any, name: str) -> None:
    """Columns -> search -> tick, as a person adds a metric column."""
    driver.find_element(By.CSS_SELECTOR, 'button[data-testid="column-selection-dropdown"][aria-haspopup="dialog"]').click()
    search = wait_for(driver, "the column search box", lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, '[role="dialog"] input[placeholder="Search columns"]')
         if e.is_displayed()), None), 20)
    search.send_keys(name)
    entry = f'//*[@role="dialog"]//*[contains(@class, "tree-title")][normalize-space(.)="{name}"]'
    item = wait_for(driver, f"{name} in the column list", lambda d: next(
        (e for e in d.find_elements(By.XPATH, entry) if e.is_displayed()), None), 20)
    item.click()
    search.send_keys(Keys.ESCAPE)
    wait_for(driver, f"a {name} column", lambda d: name in header_texts(d), 20)


def choose_model_training(driver: Any) -> None:
    """The sidebar's GenAI / Model training switch, clicked as a person does (past the hint a first
    visit shows over the GenAI overview)."""
    def click(d: Any) -> bool:
        try:
            for hint in d.find_elements(By.XPATH, '//button[normalize-space(.)="Got it"]'):
                if hint.is_displayed():
                    hint.click()
            switch = [e for e in d.find_elements(By.XPATH, '//*[@role="button"][normalize-space(.)="Model training"]')
                      if e.is_displayed()]
            if switch:
                switch[0].click()
            return bool(switch)
        except (ElementClickInterceptedException, ElementNotInteractableException, StaleElementReferenceException):
            return False

    wait_for(driver, 'the "Model training" switch to take a click', click, 30)


def close_assistant(driver: Any) -> None:
    """The assistant panel opens by itself on a first visit and hides half the table."""
    for button in driver.find_elements(By.CSS_SELECTOR, '[data-component-id="mlflow.assistant.chat_panel.close"]'):
        if button.is_displayed():
            button.click()


def page_report(driver: Any, server_log: Path) -> str:
    """What a failure message carries: the page's text, the browser console and the server log."""
    try:
        text = driver.find_element(By.TAG_NAME, "body").text[:3000]
        console = "\n".join(str(e) for e in driver.get_log("browser")[-20:])
    except Exception as exc:                 # the browser itself may be what failed
        text, console = f"(page unreadable: {exc})", ""
    return f"--- page at {driver.current_url} ---\n{text}\n--- console ---\n{console}\n--- mlflow ui ---\n{_tail(server_log)}"


# --- the test ---------------------------------------------------------------------------------

def test_mlflow_ui_shows_the_training_runs_in_chromium(chromium, project, server, tmp_path):
    record = json.loads((project / "reports" / "mlflow_runs.json").read_text())   # run name -> id, from `track`
    training = [f"{d}/{m}/seed{s}" for d in ("dvlog", "lmvd") for m in MODELS for s in SEEDS]
    assert sorted(record) == sorted([*training, "report", "robustness", "cost"])
    layout = Layout.of(load_params(project / "params.yaml"))
    exp_id = server["experiment_id"]
    experiment_url = f"{server['base']}/#/experiments/{exp_id}"
    shot = project / "reports" / SCREENSHOT
    with headless_chromium.browser(tmp_path / "profile", tmp_path / "chromedriver.log", *WINDOW) as driver:
        try:
            # A person opens the experiment; if a fresh browser lands elsewhere (MLflow 3.17: the GenAI
            # overview), they switch to "Model training" once, as the README says, and it stays so.
            driver.get(experiment_url)
            landing = wait_for(driver, "the experiment page to route", lambda d: view_of(d.current_url, exp_id))
            print(f"a fresh browser lands on the experiment's {landing!r} view")
            # The address `asym ui` (make mlflow-ui) prints opens on the runs, whatever the browser chose.
            host, port = server["base"].rsplit("/", 1)[-1].split(":")
            driver.get(ui_address(load_params(project / "params.yaml"), host, int(port)))
            # the address already names the runs view: what counts is that the table renders and the app
            # has not routed elsewhere meanwhile
            wait_for(driver, "the runs table at the printed address", lambda d: set(record) <= set(shown_runs(d)) or None)
            via_link = view_of(driver.current_url, exp_id)
            assert via_link == "runs", f"`asym ui`'s address opens the {via_link!r} view"
            driver.execute_script("window.localStorage.clear()")
            driver.get("about:blank")
            driver.get(experiment_url)
            landing = wait_for(driver, "the experiment page to route", lambda d: view_of(d.current_url, exp_id))
            if landing != "runs":
                choose_model_training(driver)
                wait_for(driver, "the runs view", lambda d: view_of(d.current_url, exp_id) == "runs")
                driver.get("about:blank")
                driver.get(experiment_url)
                again = wait_for(driver, "the experiment page to route", lambda d: view_of(d.current_url, exp_id))
                assert again == "runs", f"the Model training choice was not remembered: {again!r} view"
            shown = wait_for(driver, "every run in the runs table",
                             lambda d: r if set(record) <= set(r := shown_runs(d)) else None,
                             detail=lambda d: f"missing {sorted(set(record) - set(shown_runs(d)))};")
            assert {name: shown[name] for name in record} == record, "the table's links are not track's runs"
            assert set(shown) == set(record), f"runs the pipeline did not make: {set(shown) - set(record)}"

            close_assistant(driver)
            for name in METRICS:
                add_column(driver, name)
            metric_cols = {}
            for name in METRICS:
                metric_cols[name] = next(c.get_attribute("col-id") for c in driver.find_elements(
                    By.CSS_SELECTOR, ".ag-header-cell[col-id]") if c.text.strip() == name)

            for name in training:
                rid, (dataset, model, seed) = record[name], name.split("/")
                run_dir = project / "runs" / dataset / model / seed
                train = json.loads((run_dir / "train.json").read_text())
                metrics = json.loads((run_dir / "metrics.json").read_text())
                # Duration is the training's own, not the time until `track` logged it: the report
                # (written before track ran) came more than a second after the training ended.
                took = train["finished_at"] - train["started_at"]
                logged_after = (project / "reports" / "summary.csv").stat().st_mtime - train["finished_at"]
                assert logged_after > 1.0, f"{name}: logged {logged_after:.2f} s after it ended: too soon to tell"
                shown_s = seconds(cell(driver, rid, "duration"))
                assert abs(shown_s - took) <= 0.05 + 0.01 * took, f"{name}: Duration {shown_s} s, trained {took:.2f} s"
                # Dataset: the Parquet file the run read, by its digest, as training input.
                ds = cell(driver, rid, "attributes.`Dataset`")
                digest = file_digest(Path(layout.parquet(dataset)))
                assert ds.startswith(f"{dataset} ({digest})") and "Training" in ds, f"{name}: Dataset column {ds!r}"
                assert cell(driver, rid, "attributes.`Source`") == "asym train", f"{name}: Source column"
                f1 = cell(driver, rid, metric_cols["test_f1"])
                assert float(f1) == pytest.approx(metrics["test"]["f1"], abs=5e-3), f"{name}: test_f1 {f1!r}"
            assert cell(driver, record["report"], "attributes.`Source`") == "asym report"

            driver.save_screenshot(str(shot))

            # A run's dataset drawer: its fold sizes and the Parquet file's columns as a schema table.
            name = training[0]
            train = json.loads((project / "runs" / name / "train.json").read_text())
            driver.find_element(By.CSS_SELECTOR, f'[role="row"][row-id="{record[name]}"] '
                                                 '[col-id="attributes.`Dataset`"] button').click()
            drawer = wait_for(driver, f"the dataset drawer of {name}", lambda d: next(
                (e for e in d.find_elements(By.CSS_SELECTOR, '[role="dialog"]') if e.is_displayed() and "Digest" in e.text),
                None), 20)
            text = drawer.text
            sizes = re.search(r"n test: \[([\d, ]+)\]", text)
            assert sizes and [int(n) for n in sizes.group(1).split(",")] == train["n_test"], f"fold sizes: {text}"
            assert "Unrecognized Schema Format" not in text, f"the dataset's schema is not shown as a table:\n{text}"
            assert all(col in text.split() for col in ("sample_id", "label", "fold", "audio", "visual")), text
        except Exception as exc:
            failed = ROOT / "reports" / FAILURE_SCREENSHOT
            failed.parent.mkdir(exist_ok=True)
            driver.save_screenshot(str(failed))
            raise AssertionError(f"{exc}\n(screenshot: {failed})\n{page_report(driver, server['log'])}") from exc
    assert shot.stat().st_size > 10_000
    (ROOT / "reports").mkdir(exist_ok=True)
    shutil.copy(shot, ROOT / "reports" / SCREENSHOT)
    (ROOT / "reports" / FAILURE_SCREENSHOT).unlink(missing_ok=True)
