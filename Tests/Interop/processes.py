"""The processes the interop suites start, and how they are started and stopped.

One place for what the session server (conftest.py) and the `socket-gateway` processes (cluster_helpers.py) share:
finding a product of the build, reading its `LISTENING <port>` line, and stopping it with SIGTERM. Our own servers
listen on port 0 and report their port; the others (redis-server, sentinels, nginx, prometheus) are given a free
port, which another process may take before they bind it: `start_on_free_port` then starts them on another one.
"""

import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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


PORT_ATTEMPTS = 5


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago. Another process may take it before anyone binds it: start a
    server on it through `start_on_free_port`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PortTaken(Exception):
    """A server could not bind its port: another process took it between choosing and binding it."""


def says_address_in_use(log: str) -> bool:
    """Whether a log says a bind failed because the address is in use (redis-server: "bind: Address already in
    use", nginx: "bind() to ... failed (98: Address already in use)", prometheus: "bind: address already in use")."""
    return "address already in use" in log.lower()


def start_on_free_port(what: str, start):
    """`start(port)` with a free port, and again with another one while it raises PortTaken, at most PORT_ATTEMPTS
    times; returns what `start` returns. Fails the test naming every port and the last log when all were taken."""
    ports = []
    for _ in range(PORT_ATTEMPTS):
        ports.append(free_port())
        try:
            return start(ports[-1])
        except PortTaken as taken:
            last = taken
    pytest.fail(
        f"{what} could not listen in {PORT_ATTEMPTS} attempts: another process took its port each time between "
        f"choosing and binding it (ports {ports})\n{last}"
    )


def wait_until_listening(process: subprocess.Popen, what: str, port: int, ready, logs, seconds: float = 10) -> None:
    """Waits (bounded) until `ready()` is true while `process` runs. Raises PortTaken, having killed the process,
    when `logs()` (its log text) says its port was in use; fails the test when it exits otherwise or is not ready
    within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        exited = process.poll() is not None
        text = logs()
        if says_address_in_use(text) or exited or time.monotonic() > deadline:
            break
        if ready():
            return
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    tail = "\n".join(text.splitlines()[-30:])
    if says_address_in_use(text):
        raise PortTaken(f"{what} on port {port} could not bind it; its log ends:\n{tail}")
    state = f"exited with status {process.returncode}" if exited else f"was not ready within {seconds:.0f} s"
    pytest.fail(f"{what} on port {port} {state}; its log ends:\n{tail}")


def redis_answers_as(process: subprocess.Popen, port: int, **client) -> bool:
    """Whether redis-server (or a sentinel) `process` answers INFO on `port` as itself (its process_id), rather than
    another process that took the port; `client` are more redis.Redis arguments (password, TLS)."""
    # One short try: a stranger on the port may accept and never answer (redis-py would retry with back-off).
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0), **client) as ours:
            return ours.info("server").get("process_id") == process.pid
    except (redis.RedisError, OSError):
        return False


def start_redis(what: str, arguments: list, port: int, log: Path, **client) -> subprocess.Popen:
    """`redis-server ARGUMENTS` (listening on `port`), its output in `log` (overwritten), returned once it answers
    there as itself (bounded); PortTaken when its port was taken. `client`: see `redis_answers_as`."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is needed (Debian: apt-get install redis-server; tools/test installs it)")
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [executable, *arguments], stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    wait_until_listening(
        process, what, port, lambda: redis_answers_as(process, port, **client), lambda: log.read_text(errors="replace")
    )
    return process


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; reaps it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=10)


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
