"""Self-contained HTML reports: one file, pictures embedded, readable offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from neuralab.files import atomic_write

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}
img{max-width:100%}.lead{font-size:1.1em;background:#f3f7ff;border-left:4px solid #36c;padding:.6em 1em}
.muted{color:#777;font-size:.9em}
"""


def esc(text) -> str:
    return html.escape(str(text))


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def page(title: str, sections: list[tuple[str, str]], lead: str = "", footer: str = "") -> str:
    """A whole HTML document: ``sections`` are (heading, inner HTML) pairs."""
    body = "".join(f"<h2>{esc(h)}</h2>{content}" for h, content in sections)
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style><h1>{esc(title)}</h1>{lead_html}{body}"
            f'<p class="muted">{footer}</p></html>')


def write(path: str | Path, document: str) -> None:
    with atomic_write(path) as f:
        f.write(document)
