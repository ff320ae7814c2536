"""Session fixture: runs the real Swift interop server (Tests/InteropServer) once for the whole suite.

Nothing is built here; tools/test builds first. The executable is found with `swift build --show-bin-path`
(honouring SOCKET_GATEWAY_SCRATCH_PATH), or given directly with SOCKET_GATEWAY_INTEROP_SERVER.
"""

import os
import secrets
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop import TRANSPORTS

REPO = Path(__file__).resolve().parents[2]
EXECUTABLE = "socket-gateway-interop-server"
BUILD_HINT = "run tools/test, or `swift build --product socket-gateway-interop-server` first"


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


def _locate_executable() -> Path:
    explicit = os.environ.get("SOCKET_GATEWAY_INTEROP_SERVER")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            pytest.fail(f"SOCKET_GATEWAY_INTEROP_SERVER={explicit} does not exist; {BUILD_HINT}")
        return path
    command = ["swift", "build", "--show-bin-path"]
    scratch = os.environ.get("SOCKET_GATEWAY_SCRATCH_PATH")
    if scratch:
        command += ["--scratch-path", scratch]
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    except FileNotFoundError:
        pytest.fail("`swift` is not on PATH; install Swift 6 and " + BUILD_HINT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(command)}` did not answer within 180 s")
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    path = Path(result.stdout.strip().splitlines()[-1]) / EXECUTABLE
    if not path.is_file():
        pytest.fail(f"{path} does not exist; {BUILD_HINT}")
    return path


def _read_listening_line(process: subprocess.Popen, deadline: float) -> int:
    buffer = b""
    while time.monotonic() < deadline:
        if process.poll() is not None and not buffer.endswith(b"\n"):
            raise RuntimeError(f"server exited with status {process.returncode} before listening")
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"server closed stdout before listening (status {process.poll()})")
        buffer += chunk
        if b"\n" in buffer:
            line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
            parts = line.split()
            if len(parts) != 2 or parts[0] != "LISTENING" or not parts[1].isdigit():
                raise RuntimeError(f"expected 'LISTENING <port>' on stdout, got {line!r}")
            return int(parts[1])
    raise RuntimeError("server did not print 'LISTENING <port>' within 60 s")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    executable = _locate_executable()
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
        port = _read_listening_line(process, time.monotonic() + 60)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"{executable}: {error}\n--- server log ---\n{info.log_tail()}")
    info.port = port
    info.url = f"http://127.0.0.1:{port}"
    yield info

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"server (pid {process.pid}) ignored SIGTERM for 15 s\n{info.log_tail()}")
    process.stdout.close()
    if process.returncode != 0:
        pytest.fail(f"server exited with status {process.returncode}\n--- server log ---\n{info.log_tail()}")


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
