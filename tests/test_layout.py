"""A Run's key and files, and when its folder counts as complete (the main runs' and the study's)."""

from __future__ import annotations

from asym.config import load_params
from asym.grid import Run
from asym.layout import (
    OPTIMISM_TRAIN_FILES,
    RESUME_FILE,
    RUN_FILES,
    TRAIN_FILES,
    Layout,
    model_card_key,
    page_key,
    page_of,
    report_tables,
)
from tests.conftest import ROOT


def test_a_run_is_complete_with_every_file_its_job_writes_and_the_study_keeps_one_more(tmp_path):
    main = Layout(**{k: str(tmp_path / k) for k in ("raw", "processed", "splits", "runs", "reports", "logs")})
    study = main.for_optimism("kfold")
    run = Run("dvlog", "mean-mlp", 3)
    assert run.key == "dvlog/mean-mlp/seed3"
    for lay, names in ((main, TRAIN_FILES), (study, {**TRAIN_FILES, **OPTIMISM_TRAIN_FILES})):
        files = lay.run(run)
        assert files.folder == tmp_path / ("runs" if lay is main else "runs/optimism/kfold") / run.key
        assert {k: files.file(k).name for k in RUN_FILES} == RUN_FILES
        files.folder.mkdir(parents=True)
        files.resume.write_bytes(b"")                 # a seed's progress is never its completion
        assert files.resume.name == RESUME_FILE
        for name in names.values():
            assert not files.complete()
            (files.folder / name).write_bytes(b"")
        assert files.complete()
        (files.folder / names["summary"]).unlink()
        assert not files.complete()


def test_the_grid_is_every_dataset_model_and_seed_once():
    p = load_params(ROOT / "params.yaml")
    runs = p.runs()
    assert len(runs) == len(set(runs)) == len(p.datasets) * len(p.models) * len(p.seeds)
    assert p.runs("lmvd", "asym") == [Run("lmvd", "asym", s) for s in p.seeds]


def test_every_markdown_report_file_has_its_html_page_beside_it():
    """Snakemake's report shows HTML inline and Markdown only as a download: each Markdown table
    and model card is declared with its page."""
    p = load_params(ROOT / "params.yaml")
    out = Layout.of(p, absolute=False).report_outputs(p.models, p.datasets, optimism=True)
    markdown = {k: v for k, v in out.items() if v.endswith(".md")}
    assert len(markdown) == len(report_tables(p.models, optimism=True)) + len(p.datasets) * len(p.models)
    assert all(out[page_key(k)] == page_of(v) == v.removesuffix(".md") + ".html" for k, v in markdown.items())
    assert out["results_html"] == "reports/results.html"
    assert out[page_key(model_card_key("dvlog", "mean-mlp"))] == "reports/model_cards/dvlog-mean-mlp.html"
    assert len(set(out.values())) == len(out)
