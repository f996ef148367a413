"""Charts rendered to files: PNG through Kaleido (with the system Chromium) and one offline HTML page.

Beside :mod:`optim.export` and :mod:`optim.report`, which write a run's other files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def chromium_path() -> str | None:
    """The system Chromium/Chrome Kaleido can render with (``BROWSER_PATH`` first), or None."""
    import os
    import shutil

    candidates = [os.environ.get("BROWSER_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                  "/usr/bin/google-chrome", shutil.which("chromium"), shutil.which("google-chrome")]
    return next((p for p in candidates if p and os.path.exists(p)), None)


def figures_png(figs: Mapping[str, Any], *, width: int = 1000, timeout_s: float = 90) -> dict[str, bytes]:
    """PNG bytes of several figures (name → figure), rendered in ONE Kaleido browser session.

    Kaleido 1.x renders with a Chromium it finds on the system; we pass the path explicitly and
    never let it download one. Raises RuntimeError saying why when PNG export is unavailable.
    """
    import tempfile
    from pathlib import Path

    browser = chromium_path()
    if not browser:
        raise RuntimeError(
            "PNG export needs Chromium or Chrome (Kaleido renders with it) and none was found: "
            "install it (Debian: apt-get install chromium) or set BROWSER_PATH. HTML charts work without it."
        )
    try:
        import kaleido
    except ImportError as err:
        raise RuntimeError(f"PNG export needs the kaleido package: {err}") from None
    with tempfile.TemporaryDirectory(prefix="optim-png-") as tmp:
        jobs = [{"fig": fig.to_dict(), "path": str(Path(tmp) / f"{name}.png"),
                 "opts": dict(format="png", width=width, height=int(fig.layout.height or 500))}
                for name, fig in figs.items()]
        try:
            # mathjax=False: Kaleido would otherwise point the page at MathJax on a CDN (no network).
            kaleido.write_fig_from_object_sync(jobs, kopts={"path": browser, "mathjax": False, "timeout": timeout_s},
                                               cancel_on_error=True)
        except Exception as err:  # Kaleido/choreographer raise many types; the caller shows the reason
            raise RuntimeError(f"PNG rendering with {browser} failed: {type(err).__name__}: {err}") from None
        return {name: (Path(tmp) / f"{name}.png").read_bytes() for name in figs}


def figure_png(fig: Any, *, width: int = 1000, height: int | None = None, timeout_s: float = 90) -> bytes:
    """PNG bytes of one figure (see :func:`figures_png`)."""
    if height:
        fig = fig.__class__(fig)  # a copy: never resize the caller's figure
        fig.update_layout(height=height)
    return figures_png({"figure": fig}, width=width, timeout_s=timeout_s)["figure"]


def figures_html(figs: Mapping[str, Any], title: str = "optim charts") -> str:
    """One self-contained HTML page with every figure (plotly.js inlined: works offline)."""
    import html as _html

    from plotly.offline import get_plotlyjs

    body = "\n".join(
        f"<section>{fig.to_html(full_html=False, include_plotlyjs=False)}</section>" for fig in figs.values()
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:auto'>"
        f"<h1>{_html.escape(title)}</h1>{body}</body></html>"
    )


def figures_png_zip(figs: Mapping[str, Any], *, width: int = 1000) -> bytes:
    """One zip of ``<name>.png`` per figure (see :func:`figures_png`)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in figures_png(figs, width=width).items():
            z.writestr(f"{name}.png", data)
    return buf.getvalue()
