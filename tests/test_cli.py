"""The `asym` command line as a researcher reads it: every option explained, the workflow's own
options out of sight but accepted, `--version`, and a `models` listing with a header line."""

from __future__ import annotations

import argparse
import importlib.metadata
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from asym import cli
from asym.config import load_params
from asym.dag import stages
from asym.layout import PACKAGE
from asym.models import registry

ROOT = Path(__file__).resolve().parents[1]
# Options only the workflow writes (asym.dag.stages): accepted, never shown.
INTERNAL = {("train", "--entry-digest"), *((step, "--code-digest") for step in cli.DAG_STEPS)}
# The pipeline's steps in the order they run: the command list and the description follow it.
PIPELINE = ["fetch", "convert", "split", "train", "evaluate", "report", "track"]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    """(command, option) for every option of the top-level parser ("") and of every sub-command."""
    for name, p in [("", parser), *_commands(parser).items()]:
        for action in p._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action


def _without_help(parser: argparse.ArgumentParser) -> list[str]:
    return [f"{name} {a.option_strings[0]}".strip() for name, a in _options(parser)
            if (a.help is None or not a.help.strip()) and (name, a.option_strings[0]) not in INTERNAL]


@pytest.fixture
def help_text(capsys):
    """`asym [command] --help` as the user reads it."""
    def read(*argv: str) -> str:
        with pytest.raises(SystemExit) as stop:
            cli.build_parser().parse_args([*argv, "--help"])
        assert stop.value.code == 0
        return capsys.readouterr().out
    return read


# --- help ----------------------------------------------------------------------------------------
def test_every_option_of_every_command_says_what_it_is_for():
    parser = cli.build_parser()
    assert len(_commands(parser)) >= len(PIPELINE)
    assert _without_help(parser) == []


def test_an_option_added_without_help_is_caught():
    parser = cli.build_parser()
    _commands(parser)["report"].add_argument("--undocumented")
    assert _without_help(parser) == ["report --undocumented"]


def test_every_command_has_a_summary_and_a_description():
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {c.dest: c.help for c in sub._choices_actions}
    for name, p in _commands(parser).items():
        assert summaries[name] and p.description and p.description.startswith(summaries[name]), name


def test_defaults_are_shown_where_there_is_one_and_never_as_none(help_text):
    def flat(*argv: str) -> str:
        """The help with its line wrapping undone: where argparse breaks a line depends on the terminal."""
        return " ".join(help_text(*argv).split())

    ui = flat("ui")
    assert "(default: 127.0.0.1)" in ui and "(default: 5000)" in ui
    assert "(default: authors)" in flat("synth")
    assert "(default: dvc.yaml)" in flat("dvc-yaml")
    for name in _commands(cli.build_parser()):
        text = flat(name)
        assert "default: None" not in text and "default: False" not in text, name


def test_the_description_speaks_to_a_researcher_in_the_pipelines_order(help_text):
    text = help_text()
    line = next(x for x in text.splitlines() if "->" in x)
    assert [s.strip() for s in line.split("->")] == PIPELINE
    assert "README.md" in text and "examples:" in text
    listed = [x.split()[0] for x in text.split("commands:")[1].split("examples:")[0].splitlines()
              if x.startswith("    ") and not x.startswith("     ")]
    assert listed[:len(PIPELINE) + 1] == ["synth", *PIPELINE]


def test_the_description_fits_a_terminal_as_written():
    """Its lines are kept as written (the pipeline line, the examples), so none may run past a
    standard terminal's width."""
    width = 80
    assert max(len(x) for x in (cli.DESCRIPTION + "\n" + cli.EPILOG).splitlines()) <= width


def test_the_examples_in_the_help_are_command_lines_asym_accepts():
    examples = [shlex.split(x)[1:] for x in cli.EPILOG.splitlines() if x.strip().startswith("asym ")]
    assert examples
    for argv in examples:
        assert cli.build_parser().parse_args(argv).command == argv[0]


# --- options only the workflow passes ------------------------------------------------------------
def test_internal_options_are_hidden_and_only_those(help_text):
    hidden = {(name, a.option_strings[0]) for name, a in _options(cli.build_parser()) if a.help == argparse.SUPPRESS}
    assert hidden == INTERNAL
    for name, flag in INTERNAL:
        assert flag not in help_text(name)


def test_internal_options_are_still_accepted():
    args = cli.build_parser().parse_args(["train", "--dataset", "dvlog", "--model", "asym", "--entry-digest", "0123abcd"])
    assert args.entry_digest == "0123abcd"


def test_every_command_line_the_workflow_writes_parses():
    p = load_params(ROOT / "params.yaml")
    seen = set()
    for stage in stages.STAGES:
        for w in stage.instances(p):
            argv = stage.command(p, w)
            args = cli.build_parser().parse_args(["--params", str(p.path), *argv])
            assert args.command == stage.step
            seen |= {(args.command, a) for a in argv if a.startswith("--")}
    assert seen >= INTERNAL, "each hidden option is one the workflow passes"


# --- --version -----------------------------------------------------------------------------------
def _version_output(capsys) -> tuple[int | str | None, str, str]:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def test_version_is_the_installed_distributions(capsys):
    assert _version_output(capsys) == (0, f"asym {importlib.metadata.version('asym')}\n", "")


def test_version_from_a_checkout_never_installed_is_pyprojects(capsys, monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    declared = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert _version_output(capsys)[:2] == (0, f"asym {declared}\n")


def test_version_without_metadata_or_pyproject_is_an_error_not_a_guess(capsys, monkeypatch, tmp_path):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr("asym.layout.PACKAGE", tmp_path / "asym")
    code, out, err = _version_output(capsys)
    assert code == 2 and out == ""
    assert "pyproject.toml is missing" in err


# --- asym models ---------------------------------------------------------------------------------
def _models(capsys, *argv: str) -> list[list[str]]:
    assert cli.main(["models", *argv]) == 0
    return [line.split(maxsplit=3) for line in capsys.readouterr().out.splitlines()]


def test_models_prints_a_header_then_one_model_a_line(capsys):
    header, *rows = _models(capsys)
    assert header == ["model", "kind", "recipe", "description"]
    assert [r[0] for r in rows] == registry.names()
    for name, kind, recipe, description in rows:
        e = registry.get(name)
        assert (kind, recipe, description) == (e.kind, e.recipe, e.description)


def test_models_of_one_kind_keep_the_header(capsys):
    header, *rows = _models(capsys, "--kind", "baseline")
    assert header[:3] == ["model", "kind", "recipe"]
    assert [r[0] for r in rows] == registry.names("baseline") and {r[1] for r in rows} == {"baseline"}


def test_model_columns_line_up_under_their_header(capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = [lines[0].index(h) for h in ("kind", "recipe", "description")]
    for line in lines[1:]:
        assert all(line[s - 1] == " " and line[s] != " " for s in starts), line


def test_details_header_names_each_column(capsys):
    counts = {"demo/dvlog": 1000, "paper/dvlog": 4000}
    rows = [{"model": "asym", "kind": "asym", "recipe": "asym", **counts},
            {"model": "a-much-longer-baseline-name", "kind": "baseline", "recipe": "caf-mamba",
             "demo/dvlog": 500, "paper/dvlog": 8000}]
    cli.print_details(rows, ["asym", "a-much-longer-baseline-name"])
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "kind", "recipe", "demo/dvlog", "paper/dvlog"]
    assert lines[1].split() == ["a-much-longer-baseline-name", "baseline", "caf-mamba", "500", "(0.50)", "8,000", "(2.00)"]
    assert len({len(x) for x in (header, *lines)}) == 1, "every row as wide as the header"


def test_a_reader_that_stops_early_gets_no_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "asym", "models"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()                     # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err, err
