"""The built Swift executables the interop suites start, and how they are started and stopped.

One place for what the session server (conftest.py) and the `socket-gateway` processes (cluster_helpers.py) share:
finding a product of the build, reading its `LISTENING <port>` line, and stopping it with SIGTERM.
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

REPO = Path(__file__).resolve().parents[2]
INTEROP_SERVER = "socket-gateway-interop-server"
_bin_path = None


def built_executable(name: str, override_variable: str) -> Path:
    """The product `name` of the build (`swift build --show-bin-path`, honouring SOCKET_GATEWAY_SCRATCH_PATH),
    or the path in the environment variable `override_variable`. Fails the test when it is missing."""
    global _bin_path
    hint = f"run tools/test, or `swift build --product {name}` first"
    explicit = os.environ.get(override_variable)
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"{override_variable}={explicit} does not exist; {hint}")
        return Path(explicit)
    if _bin_path is None:
        command = ["swift", "build", "--show-bin-path"]
        scratch = os.environ.get("SOCKET_GATEWAY_SCRATCH_PATH")
        if scratch:
            command += ["--scratch-path", scratch]
        try:
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
        except FileNotFoundError:
            pytest.fail("`swift` is not on PATH; install Swift 6 and " + hint)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` did not answer within 180 s")
        if result.returncode != 0 or not result.stdout.strip():
            pytest.fail(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        _bin_path = Path(result.stdout.strip().splitlines()[-1])
    path = _bin_path / name
    if not path.is_file():
        pytest.fail(f"{path} does not exist; {hint}")
    return path


def read_listening_port(process: subprocess.Popen, seconds: float = 60) -> int:
    """The port of the `LISTENING <port>` line `process` prints first on stdout; RuntimeError otherwise."""
    deadline = time.monotonic() + seconds
    buffer = b""
    while time.monotonic() < deadline:
        if process.poll() is not None and not buffer.endswith(b"\n"):
            raise RuntimeError(f"exited with status {process.returncode} before listening")
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"closed stdout before listening (status {process.poll()})")
        buffer += chunk
        if b"\n" in buffer:
            line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
            parts = line.split()
            if len(parts) != 2 or parts[0] != "LISTENING" or not parts[1].isdigit():
                raise RuntimeError(f"expected 'LISTENING <port>' on stdout, got {line!r}")
            return int(parts[1])
    raise RuntimeError(f"did not print 'LISTENING <port>' within {seconds:.0f} s")


def stop_gracefully(process: subprocess.Popen, what: str, log_tail) -> None:
    """SIGTERM, then waits (bounded); fails the test if it ignored the signal or exited non-zero.
    `log_tail()` gives the process's log for the failure message."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"{what} (pid {process.pid}) ignored SIGTERM for 15 s\n{log_tail()}")
    process.stdout.close()
    if process.returncode != 0:
        pytest.fail(f"{what} exited with status {process.returncode}\n--- log ---\n{log_tail()}")


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


def interop_server(tmp_path_factory, name: str, **extra_environment: str):
    """Runs an interop server of its own (a generator for a fixture to yield from): a fresh token secret, its
    log in a temporary directory named `name`, and `extra_environment` on top of the test's environment (e.g.
    SOCKET_RECOVERY_WINDOW for a suite that needs a setting the shared server keeps off)."""
    executable = built_executable(INTEROP_SERVER, "SOCKET_GATEWAY_INTEROP_SERVER")
    secret = secrets.token_urlsafe(32)
    log = tmp_path_factory.mktemp(name) / "server.log"
    environment = dict(os.environ, SOCKET_TOKEN_SECRET=secret, **extra_environment)
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
        pytest.fail(f"{executable} ({name}): {error}\n--- server log ---\n{info.log_tail()}")
    info.port = port
    info.url = f"http://127.0.0.1:{port}"
    yield info

    stop_gracefully(process, name, info.log_tail)
