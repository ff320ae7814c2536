"""Session fixture: runs the real Swift interop server (Tests/InteropServer) once for the whole suite.

Nothing is built here; tools/test builds first. The executable is found with `swift build --show-bin-path`
(honouring SOCKET_GATEWAY_SCRATCH_PATH), or given directly with SOCKET_GATEWAY_INTEROP_SERVER.
"""

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop import TRANSPORTS
from processes import built_executable, read_listening_port, stop_gracefully

EXECUTABLE = "socket-gateway-interop-server"


@dataclass
class InteropServer:
    url: str
    port: int
    secret: str
    log: Path
    process: subprocess.Popen

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no server log: {error})"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    executable = built_executable(EXECUTABLE, "SOCKET_GATEWAY_INTEROP_SERVER")
    secret = secrets.token_urlsafe(32)
    log = tmp_path_factory.mktemp("interop-server") / "server.log"
    environment = dict(os.environ, SOCKET_TOKEN_SECRET=secret)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(executable), "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=environment,
        )
    info = InteropServer(url="", port=0, secret=secret, log=log, process=process)
    try:
        port = read_listening_port(process)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"{executable}: {error}\n--- server log ---\n{info.log_tail()}")
    info.port = port
    info.url = f"http://127.0.0.1:{port}"
    yield info

    stop_gracefully(process, "interop server", info.log_tail)


@pytest.fixture(autouse=True)
def server_alive(request, server):
    """Fails a test clearly (with the server's log) if the server died before or during it."""
    if server.process.poll() is not None:
        pytest.fail(f"interop server exited with status {server.process.returncode}\n{server.log_tail()}")
    yield
    if server.process.poll() is not None:
        pytest.fail(f"interop server died during the test (status {server.process.returncode})\n{server.log_tail()}")


@pytest.fixture(params=sorted(TRANSPORTS), ids=sorted(TRANSPORTS))
def transports(request):
    """Runs a test once over WebSocket only and once over HTTP long-polling only."""
    return TRANSPORTS[request.param]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the tail of the server's log to every failed test report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        info = item.funcargs.get("server")
        if isinstance(info, InteropServer):
            report.sections.append(("interop server log (last 30 lines)", info.log_tail(30)))
