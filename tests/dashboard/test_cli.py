"""`stocklake dashboard`: the streamlit command line, the PID file, refusing a taken port."""

from __future__ import annotations

import socket
import sys

import pytest
import typer

from cli import dashboard as dashboard_cli
from infra import dashboard_server as dashboard
from stocklake.settings import PROJECT_ROOT, load_settings


@pytest.fixture
def server(tmp_path):
    return dashboard.server_for(load_settings(STATE_DIR=str(tmp_path)), 18765)


def test_streamlit_runs_headless_without_telemetry_on_the_bind_host(server) -> None:
    command = dashboard.streamlit_command(server)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(dashboard.APP)]
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "18765"
    assert dashboard.APP.is_file()


def test_port_and_files_come_from_settings() -> None:
    settings = load_settings(BIND_HOST="127.0.0.1")
    found = dashboard.server_for(settings)
    assert found.port == settings.dashboard_port
    assert found.url == f"http://127.0.0.1:{found.port}"
    assert found.pid_file.parent == settings.state_path / "dashboard"
    assert dashboard.server_for(settings, 9999).log_file.name == "dashboard-9999.log"


def test_checkout_is_on_the_servers_python_path() -> None:
    paths = dashboard.streamlit_env()["PYTHONPATH"].split(":")
    assert str(PROJECT_ROOT) == paths[0]


def test_a_stale_or_foreign_pid_file_is_not_ours(server) -> None:
    assert server.running_pid() is None
    server.folder.mkdir(parents=True)
    server.pid_file.write_text("not a pid\n")
    assert server.running_pid() is None
    server.pid_file.write_text("1\n")  # alive, but not a dashboard: never signalled
    assert server.running_pid() is None
    assert server.stop() is None and not server.pid_file.exists()


def test_a_taken_port_is_refused(tmp_path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(STATE_DIR=str(tmp_path))
        with pytest.raises(typer.Exit) as exit_info:
            dashboard_cli.run_command(settings, background=True, stop_it=False, port=port)
    assert exit_info.value.exit_code == 1
    assert f"port {port} on 127.0.0.1 is taken" in capsys.readouterr().out
