"""The HTML report: each Markdown table and model card as a page, and `snakemake --report` of a tiny
run opened in headless Chromium, read as a person reads it.

The browser part checks what is shown, not what the file contains: the workflow description on
the landing view, the categories in the menu, the results table's cells inside the page Snakemake
shows inline (its own frame), a figure drawn, a model card reached through its dataset, and
summary.csv offered as the file itself.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from selenium.webdriver.common.by import By

from asym.dag.snakefile import DATA, FIGURES, MODEL_CARDS, PLOT_TOPICS, TABLE_TOPICS, TABLES
from asym.layout import page_of
from asym.report.html import render_page
from tests.project import ROOT
from tests.workflow import headless_chromium
from tests.workflow.conftest import TINY, snakemake
from tests.workflow.headless_chromium import wait_for

WINDOW = (1600, 1000)
SCREENSHOTS = ("report-table.png", "report-model-card.png")
FAILURE_SCREENSHOT = "report-failure.png"
PERCENT = 100
STEP_S = 20            # one step inside the report: it is one file, with nothing to load


# --- the pages ------------------------------------------------------------------------------------

def test_a_markdown_table_becomes_a_table_element_titled_by_its_heading():
    page = render_page("# All `models`\n\nSome *prose*.\n\n## dvlog\n\n| model | F1 |\n|:--|--:|\n"
                       "| **asym** ◀ | 70.00 ± 10.00 |\n", "fallback")
    assert "<title>All models</title>" in page
    assert '<meta charset="utf-8">' in page
    assert '<div class="table">\n<table>' in page and "</table>\n</div>" in page
    assert '<th style="text-align:left">model</th>' in page and '<td style="text-align:right">70.00 ± 10.00</td>' in page
    assert '<td style="text-align:left"><strong>asym</strong> ◀</td>' in page
    assert "<h2>dvlog</h2>" in page and "<em>prose</em>" in page


def test_raw_html_in_the_markdown_is_shown_as_text_and_a_page_without_heading_takes_the_file_name():
    page = render_page("a <script>alert(1)</script> b\n", "dvlog-asym")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<title>dvlog-asym</title>" in page


def test_every_page_is_written_beside_its_markdown(tmp_path):
    from asym.report.html import write_pages

    card = tmp_path / "model_cards" / "dvlog-asym.md"
    card.parent.mkdir()
    card.write_text("# Model card: `asym` on dvlog\n")
    (tmp_path / "results.md").write_text("# All models\n")
    outputs = {"results_md": tmp_path / "results.md", "results_html": tmp_path / "results.html",
               "model_card_dvlog_asym": card, "model_card_dvlog_asym_html": Path(page_of(str(card))),
               "summary_csv": tmp_path / "summary.csv"}
    write_pages(None, outputs)          # the pages need nothing of the params
    assert "<title>Model card: asym on dvlog</title>" in (tmp_path / "model_cards" / "dvlog-asym.html").read_text()
    assert "<h1>All models</h1>" in (tmp_path / "results.html").read_text()
    assert not (tmp_path / "summary.csv").exists()


# --- the report in the browser --------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(snakemake_project, tmp_path_factory) -> Path:
    """`snakemake --report` of the tiny run."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(snakemake_project, "--report", str(out))
    return out


def menu_labels(driver: Any) -> list[str]:
    """The entries of the report's left-hand menu, as shown."""
    return [s.text.strip() for s in driver.find_elements(By.CSS_SELECTOR, "nav li a span, li a span")
            if s.is_displayed() and s.text.strip()]


def open_menu(driver: Any, *labels: str) -> None:
    """Back to the menu (the breadcrumbs' first link, home), then its entries clicked in turn (a
    category, then its subcategory), as a person does."""
    wait_for(driver, "the home breadcrumb", lambda d: d.find_elements(By.CSS_SELECTOR, "nav ol li a"), STEP_S)[0].click()
    for label in labels:
        link = wait_for(driver, f"the menu entry {label!r}", lambda d, label=label: next(
            (a for a in d.find_elements(By.XPATH, f'//li/a[span[normalize-space(.)="{label}"]]') if a.is_displayed()),
            None), STEP_S, detail=lambda d: f"menu {menu_labels(d)}")
        link.click()


def view(driver: Any, entry: str) -> Any:
    """The view button of the results list's row whose first cell is `entry` (a file name or a label)."""
    row = wait_for(driver, f"the row {entry!r}", lambda d: next(
        (r for r in d.find_elements(By.XPATH, f'//tr[td[1][normalize-space(.)="{entry}"]]') if r.is_displayed()),
        None), STEP_S, detail=lambda d: f"rows {[r.text for r in d.find_elements(By.CSS_SELECTOR, 'tbody tr')]}")
    return row.find_elements(By.CSS_SELECTOR, "td a")[0]


def shown_frame(driver: Any) -> None:
    """Into the frame the report shows a page in, once it has its body."""
    frame = wait_for(driver, "the page's frame", lambda d: next(
        (f for f in d.find_elements(By.TAG_NAME, "iframe") if f.is_displayed()), None), STEP_S)
    driver.switch_to.frame(frame)
    wait_for(driver, "the page's body", lambda d: d.find_elements(By.CSS_SELECTOR, "body h1"), STEP_S)


def table_rows(driver: Any, heading: str) -> dict[str, list[str]]:
    """The shown rows of the table under the `## heading` section: the first cell's first word (a
    model's name, without the marks beside it) -> every cell."""
    rows = driver.find_elements(By.XPATH, f'//h2[starts-with(normalize-space(.), "{heading}")]'
                                          '/following-sibling::div[@class="table"][1]//tbody/tr')
    out = {}
    for row in rows:
        cells = [c for c in row.find_elements(By.TAG_NAME, "td") if c.is_displayed()]
        if cells:
            out[cells[0].text.split()[0]] = [c.text.strip() for c in cells]
    return out


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("report_html")
def test_the_html_report_shows_its_tables_figures_and_model_cards_inline(chromium, snakemake_project,
                                                                         report, tmp_path):
    summary = pd.read_csv(snakemake_project / "reports" / "summary.csv").set_index(["dataset", "model"])
    model = TINY["models"][0]
    shots = [tmp_path / name for name in SCREENSHOTS]
    with headless_chromium.browser(tmp_path / "profile", tmp_path / "chromedriver.log", *WINDOW) as driver:
        try:
            driver.get(report.as_uri())
            # The landing view: the workflow description beside the DAG, and the categories.
            wait_for(driver, "the workflow description", lambda d: "One run of the asym pipeline" in d.find_element(
                By.TAG_NAME, "body").text)
            menu = menu_labels(driver)
            assert {TABLES, FIGURES, MODEL_CARDS, DATA} <= set(menu) and "Other" not in menu, menu
            linked = {a.text for a in driver.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:app.showCategory"]')
                      if a.is_displayed()}
            assert linked == {TABLES, FIGURES, MODEL_CARDS, DATA}, f"the description links {linked}"

            # Tables -> Metrics -> results.html: the table itself, inside the report.
            open_menu(driver, TABLES, TABLE_TOPICS["results"])
            view(driver, "reports/results.html").click()
            shown_frame(driver)
            for dataset in ("dvlog", "lmvd"):
                rows = table_rows(driver, dataset)
                assert model in rows, f"{dataset}: rows {list(rows)}"
                f1 = f"{PERCENT * summary.loc[(dataset, model), 'f1']:.2f}"
                acc = f"{PERCENT * summary.loc[(dataset, model), 'accuracy']:.2f}"
                cells = rows[model]
                assert any(c.startswith(f1) for c in cells) and any(c.startswith(acc) for c in cells), (dataset, cells)
                assert {"majority", "chance"} <= set(rows), f"{dataset}: the floors' rows {list(rows)}"
            driver.switch_to.default_content()
            driver.save_screenshot(str(shots[0]))

            # Figures -> Metrics -> metrics.png: drawn, not only linked.
            open_menu(driver, FIGURES, PLOT_TOPICS["metrics_plot"])
            view(driver, "reports/metrics.png").click()
            img = wait_for(driver, "the figure", lambda d: next(
                (i for i in d.find_elements(By.CSS_SELECTOR, 'img[src^="data:image/png"]') if i.is_displayed()), None), STEP_S)
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0

            # Model cards -> dvlog -> the model: its card, as a page.
            open_menu(driver, MODEL_CARDS, "dvlog")
            view(driver, model).click()
            shown_frame(driver)
            body = driver.find_element(By.TAG_NAME, "body").text
            assert driver.find_element(By.TAG_NAME, "h1").text == f"Model card: {model} on dvlog"
            assert "not a diagnostic tool" in body and driver.find_elements(By.CSS_SELECTOR, "table td")
            driver.switch_to.default_content()
            driver.save_screenshot(str(shots[1]))

            # Data -> Aggregates -> summary.csv: offered as the file itself.
            open_menu(driver, DATA, "Aggregates")
            link = view(driver, "reports/summary.csv")
            href = link.get_attribute("href")
            assert link.get_attribute("download") == "summary.csv" and href.startswith("data:"), href[:80]
            data = base64.b64decode(href.split(",", 1)[1])
            assert data == (snakemake_project / "reports" / "summary.csv").read_bytes()
        except Exception as exc:
            failed = ROOT / "reports" / FAILURE_SCREENSHOT
            failed.parent.mkdir(exist_ok=True)
            driver.switch_to.default_content()
            driver.save_screenshot(str(failed))
            text = driver.find_element(By.TAG_NAME, "body").text[:3000]
            raise AssertionError(f"{exc}\n(screenshot: {failed})\n--- page ---\n{text}") from exc
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot
        shutil.copy(shot, ROOT / "reports" / shot.name)
    (ROOT / "reports" / FAILURE_SCREENSHOT).unlink(missing_ok=True)
