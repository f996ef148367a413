"""The dashboard's safe settings hold wherever it is started from.

Streamlit reads ``$CWD/.streamlit/config.toml``, so a config at the repository root was ignored by
``streamlit run /path/to/app/streamlit_app.py`` started elsewhere: the server bound every interface
and usage statistics were on. The config lives beside the entry point (``app/.streamlit/``), which
Streamlit reads after the global and the working directory's files. The test starts the app the
way a user would, from another directory, with no STREAMLIT_* variables and an empty home.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "app" / "streamlit_app.py"


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(HOME=str(home), OPTIM_HOME=str(home / "optim"), PYTHONUNBUFFERED="1")
    return env


def test_started_from_another_directory_it_listens_on_loopback_only(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ENTRY), "--server.port", str(port)],
                            cwd=elsewhere, env=_clean_env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, tmp_path / "streamlit.log")
        listening = {c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening, "the server listens on nothing?"
        assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
        assert {addr.port for addr in listening} == {port}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def test_config_seen_from_another_directory_is_the_safe_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's own loader, as `streamlit run` calls it, from another directory."""
    from streamlit import config

    for key in [k for k in os.environ if k.startswith("STREAMLIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "_main_script_path", str(ENTRY))
    try:
        config.get_config_options(force_reparse=True)
        assert config.get_option("server.address") == "127.0.0.1"
        assert config.get_option("browser.gatherUsageStats") is False
        assert config.get_option("browser.serverAddress") == "127.0.0.1"
        assert config.get_option("server.maxUploadSize") == 200
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)  # back to this process's own settings
