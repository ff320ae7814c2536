"""The README's `socket-gateway` commands, run as an operator pastes them into a shell.

Every ```sh block of README.md is read; each command in it that starts with `socket-gateway` is run by bash exactly
as written (line continuations, quoting and comments included), with `socket-gateway` on PATH and the variables the
README uses set: REDIS_URL (the private redis-server), SECRET (32 random bytes in base64, as the README makes it),
SID (the sid of a python-socketio client connected as user 42 to the first `serve`). bash runs with `-u`, so a
variable the README uses and this test does not set fails the command. The working directory holds the repository's
events.yaml and a payload.json (the first `emit`'s payload). PORT=0 lets every `serve` pick a free port without
editing its line, and SOCKET_REDIS_CHANNEL is a fresh channel, so nothing else on that Redis is touched.

`serve` and `tail` run in the background: every `serve` must print `LISTENING <port>`, subscribe, and exit 0 on
SIGTERM; every `tail` must print `SUBSCRIBED`, then one `emit` line per emitted message, and end on SIGINT (its help:
"Runs until SIGINT"). Every other command must exit 0; an `emit` to `--user 42` must reach the client. A trailing
`# or: ALTERNATIVE` comment is run too, with ALTERNATIVE in place of the command's last word.

Not run here: the `tools/...` blocks (demo, test suites, fuzzing, conformance, benchmarks: each has its own tests or
is a test), and commands quoted inline in prose, which are synopses (`export --format typescript|asyncapi|...`).
"""

import base64
import json
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from cluster_helpers import REPO, ServeProcess, cli_path, new_channel, redis_url, wait_until_subscribed
from interop import Peer, mint_token, run
from processes import read_listening_port

README = REPO / "README.md"
# How each subcommand is run; a README command outside these fails the test until the test is taught to run it.
BACKGROUND = {"serve", "tail"}
FOREGROUND = {"emit", "check", "export"}
# The gateway's own variables, removed so that the runner's environment cannot change what a command does.
GATEWAY_VARIABLES = (
    "HOST", "PORT", "SOCKET_PATH", "REDIS_URL", "SOCKET_REDIS_CHANNEL", "SOCKET_TOKEN_SECRET", "SOCKET_CORS_ORIGINS",
    "SOCKET_REDIS_SIGNING_SECRET", "SOCKET_PING_INTERVAL", "SOCKET_PING_TIMEOUT", "SECRET", "SID",
)
WAIT = 15  # seconds: the bound of every wait for a background command's line or a client's event


def readme_commands() -> list:
    """Every `socket-gateway …` command of the README's sh blocks, one string each, exactly as written."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)
    commands = []
    for block in blocks:
        pending = ""
        for line in block.splitlines(keepends=True):
            pending += line
            if pending.rstrip("\n").endswith("\\"):
                continue  # a line continuation
            try:
                shlex.split(pending, comments=True)
            except ValueError:
                continue  # inside a quoted string that goes on on the next line
            if pending.strip().startswith("socket-gateway "):
                commands.append(pending.strip())
            pending = ""
        assert pending == "", f"README: an sh block ends inside a command: {pending!r}"
    return commands


def words(command: str) -> list:
    """The command's words, for telling commands apart (bash runs the text itself); `\\` + newline joins lines."""
    return shlex.split(command.replace("\\\n", " "), comments=True)


def subcommand(command: str) -> str:
    return words(command)[1]


def with_alternative(command: str):
    """The command with its last word replaced by the alternative of a trailing `# or: ALTERNATIVE`, or None."""
    match = re.fullmatch(r"(.*\S)\s+#\s*or:\s*([^'\"#]+)", command, flags=re.DOTALL)
    if not match:
        return None
    return match.group(1).rsplit(None, 1)[0] + " " + match.group(2).strip()


def emit_target_and_event(command: str) -> tuple:
    """(the `--user` value or None, the event name) of an `emit` command line."""
    user, positional = None, []
    arguments = iter(words(command)[2:])
    for word in arguments:
        if word == "<":
            break  # a redirection: the rest is the shell's
        if word.startswith("--") and word != "--broadcast":
            name, has_value, value = word.partition("=")
            if not has_value:
                value = next(arguments)
            if name == "--user":
                user = value
        elif not word.startswith("--"):
            positional.append(word)
    return user, positional[0]


def read_line(stream, what: str) -> str:
    """One line from a background command's pipe, waiting at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail(f"`{what}`: no complete line within {WAIT} s (so far {line!r})")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            pytest.fail(f"`{what}`: closed its output (so far {line!r})")
        line += byte
    return line.decode(errors="replace").rstrip("\n")


def test_the_readme_commands_run_as_written(tmp_path):
    commands = readme_commands()
    kinds = {subcommand(command) for command in commands}
    assert {"serve", "emit", "tail", "check", "export"} <= kinds, f"README commands found: {commands}"
    unknown = sorted(kinds - BACKGROUND - FOREGROUND)
    assert not unknown, f"README shows `socket-gateway` {unknown}, which this test does not run yet: teach it how"

    first_emit = next(command for command in commands if subcommand(command) == "emit")
    payload = words(first_emit)[-1]
    shutil.copy(REPO / "events.yaml", tmp_path / "events.yaml")
    (tmp_path / "payload.json").write_text(payload)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()  # as `openssl rand -base64 32` prints it
    environment = {name: value for name, value in os.environ.items() if name not in GATEWAY_VARIABLES}
    environment.update(
        PATH=f"{cli_path().parent}{os.pathsep}{os.environ.get('PATH', '')}",
        REDIS_URL=redis_url(), SOCKET_REDIS_CHANNEL=new_channel(), SECRET=secret, PORT="0",
    )

    def start(command: str, stderr) -> subprocess.Popen:
        # `exec`: the process is the command itself, so the pid stopped below is the command's.
        return subprocess.Popen(
            ["bash", "-u", "-c", "exec " + command], cwd=tmp_path, env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
        )

    serves, tails = [], []
    try:
        for command in commands:
            if subcommand(command) != "serve":
                continue
            log = tmp_path / f"serve-{len(serves)}.log"
            with open(log, "wb") as log_file:
                process = start(command, log_file)
            try:
                port = read_listening_port(process, seconds=WAIT)
            except RuntimeError as error:
                process.kill()
                process.wait(timeout=10)
                pytest.fail(f"`{command}`: {error}\n{log.read_text(errors='replace')}")
            serve = ServeProcess(process=process, port=port, secret=secret, log=log)
            serves.append(serve)
            wait_until_subscribed(serve)
        for command in commands:
            if subcommand(command) == "tail":
                process = start(command, subprocess.PIPE)
                tails.append((command, process))
                line = read_line(process.stderr, command)
                assert line.startswith("SUBSCRIBED "), f"`{command}` printed {line!r}, not SUBSCRIBED"

        async def scenario():
            # A client of the first serve, authenticated as user 42 with a token signed with $SECRET; its sid is $SID.
            peer = Peer(serves[0].url, mint_token(secret, "42"), name="user-42")
            try:
                await peer.connect()
                environment["SID"] = peer.sid()
                emitted = 0
                for command in commands:
                    if subcommand(command) not in FOREGROUND:
                        continue
                    alternative = with_alternative(command)
                    for text in [command] + ([alternative] if alternative else []):
                        result = subprocess.run(
                            ["bash", "-u", "-c", text], cwd=tmp_path, env=environment, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30,
                        )
                        assert result.returncode == 0, f"`{text}` exited {result.returncode}:\n{result.stderr}"
                        if subcommand(text) != "emit":
                            continue
                        emitted += 1
                        user, event = emit_target_and_event(text)
                        if user == "42":
                            assert await peer.next(event, timeout=WAIT) == [json.loads(payload)], text
                return emitted

            finally:
                await peer.close()

        emitted = run(scenario())
        for command in commands:
            arguments = words(command)
            if "--output" in arguments:  # `export --output FILE` wrote FILE
                written = tmp_path / arguments[arguments.index("--output") + 1]
                assert written.is_file() and written.stat().st_size > 0, f"`{command}` wrote no {written.name}"
        for command, process in tails:
            lines = [read_line(process.stdout, command) for _ in range(emitted)]
            assert all(line.startswith("emit event=") for line in lines), lines
    finally:
        # Everything started is stopped, even when stopping one of them fails; the first such failure is reported
        # below (when the test got that far: an earlier failure is the one worth reading).
        stop_failures = [stop_tail(command, process) for command, process in tails]
        for serve in serves:
            try:
                serve.stop()  # SIGTERM; fails unless it exits 0
            except pytest.fail.Exception as failure:
                stop_failures.append(str(failure))
    problems = [problem for problem in stop_failures if problem]
    assert not problems, problems[0]


def stop_tail(command: str, process: subprocess.Popen):
    """Ends a background `tail` as its help says (SIGINT, bounded wait); returns what went wrong, or None.

    Interrupted, it dies of SIGINT (a shell shows 130), as Ctrl-C ends it; with --count it has ended by itself with 0.
    """
    expected = 0
    if process.poll() is None:
        expected = -signal.SIGINT
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            return f"`{command}` (pid {process.pid}) ignored SIGINT for {WAIT} s"
    process.stdout.close()
    process.stderr.close()
    if process.returncode != expected:
        return f"`{command}` ended with {process.returncode}, not {expected}"
    return None
