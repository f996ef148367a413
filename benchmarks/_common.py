"""What every benchmark script shares: printing its section and writing it for RESULTS.md."""

from __future__ import annotations

from pathlib import Path


def emit(text: str, out: Path | None) -> None:
    """Print the section and, with ``--out``, write it (then ``collect_results.py`` folds it in)."""
    print("\n" + text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n")
