"""A stored run in the test's own OPTIM_HOME: the session's real run (tests/conftest.py small_run)
copied into ``$OPTIM_HOME/optim.db`` with SQLite's backup API (its files stay where they are)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def copy_store(small_run: Any, home: Path) -> tuple[str, list[dict]]:
    results, store = small_run
    src = sqlite3.connect(store.path)
    dst = sqlite3.connect(home / "optim.db")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return results.run_id, results.rows


def page(name: str, **session: Any) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app" / "app_pages" / f"{name}.py"), default_timeout=60)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


#: Two chains longer than the widest Recipe column (written out under the table), as users write them.
CHAIN = "prune-magnitude:sparsity=0.9+cluster+huffman"
LONG_CHAIN = "prune-magnitude:sparsity=0.9,finetune_epochs=2+cluster:bits=5+huffman"


def add_chains(home: Path, run_id: str, rows: list[dict]) -> list[str]:
    """Two more rows in the copied run, the int8 row's figures under the recipes CHAIN and LONG_CHAIN
    (only how a recipe's text is shown is tested with them); returns their candidate ids."""
    from optim.store import Store

    store = Store(home / "optim.db")
    src = next(r for r in rows if r["recipe"] == "quantize-dynamic")
    ids = []
    for n, recipe in enumerate((CHAIN, LONG_CHAIN), start=len(rows)):
        row = {**src, "candidate_id": f"c{n}", "recipe": recipe, "parent_id": "c0", "pareto": False}
        store.put_row(run_id, row)
        ids.append(row["candidate_id"])
    return ids
