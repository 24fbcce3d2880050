"""The report's tables and model cards as HTML pages, which Snakemake's report shows inline
(it only offers Markdown for download).

Each page is the Markdown file beside it rendered by markdown-it-py (CommonMark with GFM tables),
in one self-contained file: the style sheet is inline, and nothing is fetched, so a page reads the
same inside the report, opened from disk, or logged to MLflow.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from asym.config import Params
from asym.io import write_text
from asym.layout import PAGE_SUFFIX

MARKDOWN_SUFFIX = ".md"

# Wide tables (15 columns) scroll inside their own box, so the prose beside them keeps a readable
# measure; the header row stays in view while a long table scrolls.
STYLE = """
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933;
       margin: 1.5rem; }
h1 { font-size: 1.5rem; margin-top: 0; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #cbd2d9; }
h3 { font-size: 1rem; margin-top: 1.5rem; }
p, ul, ol { max-width: 60rem; }
code { background: #f0f4f8; padding: 0 0.25rem; border-radius: 3px; }
.table { overflow: auto; max-height: 85vh; margin: 1rem 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #cbd2d9; padding: 0.25rem 0.6rem; white-space: nowrap; text-align: left; }
thead th { background: #e4e7eb; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #f5f7fa; }
tbody tr:hover { background: #fff3c4; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}</body>
</html>
"""


@cache
def _markdown() -> MarkdownIt:
    """CommonMark with GFM tables; raw HTML in the source is shown as text, never run. One parser
    serves every page."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def table_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return '<div class="table">\n' + self.renderToken(tokens, idx, options, env)

    def table_close(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return self.renderToken(tokens, idx, options, env) + "</div>\n"

    md.add_render_rule("table_open", table_open)
    md.add_render_rule("table_close", table_close)
    return md


def _title(tokens: list[Token], fallback: str) -> str:
    """The first heading's text (Markdown marks dropped), else `fallback`."""
    for i, tok in enumerate(tokens[:-1]):
        if tok.type == "heading_open":
            inline = tokens[i + 1]
            return "".join(child.content for child in inline.children or []) or fallback
    return fallback


def render_page(markdown: str, fallback_title: str) -> str:
    """A Markdown document as one self-contained HTML page."""
    md = _markdown()
    tokens = md.parse(markdown)
    body = md.renderer.render(tokens, md.options, {})
    return PAGE.format(title=escape(_title(tokens, fallback_title)), style=STYLE, body=body)


def write_page(source: Path, page: Path) -> None:
    write_text(page, render_page(source.read_text(encoding="utf-8"), source.stem))


def write_pages(params: Params, outputs: dict[str, Path]) -> None:
    """Each Markdown table of `outputs`, and the model cards, beside it as HTML: every `.html`
    output is the page of the `.md` file of the same name (asym.layout.page_of). `params` is the
    run's; the pages need nothing of it beyond the files."""
    for path in outputs.values():
        if path.suffix == PAGE_SUFFIX:
            write_page(path.with_suffix(MARKDOWN_SUFFIX), path)
