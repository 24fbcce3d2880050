"""The report's tables as LaTeX that pdflatex compiles: every cell is reduced to ASCII, and wide or
long tables get a layout that fits a page.

Each table is meant to be `\\input` into a paper, so it starts with a comment naming the packages
it needs (PACKAGES). Text is escaped here rather than by pandas because the cells carry Markdown
(`**bold**`, `` `code` ``) and Unicode (±, Δ, α, ≥, ◀, ...) that pdflatex, without inputenc or
fontenc, stops on or prints wrongly; the output is plain ASCII whatever the paper's encodings.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

# booktabs: the rules; graphicx: shrinking a float to the line; longtable: tables that break across
# pages; pdflscape: wide tables on a landscape page (turned upright in the PDF viewer).
PACKAGES = ("booktabs", "graphicx", "longtable", "pdflscape")
HEADER = (f"% Table written by asym's report. Needs pdflatex (or any TeX engine) with "
          f"\\usepackage{{{','.join(PACKAGES)}}} in the preamble; ASCII only, so no inputenc or fontenc.")

# The layout is chosen from the table's natural width in characters of the body font (column gaps
# included), its rows and its caption's length. An article's 10pt \linewidth of 345pt holds about
# 75 such characters and its page about 45 lines; a landscape page (\linewidth = \textheight,
# about 550pt) holds about 110 characters and 28 lines. A table wider than PORTRAIT_CHARS goes on
# a landscape page, in \small with narrower gaps.
PORTRAIT_CHARS = 75
LANDSCAPE_CHARS = 110
PORTRAIT_LINES = 45
LANDSCAPE_LINES = 28
SMALL_SCALE = 0.9             # \small is 9pt in a 10pt document
COLUMN_GAP_CHARS = 2          # 2\tabcolsep = 12pt, a little over two characters
WIDE_TABCOLSEP = "4pt"
RULE_LINES = 2                # the booktabs rules around the header, counted as lines
# A header wider than its column's cells is wrapped at spaces to the cells' width, never narrower
# than this, so a long name does not widen its column.
HEADER_MIN_CHARS = 8
# A float still too wide is shrunk to the line, but to no less than this (about 7pt type); a wider
# one is split by columns into parts stacked under one caption, each repeating the row's name.
MIN_SHRINK = 0.8

# Markdown bold and inline code, the two marks the report's views use.
_MARKDOWN = re.compile(r"\*\*(?P<bold>.+?)\*\*|`(?P<code>[^`]+)`")
_NUMERIC = re.compile(r"^[\[(<>≥≤]?[+\-−]?\.?\d")
_UNBROKEN = re.compile(rf"{_MARKDOWN.pattern}|\[[^\]]*\]|\([^)]*\)")
_KEEP = "\x00"
_PLACEHOLDERS = {"", "–", "-", "—", "[–]", "n/a"}

# ASCII characters that LaTeX treats specially, or that the default OT1 encoding prints as another
# glyph (<, >, | and " come out as ¡, ¿, — and ”). Brackets are braced so that a cell starting with
# "[" after "\\" is not read as the row's optional spacing argument, and "*" so it is not "\\*".
ASCII_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": "$<$", ">": "$>$", "|": r"$|$", '"': "''",
    "[": "{[}", "]": "{]}", "*": "{*}", "`": r"\textasciigrave{}", "\n": " ", "\t": " ", "\r": " ",
}

# Non-ASCII characters the report writes or is likely to: their pdflatex form ($...$ is math).
UNICODE_FORMS = {
    "±": r"$\pm$", "×": r"$\times$", "÷": r"$\div$", "≈": r"$\approx$", "≃": r"$\simeq$", "∼": r"$\sim$",
    "≥": r"$\geq$", "≤": r"$\leq$", "≠": r"$\neq$", "≡": r"$\equiv$", "−": "$-$", "∓": r"$\mp$",
    "→": r"$\rightarrow$", "←": r"$\leftarrow$", "↔": r"$\leftrightarrow$", "⇒": r"$\Rightarrow$",
    "↑": r"$\uparrow$", "↓": r"$\downarrow$", "∞": r"$\infty$", "√": r"$\surd$", "∑": r"$\sum$",
    "∆": r"$\Delta$", "µ": r"$\mu$", "·": r"$\cdot$", "∈": r"$\in$", "°": r"$^{\circ}$",
    "′": r"$'$", "″": r"$''$", "¹": r"$^{1}$", "²": r"$^{2}$", "³": r"$^{3}$", "½": r"$\frac{1}{2}$",
    "◀": r"$\triangleleft$", "▶": r"$\triangleright$", "◁": r"$\triangleleft$", "▷": r"$\triangleright$",
    "▲": r"$\bigtriangleup$", "▼": r"$\bigtriangledown$", "★": r"$\star$", "☆": r"$\star$",
    "✓": r"$\surd$", "✔": r"$\surd$", "✗": r"$\times$", "✘": r"$\times$", "•": r"$\bullet$",
    "–": "--", "—": "---", "‒": "--", "‐": "-", "‑": "-", "…": r"\ldots{}", "†": r"\dag{}", "‡": r"\ddag{}",
    "§": r"\S{}", "¶": r"\P{}", "©": r"\copyright{}", "‘": "`", "’": "'", "“": "``", "”": "''",
    "„": ",,", "«": "$<<$", "»": "$>>$", "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}", "œ": r"\oe{}",
    "Œ": r"\OE{}", "ø": r"\o{}", "Ø": r"\O{}", "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}",
    "\u00a0": "~", "\u2009": r"\,", "\u202f": r"\,", "\u00ad": r"\-",
}
# Combining accents, after Unicode's canonical decomposition (é = e + U+0301), as text accents.
_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
            "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c",
            "\u0328": "k"}
# Greek capitals that LaTeX has; the others look like Latin capitals (Α is A).
_GREEK_CAPITALS = {"GAMMA", "DELTA", "THETA", "LAMDA", "XI", "PI", "SIGMA", "UPSILON", "PHI", "PSI", "OMEGA"}
_GREEK_LATIN = {"ALPHA": "A", "BETA": "B", "EPSILON": "E", "ZETA": "Z", "ETA": "H", "IOTA": "I", "KAPPA": "K",
                "MU": "M", "NU": "N", "OMICRON": "O", "RHO": "P", "TAU": "T", "CHI": "X"}
_GREEK = re.compile(r"GREEK (SMALL|CAPITAL) LETTER (FINAL )?([A-Z]+)")


def _greek(char: str) -> str | None:
    """A Greek letter as its math symbol, any accent on it dropped (LaTeX's math has none)."""
    match = _GREEK.fullmatch(unicodedata.name(unicodedata.normalize("NFD", char)[0], ""))
    if match is None:
        return None
    case, final, letter = match.groups()
    command = {"LAMDA": "lambda"}.get(letter, letter.lower())
    if case == "SMALL":
        return "o" if letter == "OMICRON" else f"$\\{'var' if final else ''}{command}$"
    if letter in _GREEK_CAPITALS:
        return f"$\\{command.capitalize()}$"
    return _GREEK_LATIN.get(letter)


def _accented(char: str) -> str | None:
    base, *marks = unicodedata.normalize("NFD", char)
    if not marks or not (base.isascii() and base.isalpha()) or not all(m in _ACCENTS for m in marks):
        return None
    out = base
    for mark in marks:
        out = f"\\{_ACCENTS[mark]}{{{out}}}"
    return out


def unknown(char: str) -> str:
    """A character with no LaTeX form here shows as its code point, [U+XXXX], never raw: a raw one
    stops pdflatex or vanishes from the PDF without a word."""
    log.warning("no LaTeX form for %r (%s): written as its code point", char, unicodedata.name(char, "unnamed"))
    return f"{{[}}U+{ord(char):04X}{{]}}"


def _char(char: str) -> str:
    """One character as ASCII LaTeX: the tables above; then Greek letters by name; letters with
    accents by decomposition; compatibility forms (full-width letters, ligatures) by their ASCII
    equivalents; spaces as spaces; invisible format characters dropped; anything else as its
    code point."""
    if char in ASCII_SPECIALS:
        return ASCII_SPECIALS[char]
    if char.isascii():
        return char if char.isprintable() else ""
    if char in UNICODE_FORMS:
        return UNICODE_FORMS[char]
    for rule in (_greek, _accented):
        if (out := rule(char)) is not None:
            return out
    compat = unicodedata.normalize("NFKD", char)
    if compat.isascii() and compat.isprintable() and compat:
        return "".join(_char(c) for c in compat)
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    if category in ("Cf", "Cc"):
        return ""
    return unknown(char)


def _is_math(piece: str) -> bool:
    return len(piece) > 1 and piece.startswith("$") and piece.endswith("$")


def _plain(text: str) -> str:
    """Escape text with no Markdown in it. Neighbouring math pieces are joined into one, since
    "$a$$b$" would open display math; "{}" between them keeps "$^{2}$$^{3}$" from being a double
    superscript."""
    out: list[str] = []
    for i, char in enumerate(text):
        # "--" and "---" are dash ligatures: a hyphen after a hyphen is kept apart
        piece = "{}-" if char == "-" and i and text[i - 1] == "-" else _char(char)
        if out and _is_math(piece) and _is_math(out[-1]):
            out[-1] = out[-1][:-1] + "{}" + piece[1:]
        else:
            out.append(piece)
    return "".join(out)


def escape(value: Any) -> str:
    """A cell or caption as ASCII LaTeX: Markdown **bold** becomes \\textbf, `code` \\texttt, and
    every other character is escaped or mapped (see _char)."""
    text, out, at = str(value), [], 0
    for m in _MARKDOWN.finditer(text):
        out.append(_plain(text[at:m.start()]))
        inner = m.group("bold") if m.group("bold") is not None else m.group("code")
        out.append(("\\textbf{%s}" if m.group("bold") is not None else "\\texttt{%s}") % escape(inner))
        at = m.end()
    out.append(_plain(text[at:]))
    return "".join(out).strip()


def _visible(value: Any) -> str:
    """The text a reader sees in a cell, for measuring it."""
    return str(value).replace("**", "").replace("`", "")


def _numeric(column: pd.Series) -> bool:
    cells = [_visible(c).strip() for c in column]
    filled = [c for c in cells if c not in _PLACEHOLDERS]
    return bool(filled) and all(_NUMERIC.match(c) for c in filled)


def _column_format(view: pd.DataFrame) -> str:
    """Numbers right-aligned, text left-aligned; the first column (the row's name) always left."""
    return "".join("l" if i == 0 or not _numeric(view.iloc[:, i]) else "r" for i in range(view.shape[1]))


@dataclass(frozen=True)
class Layout:
    """How a table is set: on a landscape page or upright; as one float or as a longtable that
    breaks across pages; and its column parts (indices into the view's columns)."""

    landscape: bool
    long: bool
    parts: list[list[int]]


def _cells_width(column: pd.Series) -> int:
    return max((len(_visible(c)) for c in column), default=0)


def header_lines(name: Any, width: int) -> list[str]:
    """A column's header wrapped at spaces to `width` characters (HEADER_MIN_CHARS at least),
    never inside a Markdown span or brackets, whose spaces are held as `_KEEP` meanwhile."""
    kept = _UNBROKEN.sub(lambda m: m.group(0).replace(" ", _KEEP), str(name))
    lines = textwrap.wrap(kept, max(width, HEADER_MIN_CHARS), break_long_words=False, break_on_hyphens=False)
    return [line.replace(_KEEP, " ") for line in lines] or [""]


def _widths(view: pd.DataFrame) -> list[int]:
    """Each column's width in characters: its widest cell or header line, plus the gap."""
    out = []
    for i, name in enumerate(view.columns):
        cells = _cells_width(view.iloc[:, i])
        out.append(max([cells, *(len(_visible(h)) for h in header_lines(name, cells))]) + COLUMN_GAP_CHARS)
    return out


def natural_width(view: pd.DataFrame) -> int:
    """The table's width in characters: each column's widest cell or header, plus the gap."""
    return sum(_widths(view))


def column_parts(view: pd.DataFrame, capacity: float) -> list[list[int]]:
    """The columns split into parts that each fit `capacity` characters, the first column (the
    row's name) repeated in every part; one part when the whole table fits."""
    widths = _widths(view)
    parts: list[list[int]] = [[0]]
    for i in range(1, len(widths)):
        if len(parts[-1]) > 1 and sum(widths[j] for j in parts[-1]) + widths[i] > capacity:
            parts.append([0])
        parts[-1].append(i)
    return parts


def layout(view: pd.DataFrame, caption: str) -> Layout:
    """Landscape beyond PORTRAIT_CHARS of width. A float may shrink to MIN_SHRINK; beyond that its
    columns are split into parts that fit unshrunk. Where the parts' rows and the caption's lines
    exceed the page, a longtable instead, whose parts (it cannot shrink) fit the page unshrunk."""
    width = natural_width(view)
    landscape = width > PORTRAIT_CHARS
    chars, lines = (LANDSCAPE_CHARS, LANDSCAPE_LINES) if landscape else (PORTRAIT_CHARS, PORTRAIT_LINES)
    capacity = chars / SMALL_SCALE if landscape else chars
    whole = [list(range(view.shape[1]))]
    parts = whole if width * MIN_SHRINK <= capacity else column_parts(view, capacity)
    heads = max(len(header_lines(c, _cells_width(view.iloc[:, i]))) for i, c in enumerate(view.columns))
    height = len(parts) * (len(view) + heads + RULE_LINES) + math.ceil(len(_visible(caption)) / chars)
    if height <= lines:
        return Layout(landscape, False, parts)
    return Layout(landscape, True, whole if width <= capacity else column_parts(view, capacity))


def _header(name: Any, column: pd.Series, align: str) -> str:
    """A header cell: one line as it is, several stacked in a tabular of the column's alignment."""
    lines = [escape(h) for h in header_lines(name, _cells_width(column))]
    if len(lines) == 1:
        return lines[0]
    return f"\\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}" + r" \\ ".join(lines) + r"\end{tabular}"


def _rows(view: pd.DataFrame) -> tuple[str, list[str]]:
    align = _column_format(view)
    head = " & ".join(_header(c, view.iloc[:, i], align[i]) for i, c in enumerate(view.columns)) + r" \\"
    body = [" & ".join(escape(c) for c in row) + r" \\" for row in view.itertuples(index=False)]
    return head, body


def _size(fit: Layout) -> list[str]:
    return [r"\small", rf"\setlength{{\tabcolsep}}{{{WIDE_TABCOLSEP}}}"] if fit.landscape else []


def _float(view: pd.DataFrame, caption: str, fit: Layout) -> list[str]:
    """One table float, its column parts stacked, each shrunk to \\linewidth only where it is
    still wider (never enlarged)."""
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{escape(caption)}}}", *_size(fit)]
    for k, columns in enumerate(fit.parts):
        part = view.iloc[:, columns]
        head, body = _rows(part)
        lines += [*([r"\par\medskip"] if k else []),
                  r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
                  f"\\begin{{tabular}}{{{_column_format(part)}}}", r"\toprule", head, r"\midrule", *body,
                  r"\bottomrule", r"\end{tabular}}"]
    return [*lines, r"\end{table}"]


def _long(view: pd.DataFrame, caption: str, fit: Layout) -> list[str]:
    """A longtable, which breaks across pages with its header repeated; its column parts follow
    one another under the table's one number."""
    lines = ["{", *_size(fit), r"\setlength{\LTcapwidth}{\linewidth}"]
    for k, columns in enumerate(fit.parts):
        part = view.iloc[:, columns]
        head, body = _rows(part)
        continued = rf"\multicolumn{{{len(columns)}}}{{l}}{{\tablename\ \thetable{{}} (continued)}} \\"
        first = f"\\caption{{{escape(caption)}}} \\\\" if k == 0 else continued
        lines += [*([r"\addtocounter{table}{-1}"] if k else []),       # a part keeps the table's number
                  f"\\begin{{longtable}}{{{_column_format(part)}}}", first, r"\toprule", head, r"\midrule",
                  r"\endfirsthead", continued, r"\toprule", head, r"\midrule", r"\endhead",
                  r"\bottomrule", r"\endfoot", *body, r"\end{longtable}"]
    return [*lines, "}"]


def to_latex(view: pd.DataFrame, caption: str) -> str:
    """One table of formatted strings as a LaTeX block that starts with the packages it needs:
    booktabs rules, caption above, numbers right-aligned; see `layout` for how it is fitted."""
    fit = layout(view, caption)
    lines = (_long if fit.long else _float)(view, caption, fit)
    if fit.landscape:
        lines = [r"\begin{landscape}", *lines, r"\end{landscape}"]
    return "\n".join([HEADER, *lines]) + "\n"

