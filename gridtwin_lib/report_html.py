"""Notebook reports as HTML that opens without internet, sharing one plotly.js per run folder.

nbconvert's page asks a CDN for require.js and MathJax, and plotly's ``notebook`` renderer
embeds the whole plotly.js (about 4.6 MB) in every executed notebook and draws its figures
through require.js. :func:`notebook_html` instead:

- draws every plotly figure from its JSON (``application/vnd.plotly.v1+json``) with
  ``plotly.io.to_html(include_plotlyjs=False)``: a plain ``Plotly.newPlot`` call;
- drops the outputs that only carry the embedded plotly.js bundle;
- loads plotly.js from ``plotly.min.js`` beside the report, copied once per folder from the
  installed plotly package (the reports of one pipeline run share it);
- leaves out the require.js, MathJax and widget-renderer script tags (their URLs point at CDNs).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .fileio import atomic_write, write_text

PLOTLY_JS = "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
_DROP = "gridtwin-offline-drop"  # stands in for the CDN URLs, then every tag using it is removed
_BUNDLE_MIN_CHARS = 1_000_000  # an HTML output this large holding plotly.js is the embedded bundle


def plotly_js_path() -> Path:
    """plotly.js as shipped inside the installed plotly package."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / PLOTLY_JS


def offline_notebook(nb):
    """``nb`` (an nbformat notebook, changed in place and returned) with figures drawn from their JSON, the
    embedded plotly.js outputs dropped and the widget state removed (it would load a renderer from a CDN)."""
    import plotly.io as pio

    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html", "")
            if isinstance(html, list):
                html = "".join(html)
            if PLOTLY_MIME in data:
                data["text/html"] = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False, full_html=False,
                                                config={"displaylogo": False})
            elif len(html) > _BUNDLE_MIN_CHARS and "plotly" in html[:5000].lower():
                continue  # the plotly.js bundle the notebook renderer embeds once per notebook
            kept.append(out)
        cell["outputs"] = kept
    nb.metadata.pop("widgets", None)
    return nb


def notebook_html(nb_path: str | Path, out: str | Path | None = None, *, inline_plotly: bool = False) -> Path:
    """Write the HTML report of the executed notebook ``nb_path`` (code hidden) to ``out`` (default: beside it,
    ``.html``) and ``plotly.min.js`` into the same folder when it is not there yet. Returns the report's path.

    The page requests nothing outside its folder. ``inline_plotly=True`` embeds plotly.js instead (one
    self-contained file, e.g. the copy logged to MLflow, whose UI cannot serve a file beside it).
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb_path = Path(nb_path)
    out = Path(out) if out is not None else nb_path.with_suffix(".html")
    nb = offline_notebook(nbformat.read(nb_path, as_version=4))
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            require_js_url=_DROP, mathjax_url=_DROP, jupyter_widgets_base_url=_DROP)
    body, _ = exporter.from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = strip_cdn_tags(body)
    if inline_plotly:
        script = "<script>" + plotly_js_path().read_text(encoding="utf-8").replace("</script", "<\\/script") + "</script>"
    else:
        shared = out.parent / PLOTLY_JS
        if not shared.exists():  # notebooks of one run (--jobs 2, threads) may both write it: each its own temporary
            with atomic_write(shared, fsync=False) as tmp:
                shutil.copyfile(plotly_js_path(), tmp)
        script = f'<script src="{PLOTLY_JS}"></script>'
    head_end = body.index("</head>")
    body = body[:head_end] + script + "\n" + body[head_end:]
    write_text(out, body, fsync=False)
    return out


def strip_cdn_tags(body: str) -> str:
    """``body`` without the script tags nbconvert points at CDNs (require.js, MathJax and its configuration)."""
    body = re.sub(r'<script[^>]*src="' + _DROP + r'[^"]*"[^>]*>\s*</script>', "", body)
    body = re.sub(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", body, flags=re.S)
    return body


def outside_urls(body: str) -> list[str]:
    """URLs an HTML page would load from another machine (``src=`` / ``href=`` of scripts and stylesheets)."""
    found = re.findall(r'<(?:script|link)[^>]*(?:src|href)=["\'](https?://[^"\']+)', body)
    return [u for u in found if not re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", u)]


__all__ = ["notebook_html", "offline_notebook", "strip_cdn_tags", "outside_urls", "plotly_js_path"]
