"""Fixtures for the main-job tests: a running `tools/demo` and helpers to talk to it.

`tools/demo` is started exactly as a newcomer starts it, except for the debug configuration (so the build
tools/test already made is reused; SOCKET_GATEWAY_DEMO_CONFIGURATION overrides it) and fast worker steps. It runs in
its own process group; every process it starts is recorded while it runs, so a test can check that stopping it
leaves none behind.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready: open (http://127\.0\.0\.1:\d+/) \(server-A\) and (http://127\.0\.0\.1:\d+/) \(server-B\)")
# Seconds tools/demo may take to be ready: it runs `swift build` first (a no-op after tools/test's build).
STARTUP_LIMIT = 480.0


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (Linux)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@dataclass
class Demo:
    process: subprocess.Popen
    server_a: str = ""
    server_b: str = ""
    lines: list[str] = field(default_factory=list)
    started: set[int] = field(default_factory=set)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def _read(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.condition:
                self.lines.append(line)
                self.condition.notify_all()
        with self.condition:
            self.condition.notify_all()

    def _record_children(self):
        # The processes tools/demo starts, sampled while it runs (they may come and go during startup).
        while self.process.poll() is None:
            self.started |= descendants(self.process.pid)
            time.sleep(0.2)

    def wait_for_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """Waits (at most `timeout` s) for a log line matching `pattern` at or after index `start`."""
        expression = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for line in self.lines[start:]:
                    match = expression.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader_alive()):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; log:\n{self.log_tail()}")
                self.condition.wait(min(remaining, 0.5))

    def _reader_alive(self) -> bool:
        return self.reader.is_alive()

    def log_tail(self, count: int = 60) -> str:
        with self.condition:
            return "\n".join(self.lines[-count:])

    def stop(self, sig=signal.SIGTERM, to_group=False, timeout=30.0) -> int:
        """Sends `sig` (to tools/demo, or to its whole process group as a terminal's Ctrl-C does) and waits."""
        if self.process.poll() is None:
            self.started |= descendants(self.process.pid)
            if to_group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tools/demo did not stop within {timeout} s after {sig!r}\n{self.log_tail()}")
        self.reader.join(timeout=10)
        return status


def start_demo(extra_environment: dict[str, str]) -> Demo:
    environment = dict(os.environ)
    environment.setdefault("SOCKET_GATEWAY_DEMO_CONFIGURATION", "debug")
    environment["SOCKET_GATEWAY_DEMO_STEP_DELAY_MS"] = "150"
    environment.pop("REDIS_URL", None)
    environment.update(extra_environment)
    process = subprocess.Popen(
        [str(REPO / "tools" / "demo")],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    demo = Demo(process=process)
    demo.reader = threading.Thread(target=demo._read, daemon=True)
    demo.reader.start()
    threading.Thread(target=demo._record_children, daemon=True).start()
    try:
        match = demo.wait_for_line(READY.pattern, STARTUP_LIMIT)
    except AssertionError as error:
        kill_group(demo)
        pytest.fail(f"tools/demo did not become ready: {error}")
    demo.server_a, demo.server_b = match.group(1).rstrip("/"), match.group(2).rstrip("/")
    demo.started |= descendants(process.pid)
    return demo


def kill_group(demo: Demo):
    """Last resort after a failed test: stop what is left of the group we started."""
    if demo.process.poll() is None:
        try:
            os.killpg(demo.process.pid, signal.SIGTERM)
            demo.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(demo.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            demo.process.wait(timeout=10)
    for pid in demo.started:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def http(method: str, url: str, body=None, token: str | None = None) -> tuple[int, dict]:
    """One JSON request; returns (status, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def token_for(server: str, user: str) -> str:
    status, body = http("POST", f"{server}/api/token", {"user": user})
    assert status == 200, body
    assert body["user"] == user
    return body["token"]


@pytest.fixture(scope="module")
def demo():
    """tools/demo with its own private redis-server (the newcomer's path)."""
    running = start_demo({})
    yield running
    kill_group(running)


@pytest.fixture(scope="module")
def demo_with_redis_url():
    """tools/demo using the test run's Redis (REDIS_URL), when tools/test provides one; else its own."""
    url = os.environ.get("SOCKET_GATEWAY_TEST_REDIS_URL")
    running = start_demo({"REDIS_URL": url} if url else {})
    yield running
    kill_group(running)
