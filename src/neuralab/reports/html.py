"""Self-contained HTML reports: one file, inline style, pictures embedded as data: URLs, no
script, readable offline and safe to serve (the web app shows them as they are).

A page is a title, an optional verdict (the first thing a reader must know, in colour), an
optional lead, then sections of (heading, HTML) built with the helpers below.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
from pathlib import Path
from typing import Callable, Iterable, Iterator

from neuralab.errors import NeuralabError, interrupts_unwrapped, reduced
from neuralab.files import WriteError, atomic_write, run_write_advice
from neuralab.runs import CONFIG, REPORT, Kind, report_call

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.95em}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}tr.hl{background:#eef3fb;font-weight:600}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}img{max-width:100%}
.lead{font-size:1.1em;background:#f3f7ff;border-left:4px solid #36c;padding:.6em 1em}
.verdict{font-size:1.15em;padding:.8em 1em;border-radius:6px}
.good{background:#e8f5e9;border-left:6px solid #2e7d32}.bad{background:#fff3e0;border-left:6px solid #e65100}
.muted{color:#777;font-size:.9em}
"""


def esc(text) -> str:
    return html.escape(str(text))


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def cell(value) -> str:
    """A table cell's text: floats to 4 significant digits ("n/a" when undefined), None empty."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else esc(value)


SHOWN_PNG_BYTES = 5_000_000  # a report's figure is tens of kB; a far larger file there is no figure of it


def notebook_display(text: str, run, figures: Iterable[tuple[str, str]]) -> str:
    """What Jupyter shows of a run's result: ``text``, then the ``figures`` (file in the run,
    alt text) its report drew, read through ``run.file`` (no link out of the run), and where
    the whole report is. A display never fails: a figure moved, linked out or too big is left out."""
    parts = [pre(text)]
    for name, alt in figures:
        try:
            path = run.file(name)
            if path.is_file() and path.stat().st_size <= SHOWN_PNG_BYTES:
                parts.append(img(path.read_bytes(), alt))
        except (NeuralabError, OSError):
            continue
    report = Path(run.path) / REPORT
    if report.is_file():
        parts.append(paragraph(f"the whole report: {esc(report)}", muted=True))
    return "\n".join(parts)


def table(header: list[str], rows: Iterable[list], highlight: Iterable[int] = ()) -> str:
    """A table of ``rows`` (lists of cells, in ``header``'s order); the rows numbered in
    ``highlight`` stand out (the network among the baselines)."""
    marked = set(highlight)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(f"<tr{' class=hl' if i in marked else ''}>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def pretty(obj) -> str:
    """A configuration or environment as a <pre> block of indented JSON, keys sorted."""
    return pre(json.dumps(obj, indent=2, sort_keys=True, default=str))


def paragraph(inner_html: str, muted: bool = False) -> str:
    return f'<p class="muted">{inner_html}</p>' if muted else f"<p>{inner_html}</p>"


def items(lines: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>"


def verdict(sentence: str, good: bool | None) -> str:
    """The first block of a page: one sentence, green when the news is good, orange if not, in
    neither colour where ``good`` is None (nothing judged)."""
    shade = {True: " good", False: " bad", None: ""}[good]
    return f'<p class="verdict{shade}">{esc(sentence)}</p>'


def page(title: str, sections: list[tuple[str, str]], verdict: str = "", lead: str = "", footer: str = "") -> str:
    """A whole HTML document. ``sections`` are (heading, inner HTML) pairs, a heading of ""
    for none; ``verdict`` (from ``verdict``) and ``lead`` (inner HTML) come first."""
    body = "".join((f"<h2>{esc(h)}</h2>" if h else "") + content for h, content in sections)
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    footer_html = f'<p class="muted">{footer}</p>' if footer else ""
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style><h1>{esc(title)}</h1>{verdict}{lead_html}{body}{footer_html}</html>\n")


def write(path: str | Path, document: str) -> Path:
    with atomic_write(path) as f:
        f.write(document)
    return Path(path)


class ReportInterrupted(KeyboardInterrupt):
    """Ctrl-C while a finished run's report was written: the run is whole, with no resume to
    give; the message ends with ``way_on``, by default the Python call that writes the report
    again (``runs.report_call``), for which the command line puts its own command (``said_with``)."""

    def __init__(self, run_dir: str | Path, way_on: str | None = None):
        self.run_dir = Path(run_dir)
        self.kept = (f"{self.run_dir / REPORT}: interrupted; the run is finished and its weights and results "
                     "are kept")
        super().__init__(f"{self.kept}; {_written_again(self.run_dir, way_on)}")

    def said_with(self, way_on: str) -> "ReportInterrupted":
        return ReportInterrupted(self.run_dir, way_on)

    def __reduce__(self):
        return reduced(self)


class ReportNotWritten(NeuralabError):
    """A finished run's report that a full disk or a read-only folder stopped (``why``, the
    errno ``code``, which chooses the advice); the message ends with ``way_on``, as
    ReportInterrupted's does."""

    def __init__(self, run_dir: str | Path, why: str, way_on: str | None = None, code: int | None = None):
        self.run_dir, self.why, self.code = Path(run_dir), why, code
        then = _written_again(self.run_dir, way_on, lambda again: run_write_advice(code, self.run_dir, again))
        super().__init__(f"{self.run_dir / REPORT}: not written ({why}); the weights and results in "
                         f"{self.run_dir} are kept; {then}")

    def said_with(self, way_on: str) -> "ReportNotWritten":
        return ReportNotWritten(self.run_dir, self.why, way_on, self.code)


def _written_again(run_dir: Path, way_on: str | None, first: Callable[[str], str] | None = None) -> str:
    """What writes the report of the run in ``run_dir`` again, said by ``first`` (what to do
    before it, then it) where given."""
    way_on = way_on or report_call(run_dir)
    if way_on is None:  # each kind has its own write_report, and config.json says no kind neuralab knows
        kinds = " or ".join(repr(kind.value) for kind in Kind)
        return (f"no call draws the report again until {run_dir / CONFIG} names the run's kind ({kinds}); "
                "results.json holds its figures")
    again = f"`{way_on}` writes the report again"
    return first(again) if first else again


@contextlib.contextmanager
def kept_if_unwritable(run_dir: Path) -> Iterator[None]:
    """Writing a run's report (its PNGs, then report.html) after its weights and results:
    a full disk, a read-only folder or Ctrl-C (as itself, or as an error a library raised over
    it: matplotlib's import) stops the report alone, in one line that says so."""
    try:
        with interrupts_unwrapped():
            yield
    except KeyboardInterrupt:  # the run is finished: no resume for it, only the report to write again
        raise ReportInterrupted(run_dir) from None
    except (OSError, WriteError) as e:
        raise ReportNotWritten(run_dir, e.strerror or str(e), code=e.errno) from None
