"""The report's LaTeX: every character escaped or mapped to ASCII, wide and long tables laid out to
fit, and every table compiled by a real pdflatex inside a document that loads only the packages
the file's header names."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from asym.data.protocols import OPTIMISM_PROTOCOLS
from asym.report import latex, optimism
from asym.report.build import make_report
from asym.report.latex import escape, to_latex
from tests.report import tex_engine
from tests.report.test_report import _write_runs

SMP_END = 0x20000
SURROGATES = (0xD800, 0xDFFF)

# --- escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tex"), [
    ("50%", r"50\%"), ("a_b", r"a\_b"), ("a&b", r"a\&b"), ("#1", r"\#1"), ("$5", r"\$5"),
    ("{x}", r"\{x\}"), ("a~b", r"a\textasciitilde{}b"), ("x^2", r"x\textasciicircum{}2"),
    ("a\\b", r"a\textbackslash{}b"), ("<0.001", "$<$0.001"), ("a>b", "a$>$b"), ("|x|", "$|$x$|$"),
    ("[95% CI]", r"{[}95\% CI{]}"), ("a * b", "a {*} b"), ('"q"', "''q''"), ("a\nb", "a b"),
    ("--seed", "-{}-seed"), ("a---b", "a-{}-{}-b"),
])
def test_every_latex_special_is_escaped(text, tex):
    assert escape(text) == tex


@pytest.mark.parametrize(("text", "tex"), [
    ("α = 0.05", r"$\alpha$ = 0.05"), ("ΔF1", r"$\Delta$F1"), ("46.67 ± 20.21", r"46.67 $\pm$ 20.21"),
    ("0–1", "0--1"), ("a — b", "a --- b"), ("≥ 3", r"$\geq$ 3"), ("≤ 3", r"$\leq$ 3"), ("2 × 3", r"2 $\times$ 3"),
    ("≈ 7%", r"$\approx$ 7\%"), ("a → b", r"a $\rightarrow$ b"), ("…", r"\ldots{}"), ("✓", r"$\surd$"),
    ("−5.32", "$-$5.32"), ("**asym** ◀", r"\textbf{asym} $\triangleleft$"), ("n\u00a0=\u00a03", "n~=~3"),
])
def test_the_reports_unicode_has_a_pdflatex_form(text, tex):
    assert escape(text) == tex


def test_markdown_bold_and_code_become_textbf_and_texttt_with_their_insides_escaped():
    assert escape("**46.67 ± 1.00**") == r"\textbf{46.67 $\pm$ 1.00}"
    assert escape("protocol `select_on_test`") == r"protocol \texttt{select\_on\_test}"
    assert escape("**`a_b`** and `c`") == r"\textbf{\texttt{a\_b}} and \texttt{c}"
    assert escape("a ** b") == "a {*}{*} b"                      # one unpaired mark is kept as text


def test_greek_letters_accents_and_compatibility_forms_follow_rules_not_a_list():
    assert escape("βγΩ") == r"$\beta{}\gamma{}\Omega$"          # neighbouring math is one group
    assert escape("Α") == "A"                                    # a Greek capital LaTeX lacks looks Latin
    assert escape("Zoë Ångström Straße") == r"Zo\"{e} \r{A}ngstr\"{o}m Stra\ss{}e"
    assert escape("ﬁ ％ Ｘ") == r"fi \% X"
    assert escape("x²³") == "x$^{2}{}^{3}$"                      # never a double superscript
    assert escape("a\u200bb") == "ab"                            # invisible format characters go


def test_an_unknown_character_is_written_as_its_code_point_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger=latex.__name__):
        assert escape("☃ ok") == "{[}U+2603{]} ok"
    assert "SNOWMAN" in caplog.text


def test_no_character_comes_out_non_ascii_nor_as_display_math(caplog):
    """Every code point of the basic and supplementary multilingual planes (emoji included)."""
    caplog.set_level(logging.ERROR, logger=latex.__name__)
    chars = [chr(i) for i in range(SMP_END) if not SURROGATES[0] <= i <= SURROGATES[1]]
    out = escape("".join(chars))
    assert out.isascii()
    assert "$$" not in out.replace(r"\$", "")


# --- layout -------------------------------------------------------------------------------------


def _table(columns: int, rows: int, cell: str = "46.67 ± 20.21") -> pd.DataFrame:
    return pd.DataFrame([[f"model{r}", *[cell] * (columns - 1)] for r in range(rows)],
                        columns=["model", *[f"F1 {c}" for c in range(1, columns)]])


CELL_WIDTH = len("46.67 ± 20.21") + latex.COLUMN_GAP_CHARS
FIRST_WIDTH = len("model0") + latex.COLUMN_GAP_CHARS


def test_a_narrow_short_table_is_an_upright_float_that_only_shrinks():
    tex = to_latex(_table(3, 4), "Narrow")
    assert tex.startswith(latex.HEADER + "\n")
    assert latex.layout(_table(3, 4), "Narrow") == latex.Layout(False, False, [[0, 1, 2]])
    assert r"\begin{table}" in tex and r"\begin{tabular}{lrr}" in tex and "landscape" not in tex
    assert r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}" in tex


def test_the_width_threshold_sends_a_table_to_a_landscape_page():
    fits = (latex.PORTRAIT_CHARS - FIRST_WIDTH) // CELL_WIDTH + 1
    assert latex.natural_width(_table(fits, 3)) <= latex.PORTRAIT_CHARS < latex.natural_width(_table(fits + 1, 3))
    assert "landscape" not in to_latex(_table(fits, 3), "Fits")
    wide = to_latex(_table(fits + 1, 3), "Wide")
    assert wide.index(r"\begin{landscape}") < wide.index(r"\begin{table}") < wide.index(r"\end{landscape}")
    assert r"\small" in wide and rf"\setlength{{\tabcolsep}}{{{latex.WIDE_TABCOLSEP}}}" in wide


def test_a_float_shrinks_so_far_and_is_split_by_columns_beyond():
    capacity = latex.LANDSCAPE_CHARS / latex.SMALL_SCALE
    shrinks = int(capacity / latex.MIN_SHRINK - FIRST_WIDTH) // CELL_WIDTH + 1
    assert latex.layout(_table(shrinks, 3), "c") == latex.Layout(True, False, [list(range(shrinks))])
    split = latex.layout(_table(shrinks + 1, 3), "c")
    assert not split.long and len(split.parts) == 2 and all(p[0] == 0 for p in split.parts)
    assert sorted(c for p in split.parts for c in p[1:]) == list(range(1, shrinks + 1))
    assert all(latex.natural_width(_table(shrinks + 1, 3).iloc[:, p]) <= capacity for p in split.parts)
    tex = to_latex(_table(shrinks + 1, 3), "Split")
    assert tex.count(r"\begin{table}") == 1 and tex.count(r"\begin{tabular}") == 2
    assert tex.count(r"\caption{") == 1 and tex.count("model0 &") == 2


def test_a_table_taller_than_the_page_with_its_caption_becomes_a_longtable():
    rows = latex.PORTRAIT_LINES - latex.RULE_LINES - 2                  # a one-line header and caption
    assert not latex.layout(_table(3, rows), "Fits a page").long
    assert r"\begin{longtable}" not in to_latex(_table(3, rows), "Fits a page")
    assert latex.layout(_table(3, rows + 1), "One row more").long
    assert not latex.layout(_table(3, rows - 4), "x" * latex.PORTRAIT_CHARS * 5).long  # a five-line caption
    assert latex.layout(_table(3, rows - 3), "x" * latex.PORTRAIT_CHARS * 5).long
    tex = to_latex(_table(3, rows + 1), "Long")
    assert r"\begin{longtable}{lrr}" in tex and r"\begin{table}" not in tex
    assert tex.count("model & F1 1 & F1 2") == 2 and r"\endhead" in tex    # the header on every page
    rows_landscape = latex.LANDSCAPE_LINES - latex.RULE_LINES - 2
    assert not latex.layout(_table(6, rows_landscape), "c").long
    assert latex.layout(_table(6, rows_landscape + 1), "c") == latex.Layout(True, True, [list(range(6))])


def test_a_longtable_too_wide_for_its_page_is_split_by_columns_under_one_number():
    view = _table(15, latex.LANDSCAPE_LINES)
    fit = latex.layout(view, "Wide and long")
    assert fit.landscape and fit.long and len(fit.parts) == 2
    capacity = latex.LANDSCAPE_CHARS / latex.SMALL_SCALE
    assert all(latex.natural_width(view.iloc[:, p]) <= capacity for p in fit.parts)
    assert latex.column_parts(view, capacity) == fit.parts
    assert latex.column_parts(_table(3, 2), capacity) == [[0, 1, 2]]
    tex = to_latex(view, "Wide and long")
    assert tex.count(r"\begin{longtable}") == 2 and tex.count(r"\caption{") == 1
    assert tex.index(r"\addtocounter{table}{-1}") > tex.index(r"\end{longtable}")


def test_a_header_wider_than_its_cells_is_wrapped_to_them_but_not_inside_marks_or_brackets():
    name = "Acc `kfold select` (optimistic) [95% CI]"
    assert latex.header_lines(name, 20) == ["Acc `kfold select`", "(optimistic)", "[95% CI]"]
    assert latex.header_lines("p (ΔF1)", 5) == ["p (ΔF1)"]                      # HEADER_MIN_CHARS
    assert latex.header_lines("short", 20) == ["short"]
    view = pd.DataFrame({"model": ["asym"], name: ["46.67 [40.00, 53.33]"]})
    assert latex.natural_width(view) == len("model") + len("46.67 [40.00, 53.33]") + 2 * latex.COLUMN_GAP_CHARS
    tex = to_latex(view, "c")
    assert (r"\begin{tabular}[b]{@{}r@{}}Acc \texttt{kfold select} \\ (optimistic) \\ {[}95\% CI{]}\end{tabular}"
            in tex)


def test_numbers_are_right_aligned_and_words_left():
    view = pd.DataFrame({"model": ["a", "b"], "group": ["long", "short"], "n": ["12", "–"],
                         "CI": ["[40.00, 53.33]", "[–]"], "p": ["<0.001", "0.049"], "Δ": ["+2.25", "−5.32"]})
    assert latex.to_latex(view, "c").count(r"\begin{tabular}{llrrrr}") == 1


def test_the_view_is_left_as_it_was_for_the_markdown_table():
    view = _table(3, 2).assign(model=["**asym** ◀", "`mean-mlp`"])
    before = view.copy()
    to_latex(view, "Caption")
    pd.testing.assert_frame_equal(view, before)


# --- compiling ----------------------------------------------------------------------------------


def _packages_named(tex: str) -> list[str]:
    """The packages the header comment of a written .tex names."""
    named = re.findall(r"^%.*\\usepackage\{([^}]*)\}", tex, flags=re.MULTILINE)
    assert named, "no header naming the packages"
    return list(dict.fromkeys(p for group in named for p in group.split(",")))


def test_without_an_engine_the_skip_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(tex_engine.debian, "missing", lambda binaries: ["pdflatex"])
    monkeypatch.setattr(tex_engine.os, "geteuid", lambda: 1000)
    reason = tex_engine.unavailable_reason(latex.PACKAGES)
    assert reason is not None and all(p in reason for p in tex_engine.APT_PACKAGES) and "pdflatex" in reason


@pytest.fixture(scope="module")
def pdflatex() -> None:
    """Debian's pdflatex with the packages the headers name, installed where missing; a skip
    only without root or apt-get."""
    reason = tex_engine.unavailable_reason(latex.PACKAGES)
    if reason:
        pytest.skip(reason)
    if tex_engine.missing(latex.PACKAGES):
        tex_engine.install()


def test_a_latex_package_the_engine_lacks_is_reported_missing(pdflatex):
    assert tex_engine.missing(latex.PACKAGES) == []
    assert tex_engine.missing(["booktabs", "no-such-package-here"]) == ["no-such-package-here.sty"]


def _compile(tex: str, folder: Path, name: str) -> str:
    """`tex` written as `name`.tex and \\input into a minimal article that loads exactly the
    packages its header names; the compiler's log, after checking that the pages fit."""
    assert tex.isascii(), [c for c in tex if not c.isascii()]
    assert tex.startswith(latex.HEADER + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.tex").write_text(tex)
    wrapper = folder / f"{name}-document.tex"
    wrapper.write_text(tex_engine.document(rf"\input{{{name}}}", _packages_named(tex)))
    proc = tex_engine.compile_pdf(wrapper)
    log = (folder / f"{name}-document.log").read_text(errors="replace")
    assert proc.returncode == 0, f"{name}.tex does not compile:\n{proc.stdout[-4000:]}"
    assert (folder / f"{name}-document.pdf").stat().st_size > 0
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*\n.*", log)
    assert "Float too large" not in log
    assert tex_engine.RERUN not in log, "the widths never settled"
    return log


def _optimism_view() -> pd.DataFrame:
    """The protocol-optimism table as `optimism.write_table` lays it out, on hand-made numbers."""
    honest, optimistic = OPTIMISM_PROTOCOLS
    row = {"model": "mean-mlp", "threshold_rule": "valid_f1", f"threshold_{honest}": 0.41,
           f"threshold_{optimistic}": 0.47, "delta_f1_p": 0.004995, "n_seeds": 3}
    for k in optimism.COMPARED:
        for name in (*(f"{k}_{pr}" for pr in OPTIMISM_PROTOCOLS), f"delta_{k}"):
            row |= {name: 0.4667, f"{name}_ci_low": 0.4, f"{name}_ci_high": 0.5333}
    return optimism.view(pd.DataFrame([row, {**row, "model": "tamfn", "threshold_rule": "0.5"}]))


def test_every_table_of_a_report_compiles_with_pdflatex(pdflatex, tmp_path):
    files = make_report(_write_runs(tmp_path))
    written = {name: path.read_text() for name, path in files.items() if name.endswith("_tex")}
    assert {"results_tex", "comparison_tex", "ablation_tex", "fairness_tex"} <= set(written)
    written["protocol_optimism_tex"] = to_latex(_optimism_view(), f"Protocol optimism (dvlog). {optimism.CAPTION}")
    for name, tex in written.items():
        assert tex.count(latex.HEADER) == tex.count(r"\caption{") >= 1      # a header on every table
        _compile(tex, tmp_path / "tex", name)


def test_every_mapped_character_and_every_layout_compiles(pdflatex, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger=latex.__name__)
    every = "".join([*latex.ASCII_SPECIALS, *latex.UNICODE_FORMS, "βΩΑάéÅﬁ²³☃\u200b"])
    caption = f"All of them: {every} **bold {every}** `code {every}`"
    view = pd.DataFrame({"model": ["**asym** ◀", every[:20], f"`{every[20:40]}`"],
                         "text": [every[40:60], every[60:80], f"**{every[80:100]}**"],
                         "rest": [every[100:], "[+2.84, +11.19]", "*"]})
    shapes = {"wide": (8, 3), "split": (15, 3), "long": (4, 60), "wide and long": (8, 60),
              "split and long": (15, 60)}
    fits = {name: latex.layout(_table(*shape), name) for name, shape in shapes.items()}
    assert [(f.landscape, f.long, len(f.parts)) for f in fits.values()] == [
        (True, False, 1), (True, False, 2), (False, True, 1), (True, True, 1), (True, True, 2)]
    tables = [to_latex(view, caption), *(to_latex(_table(*shape), name) for name, shape in shapes.items())]
    log = _compile("\n".join(tables), tmp_path, "every")
    pages = int(re.search(r"Output written on .*? \((\d+) pages?", log.replace("\n", "")).group(1))
    assert pages >= 4                                            # the long ones really went over pages
