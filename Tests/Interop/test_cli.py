"""The command-line tools as an operator runs them: `socket-gateway` (serve's settings, emit with a catalog, tail,
check, export, exit codes), and `--version` and exit codes of `socket-gateway-codegen` and `sheet-sync-demo`."""

import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
import redis as redis_client

from cluster_helpers import (
    REPO, ServeProcess, cli_path, new_channel, redis_url, run_cli, start_serve, wait_until_subscribed,
)
from interop import Peer, mint_token, run
from processes import (
    built_executable, free_port, read_listening_port, start_on_free_port, start_redis, stop_gracefully, stop_process,
)

GOLDEN = REPO / "Tests/EventCodegenTests/Fixtures/golden/sheet-sync"
CATALOG = GOLDEN / "events.yaml"


def test_emit_checked_against_the_catalog_reaches_a_python_client(tmp_path):
    redis, channel = redis_url(), new_channel()
    serve = start_serve(tmp_path, redis, channel)

    async def scenario():
        peer = Peer(serve.url, mint_token(serve.secret, "42"), name="user-42")
        try:
            await peer.connect()
            payload = {
                "sheet_id": "s1", "job_id": "0b8f9a3e-3f52-4d2c-9a57-1f7c7f0e9d11", "stage": "parsing",
                "processed": 10, "total": 100, "percent": 10.0,
            }
            result = run_cli(
                "emit", "--redis-url", redis, "--channel", channel, "--catalog", str(CATALOG), "--user", "42",
                "sheet:sync:progress", json.dumps(payload),
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == (
                f"published sheet:sync:progress to user:42 in / on channel {channel}: 1 subscriber(s)"
            )
            assert await peer.next("sheet:sync:progress") == [payload]
        finally:
            await peer.close()

    try:
        run(scenario())
    finally:
        serve.stop()


@pytest.mark.parametrize(
    "event, payload, reason",
    [
        (
            "sheet:sync:progress",
            '{"sheet_id":"s1","stage":"queued","processed":1,"percent":1}',
            "sheet:sync:progress: $.job_id: missing (required a UUID string)",
        ),
        (
            "sheet:sync:progress",
            '{"sheet_id":"s1","job_id":"0b8f9a3e-3f52-4d2c-9a57-1f7c7f0e9d11","stage":"sleeping","processed":1,"percent":1}',
            "sheet:sync:progress: $.stage: expected one of queued, downloading, parsing, validating, writing, "
            'finalizing, got "sleeping"',
        ),
        ("sheet:sync:nope", "{}", "sheet:sync:nope: not in catalog SheetSync"),
    ],
)
def test_emit_refuses_a_payload_that_breaks_the_catalog(event, payload, reason):
    # No Redis is contacted: the catalog check comes first (the URL points nowhere on purpose).
    result = run_cli(
        "emit", "--redis-url", "redis://127.0.0.1:1", "--catalog", str(CATALOG), "--user", "42", event, payload
    )
    assert result.returncode == 65, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith(f"socket-gateway emit: error: refused by the catalog: {reason}"), result.stderr


def test_emit_reports_every_mismatch_with_the_catalog():
    """One run lists every problem of the payload, in payload order, not only the first."""
    payload = '{"sheet_id":5,"job_id":"nope","stage":"sleeping","processed":"1","percent":1,"extra":true}'
    result = run_cli(
        "emit", "--redis-url", "redis://127.0.0.1:1", "--catalog", str(CATALOG), "--user", "42",
        "sheet:sync:progress", payload,
    )
    assert (result.returncode, result.stdout) == (65, ""), result.stderr
    assert result.stderr == (
        "socket-gateway emit: error: refused by the catalog, 5 problems:\n"
        "  sheet:sync:progress: $: unknown field 'extra' (expected: sheet_id, job_id, stage, processed, total, percent)\n"
        "  sheet:sync:progress: $.sheet_id: expected a string, got an integer\n"
        '  sheet:sync:progress: $.job_id: expected a UUID, got "nope"\n'
        "  sheet:sync:progress: $.stage: expected one of queued, downloading, parsing, validating, writing, finalizing, "
        'got "sleeping"\n'
        "  sheet:sync:progress: $.processed: expected an integer, got a string\n"
    )


def test_emit_exit_codes():
    not_configured = run_cli("emit", "--broadcast", "ping", "1")
    assert not_configured.returncode == 78, not_configured.stderr
    assert "not configured" in not_configured.stderr
    unavailable = run_cli("emit", "--redis-url", "redis://127.0.0.1:1", "--timeout", "0.5", "--broadcast", "ping", "1")
    assert unavailable.returncode == 69, unavailable.stderr
    assert unavailable.stderr.startswith("socket-gateway emit: error: Redis unavailable, not published:")
    assert len(unavailable.stderr.strip().splitlines()) == 1
    bad_json = run_cli("emit", "--redis-url", redis_url(), "--broadcast", "ping", "{oops")
    assert bad_json.returncode == 64
    assert "not valid JSON" in bad_json.stderr
    usage = run_cli("emit", "--user", "1", "--broadcast", "ping")
    assert usage.returncode == 64
    assert "exactly one of --user, --room, --broadcast" in usage.stderr
    help_text = run_cli("--help").stdout
    for code in ("64", "65", "69", "78"):
        assert f"  {code}  " in help_text


def test_serve_help_shows_defaults_environment_and_an_example():
    # Compared with whitespace collapsed: ArgumentParser wraps the help to the terminal's width.
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for line in (
        "--host <host> Address to listen on (env HOST, default 127.0.0.1).",
        "--port <port> Port; 0 picks a free one (env PORT, default 3000).",
        "--path <path> Engine.IO path (env SOCKET_PATH, default /socket.io/).",
        "--ping-interval <ping-interval> Seconds between Engine.IO pings, 0.001 to 3600 (env SOCKET_PING_INTERVAL, "
        "default 25).",
        "--ping-timeout <ping-timeout> Seconds a client has to answer a ping, 0.001 to 3600 (env SOCKET_PING_TIMEOUT, "
        "default 20).",
        'EXAMPLE SOCKET_TOKEN_SECRET="$(openssl rand -hex 32)" socket-gateway serve \\ --port 3000 '
        "--redis-url redis://127.0.0.1:6379",
    ):
        assert line in text, line


@pytest.mark.parametrize(
    "command, lines",
    [
        (
            "emit",
            (
                "--namespace <namespace> The Socket.IO namespace, starting with / (default: /)",
                "--redis-url <redis-url> Redis URL (env REDIS_URL, no default: one of the two is needed).",
                "--channel <channel> Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).",
                "--timeout <timeout> Seconds to wait for Redis and for --min-subscribers servers (default: 2.0)",
                "0: do not wait) (default: 1)",
                "--catalog <catalog> An events.yaml to check the event and payload against before emitting "
                "(default: none, not checked)",
                "--log-level <log-level> trace, debug, info, notice, warning, error, critical (default: error)",
                "EXAMPLE REDIS_URL=redis://127.0.0.1:6379 socket-gateway emit \\ --catalog events.yaml --user 42 "
                "sheet:sync:completed @payload.json",
            ),
        ),
        (
            "tail",
            (
                "--redis-url <redis-url> Redis URL (env REDIS_URL, no default: one of the two is needed).",
                "--channel <channel> Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).",
                "--count <count> Exit after this many messages (default: run until SIGINT)",
                "--log-level <log-level> trace, debug, info, notice, warning, error, critical (default: warning)",
                "EXAMPLE socket-gateway tail --redis-url redis://127.0.0.1:6379 --json --count 10",
            ),
        ),
        ("check", ("<catalog> The catalog file (no default).", "EXAMPLE socket-gateway check events.yaml")),
        (
            "export",
            (
                "--format <format> swift|typescript|asyncapi|asyncapi-json (no default; asyncapi is YAML).",
                "-o, --output <output> Write here instead of stdout (default: stdout).",
                "EXAMPLE socket-gateway export --format typescript --output events.d.ts events.yaml",
            ),
        ),
    ],
)
def test_help_shows_defaults_environment_and_an_example(command, lines):
    """emit, tail, check and export --help, as serve's: each option's default and variable, and one example."""
    result = run_cli(command, "--help")
    assert (result.returncode, result.stderr) == (0, "")
    # Compared with whitespace collapsed: ArgumentParser wraps the help to the terminal's width.
    text = " ".join(result.stdout.split())
    for line in lines:
        assert line in text, line
    assert text.count("EXAMPLE ") == 1, text


@pytest.mark.parametrize(
    "arguments, env, code, message",
    [
        (["--ping-interval", "0"], {}, 64, "--ping-interval must be 0.001 to 3600 seconds, got '0'"),
        (["--ping-timeout", "3601"], {}, 64, "--ping-timeout must be 0.001 to 3600 seconds, got '3601'"),
        ([], {"SOCKET_PING_INTERVAL": "0"}, 78, "SOCKET_PING_INTERVAL must be 0.001 to 3600 seconds, got '0'"),
        ([], {"SOCKET_PING_TIMEOUT": "abc"}, 78, "SOCKET_PING_TIMEOUT must be 0.001 to 3600 seconds, got 'abc'"),
        (["--port", "70000"], {}, 64, "--port must be 0...65535, got '70000'"),
        ([], {"PORT": "70000"}, 78, "PORT must be 0...65535, got '70000'"),
        (["--path", "io"], {}, 64, "--path must start with '/', got 'io'"),
        ([], {"SOCKET_PATH": "io"}, 78, "SOCKET_PATH must start with '/', got 'io'"),
        (
            [], {"REDIS_URL": "redis://127.0.0.1:1", "SOCKET_REDIS_REQUESTS_MAX_ANSWERING": "0"}, 78,
            "SOCKET_REDIS_REQUESTS_MAX_ANSWERING must be a whole number, 1...100000, got '0'",
        ),
        (
            ["--redis-url", "redis://127.0.0.1:1"], {"SOCKET_REDIS_REQUESTS_MAX_BYTES": "1023"}, 78,
            "SOCKET_REDIS_REQUESTS_MAX_BYTES must be a whole number, 1024...536870912, got '1023'",
        ),
    ],
)
def test_serve_refuses_a_setting_with_one_wording_for_flag_and_environment(arguments, env, code, message):
    """A flag and its variable are refused in the same words, echoing the value; the range is the one enforced."""
    result = run_cli("serve", "--allow-anonymous", *arguments, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (code, "", f"socket-gateway serve: error: {message}\n")


def test_serve_takes_the_ping_settings_from_the_environment(tmp_path):
    """SOCKET_PING_INTERVAL / SOCKET_PING_TIMEOUT reach the Engine.IO handshake; the flag wins over the variable."""
    for arguments, interval, timeout in (([], 1500, 2500), (["--ping-interval", "0.25"], 250, 2500)):
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--allow-anonymous", "--port", "0", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, SOCKET_PING_INTERVAL="1.5", SOCKET_PING_TIMEOUT="2.5"),
        )
        try:
            line = process.stdout.readline()
            assert line.startswith("LISTENING "), line
            port = int(line.split()[1])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling", timeout=10) as r:
                handshake = json.loads(r.read().decode()[1:])
            assert (handshake["pingInterval"], handshake["pingTimeout"]) == (interval, timeout)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_serve_with_a_redis_url_flag_keeps_the_channel_from_the_environment(tmp_path):
    """`--redis-url` replaces only the URL: SOCKET_REDIS_CHANNEL still names the channel (as for emit and tail)."""
    redis, channel = redis_url(), new_channel()
    log = tmp_path / "serve.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [str(cli_path()), "serve", "--allow-anonymous", "--port", "0", "--redis-url", redis],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
            env=dict(os.environ, SOCKET_REDIS_CHANNEL=channel),
        )
    try:
        serve = ServeProcess(process=process, port=read_listening_port(process), secret="", log=log)
    except RuntimeError as error:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"serve: {error}\n{log.read_text(errors='replace')}")
    try:
        wait_until_subscribed(serve)
        assert serve.healthz()[1]["channel"] == channel
        emitted = run_cli(
            "emit", "--redis-url", redis, "--broadcast", "ping", "{}", env={"SOCKET_REDIS_CHANNEL": channel}
        )
        assert emitted.returncode == 0, emitted.stderr
        assert emitted.stdout == f"published ping to everyone in / on channel {channel}: 1 subscriber(s)\n"
    finally:
        serve.stop()


def test_tail_prints_what_a_worker_emitted():
    redis, channel = redis_url(), new_channel()
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--redis-url", redis, "--channel", channel, "--count", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Wait for SUBSCRIBED on stderr (bounded by the readline of a live process; the process has --count).
        line = tail.stderr.readline()
        assert line.startswith(f"SUBSCRIBED {channel}"), line
        for arguments in (
            ("--room", "sheet:1", "--except", "sid-x", "progress", '{"percent":5}'),
            ("--user", "7", "--namespace", "/admin", "done", "true"),
            ("--broadcast", "hello"),
        ):
            result = run_cli("emit", "--redis-url", redis, "--channel", channel, *arguments)
            assert result.returncode == 0, result.stderr
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    lines = out.splitlines()
    assert tail.returncode == 0, err
    assert len(lines) == 3, out
    assert lines[0].startswith("emit event=progress room=sheet:1 ns=/ skip=sid-x bytes="), lines[0]
    assert lines[1].startswith("emit event=done room=user:7 ns=/admin skip=- bytes="), lines[1]
    assert lines[2].startswith("emit event=hello room=- ns=/ skip=- bytes="), lines[2]
    for line in lines:
        host = line.rsplit(" host=", 1)[1]
        assert len(host) == 32 and all(c in "0123456789abcdef" for c in host), line


def test_tail_json_lines():
    redis, channel = redis_url(), new_channel()
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--json", "--redis-url", redis, "--channel", channel, "--count", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert tail.stderr.readline().startswith("SUBSCRIBED")
        assert run_cli("emit", "--redis-url", redis, "--channel", channel, "--room", "r", "ev", '{"a":[1]}').returncode == 0
        out, _ = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    message = json.loads(out)
    assert {k: message[k] for k in ("method", "event", "data", "binary", "namespace", "room", "skip_sid", "callback")} == {
        "method": "emit", "event": "ev", "data": [{"a": [1]}], "binary": False, "namespace": "/", "room": "r",
        "skip_sid": None, "callback": None,
    }


def test_tail_json_prints_the_wire_text_escaped_and_never_raw_bytes():
    """--json prints what was received (digits kept), escaped for a terminal; a pickled message is shown escaped."""
    redis, channel = redis_url(), new_channel()
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--json", "--redis-url", redis, "--channel", channel, "--count", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    # Raw U+009B (a C1 control: CSI on some terminals) and U+202E (a bidirectional override) are valid JSON inside
    # strings; the line break between tokens is JSON whitespace.
    wire = (
        '{"method": "emit",\n "event": "big", "data": [12345678901234567890, 1.0, "x\u009by\u202ez", "\\u001b"], '
        '"namespace": "/", "room": "r", "skip_sid": null, "callback": null, "host_id": "h"}'
    ).encode()
    pickled = pickle.dumps({"method": "emit"}, protocol=4)
    try:
        assert tail.stderr.readline().startswith(b"SUBSCRIBED")
        client = redis_client.Redis.from_url(redis)
        try:
            for message in (wire, pickled, b'{"method":"close_room","room":"r","namespace":"/","host_id":"h"}'):
                assert client.publish(channel, message) == 1
        finally:
            client.close()
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    assert tail.returncode == 0, err
    assert out == (
        b'{"method": "emit",  "event": "big", "data": [12345678901234567890, 1.0, "x\\u009by\\u202ez", "\\u001b"], '
        b'"namespace": "/", "room": "r", "skip_sid": null, "callback": null, "host_id": "h"}\n'
        b'{"method":"close_room","room":"r","namespace":"/","host_id":"h"}\n'
    )
    assert json.loads(out.splitlines()[0])["data"] == [12345678901234567890, 1.0, "x\u009by\u202ez", "\x1b"]
    assert err == (
        b"skipped a message of 31 bytes that is not JSON (pickled, as older python-socketio versions publish?); "
        b"it starts: \\x80\\u{4}\\x95\\u{14}\\u{0}\\u{0}\\u{0}\\u{0}\\u{0}\\u{0}\\u{0}}\\x94\\x8C\\u{6}method"
        b"\\x94\\x8C\\u{4}emit\\x94s.\n"
    )


def test_check_prints_the_plugin_diagnostics(tmp_path):
    broken = tmp_path / "events.yaml"
    shutil.copy(REPO / "Tests/EventCodegenTests/Fixtures/errors/unknown-type.yaml", broken)
    result = run_cli("check", str(broken))
    assert result.returncode == 1
    assert result.stderr == (
        f"{broken}:7:17: error: unknown type 'strng' for field 'sheet_id' in event 'sheet:sync:started'; did you mean "
        "'string'? Known types: string, int, double, bool, datetime, uuid (built in); declare your own under 'types'\n"
    )
    ok = run_cli("check", str(CATALOG))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"OK: {CATALOG}: catalog SheetSync version 1, 4 events, 1 client events, 3 types\n"
    missing = run_cli("check", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 74


def run_codegen(*arguments: str) -> subprocess.CompletedProcess:
    """Runs `socket-gateway-codegen ARGUMENTS...` (the build plugin's tool) and returns the finished process."""
    executable = built_executable("socket-gateway-codegen", "SOCKET_GATEWAY_CODEGEN_EXECUTABLE")
    return subprocess.run([str(executable), *arguments], capture_output=True, text=True, timeout=30, cwd=REPO)


def exported_by_socket_gateway(golden: str) -> str:
    """A golden file (written by socket-gateway-codegen) as `socket-gateway export` writes it: only the header's
    tool name differs."""
    return golden.replace("Generated by socket-gateway-codegen from", "Generated by socket-gateway export from", 1)


@pytest.mark.parametrize(
    "fmt, golden",
    [
        ("swift", "expected.swift.golden"),
        ("typescript", "expected.d.ts.golden"),
        ("asyncapi", "expected.asyncapi.yaml.golden"),
    ],
)
def test_export_matches_the_codegen_golden_files(tmp_path, fmt, golden):
    """`socket-gateway export` is the operator's front door to the codegen: every format the build plugin's tool
    writes, the same bytes but for a header naming `socket-gateway export`, and one success line for both tools."""
    # The golden files were generated from a file named events.yaml: export from the same name.
    catalog = tmp_path / "events.yaml"
    shutil.copy(CATALOG, catalog)
    expected = (GOLDEN / golden).read_text()
    assert expected.splitlines()[0].endswith(
        "Generated by socket-gateway-codegen from events.yaml (catalog SheetSync, version 1). Do not edit."
    )
    output = tmp_path / f"out.{fmt}"
    result = run_cli("export", "--format", fmt, "--output", str(output), str(catalog))
    success = f"wrote {output}: {fmt} of catalog SheetSync version 1, 4 events, 1 client events, 3 types\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, success, "")
    assert output.read_text() == exported_by_socket_gateway(expected)
    printed = run_cli("export", "--format", fmt, str(catalog))
    assert (printed.returncode, printed.stdout, printed.stderr) == (0, exported_by_socket_gateway(expected), "")
    codegen_output = tmp_path / f"codegen.{fmt}"
    codegen = run_codegen("export", "--format", fmt, "--output", str(codegen_output), str(catalog))
    codegen_success = f"wrote {codegen_output}: {fmt} of catalog SheetSync version 1, 4 events, 1 client events, 3 types\n"
    assert (codegen.returncode, codegen.stdout, codegen.stderr) == (0, codegen_success, "")
    assert codegen_output.read_text() == expected
    again = run_codegen("export", "--format", fmt, "--output", str(codegen_output), str(catalog))
    assert (again.returncode, again.stdout) == (0, codegen_success.replace("wrote ", "unchanged ", 1))


def test_both_catalog_tools_check_and_refuse_a_format_in_the_same_words():
    """check prints one success line in both tools; export without --format or with an unknown one is usage (64)."""
    line = f"OK: {CATALOG}: catalog SheetSync version 1, 4 events, 1 client events, 3 types\n"
    for result in (run_cli("check", str(CATALOG)), run_codegen("check", str(CATALOG))):
        assert (result.returncode, result.stdout, result.stderr) == (0, line, "")
    formats = "swift|typescript|asyncapi|asyncapi-json"
    missing = run_cli("export", str(CATALOG))
    assert (missing.returncode, missing.stdout) == (64, "")
    assert missing.stderr.startswith("Error: Missing expected argument '--format <format>'\n"), missing.stderr
    unknown = run_cli("export", "--format", "java", str(CATALOG))
    assert (unknown.returncode, unknown.stdout) == (64, "")
    assert unknown.stderr.startswith(
        f"Error: The value 'java' is invalid for '--format <format>': use one of {formats}\n"
    ), unknown.stderr
    codegen_missing = run_codegen("export", str(CATALOG))
    assert (codegen_missing.returncode, codegen_missing.stdout) == (64, "")
    assert codegen_missing.stderr.startswith(f"error: 'export' needs --format {formats}\n"), codegen_missing.stderr
    codegen_unknown = run_codegen("export", "--format", "java", str(CATALOG))
    assert codegen_unknown.returncode == 64
    assert codegen_unknown.stderr.startswith(f"error: --format needs one of {formats}\n"), codegen_unknown.stderr


def test_codegen_help_sends_operators_to_socket_gateway():
    """socket-gateway-codegen --help says it is the build plugin's tool and names the operator's commands."""
    result = run_codegen("--help")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(
        "USAGE: socket-gateway-codegen <command> [options] <events.yaml>\n\n"
        "The build plugin's tool: SocketGatewayEventsPlugin runs `generate` for every\n"
        "target with an events.yaml. Operators: use `socket-gateway check` and\n"
        "`socket-gateway export`, which print the same output (its header names\n"
        "`socket-gateway export`).\n"
    ), result.stdout


def test_the_build_plugins_generate_command_is_unchanged(tmp_path):
    """The plugin's call (`generate <catalog> --output <file>`) still writes the Swift the golden file holds,
    silently, and names socket-gateway-codegen in its header."""
    catalog = tmp_path / "events.yaml"
    shutil.copy(CATALOG, catalog)
    output = tmp_path / "Generated" / "SocketGatewayEvents.swift"
    result = run_codegen("generate", str(catalog), "--output", str(output))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert output.read_text() == (GOLDEN / "expected.swift.golden").read_text()


def test_emit_tells_nobody_listened_apart_from_success():
    """0 subscribers is not success: exit 75, the published line on stdout and the reason on stderr."""
    redis, channel = redis_url(), new_channel()
    nobody = run_cli("emit", "--redis-url", redis, "--channel", channel, "--timeout", "0.3", "--broadcast", "ping", "1")
    assert nobody.returncode == 75, (nobody.returncode, nobody.stderr)
    assert nobody.stdout.startswith("published ping to everyone") and "0 subscriber(s)" in nobody.stdout
    assert "only 0 of at least 1 server(s) were subscribed" in nobody.stderr, nobody.stderr
    fire_and_forget = run_cli(
        "emit", "--redis-url", redis, "--channel", channel, "--min-subscribers", "0", "--broadcast", "ping", "1"
    )
    assert fire_and_forget.returncode == 0, fire_and_forget.stderr
    assert run_cli("emit", "--min-subscribers", "-1", "--broadcast", "ping").returncode == 64
    assert "  75  " in run_cli("--help").stdout


def test_emit_waits_for_the_subscribers_it_expects():
    """A server that subscribes while emit waits (a restart, a rolling deploy) still gets the event, exactly once."""
    redis, channel = redis_url(), new_channel()
    emit = subprocess.Popen(
        [str(cli_path()), "emit", "--redis-url", redis, "--channel", channel, "--timeout", "20", "--room", "r",
         "late", '{"n":1}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--redis-url", redis, "--channel", channel, "--count", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert tail.stderr.readline().startswith(f"SUBSCRIBED {channel}")
        out, err = emit.communicate(timeout=30)
        assert emit.returncode == 0, (emit.returncode, err)
        assert "1 subscriber(s)" in out, out
        tail_out, _ = tail.communicate(timeout=30)
    finally:
        for process in (emit, tail):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    assert tail_out.startswith("emit event=late room=r "), tail_out


def test_emit_rides_out_a_redis_restart(tmp_path):
    """Redis is down when emit starts and comes up within --timeout: published, not "unavailable"."""
    def start(port):
        """emit first, then (0.5 s later) Redis on the port it was given; both stopped when the port was taken."""
        emit = subprocess.Popen(
            [str(cli_path()), "emit", "--redis-url", f"redis://127.0.0.1:{port}", "--timeout", "20",
             "--min-subscribers", "0", "--broadcast", "ping", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            # Let emit find Redis down at least once (its first attempt is immediate), then start it.
            assert emit.poll() is None
            time.sleep(0.5)
            return emit, plain_redis(port, tmp_path)
        except BaseException:
            emit.kill()
            emit.communicate(timeout=10)
            raise

    emit, redis = start_on_free_port("redis-server", start)
    try:
        out, err = emit.communicate(timeout=30)
        assert emit.returncode == 0, (emit.returncode, err)
        assert out.startswith("published ping to everyone"), out
    finally:
        if emit.poll() is None:
            emit.kill()
            emit.wait(timeout=10)
        stop_process(redis)


WEAK_SECRET_MESSAGE = (
    "socket-gateway serve: error: {source} is 3 bytes, too short to keep tokens from being forged: use at least 32 "
    "random bytes (e.g. `openssl rand -base64 32`)\n"
)


def test_serve_refuses_a_weak_token_secret():
    """A secret anyone can guess does not start a server: 64 from the flag, 78 from the environment."""
    flag = run_cli("serve", "--port", "0", "--token-secret", "abc")
    assert (flag.returncode, flag.stdout) == (64, ""), flag.stderr
    assert flag.stderr == WEAK_SECRET_MESSAGE.format(source="--token-secret")
    from_environment = run_cli("serve", "--port", "0", env={"SOCKET_TOKEN_SECRET": "abc"})
    assert (from_environment.returncode, from_environment.stdout) == (78, ""), from_environment.stderr
    assert from_environment.stderr == WEAK_SECRET_MESSAGE.format(source="SOCKET_TOKEN_SECRET")


def test_serve_refuses_the_old_weak_token_secret_flag():
    """jwt-kit (and RFC 7518 §3.2) refuse HMAC keys shorter than the hash: the flag that allowed them says so."""
    result = run_cli("serve", "--port", "0", "--token-secret", "abc", "--allow-weak-token-secret")
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == (
        "socket-gateway serve: error: --allow-weak-token-secret is no longer accepted: a token secret needs at least "
        "32 bytes (RFC 7518 §3.2; jwt-kit refuses shorter HMAC keys)\n"
    )


@pytest.mark.parametrize(
    "arguments, environment, source",
    [
        (("--token-secret", "x" * 32, "--allow-anonymous"), {}, "--token-secret"),
        (("--allow-anonymous",), {"SOCKET_TOKEN_SECRET": "x" * 32}, "SOCKET_TOKEN_SECRET"),
    ],
)
def test_serve_refuses_a_token_secret_with_allow_anonymous(arguments, environment, source):
    result = run_cli("serve", "--port", "0", *arguments, env=environment)
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway serve: error: {source} and --allow-anonymous contradict each other: with a token secret "
        "every client must authenticate; drop --allow-anonymous to require tokens, or the secret to accept "
        "anonymous clients\n"
    )


@pytest.mark.parametrize("event", ["connect", "disconnect", "connect_error", "disconnecting", "newListener"])
def test_emit_refuses_a_name_socket_io_reserves(event):
    """The names `check` refuses in a catalog (one list) are refused before Redis is contacted (it points nowhere)."""
    result = run_cli("emit", "--redis-url", "redis://127.0.0.1:1", "--user", "42", event, "{}")
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway emit: error: event name '{event}' is reserved by Socket.IO and cannot be emitted (reserved: "
        "connect, connect_error, disconnect, disconnecting, newListener, removeListener); choose another name\n"
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--user", ""), "--user is empty, so the emit would reach nobody; give a value, e.g. --user 42"),
        (("--room", ""), "--room is empty, so the emit would reach nobody; give a value, e.g. --room sheet:s1"),
        (
            ("--broadcast", "--channel", ""),
            "--channel is empty; give the channel the servers subscribe to, or leave it out for socketio",
        ),
        (
            ("--broadcast", "--except", ""),
            "--except is empty; give a room or a sid to skip (write sids as --except=SID), or leave it out",
        ),
        (("--broadcast", "--namespace", "admin"), "--namespace 'admin' does not start with '/'; write --namespace /admin"),
        (
            ("--user", "42", "--user", "43"),
            "--user was given 2 times ('42', '43'); an emit has one target: give --user once, and run emit once per "
            "target",
        ),
        (
            ("--room", "a", "--room", "b"),
            "--room was given 2 times ('a', 'b'); an emit has one target: give --room once, and run emit once per "
            "target",
        ),
    ],
)
def test_emit_refuses_a_target_that_reaches_nobody(arguments, message):
    # Refused before Redis is contacted (the URL points nowhere on purpose).
    result = run_cli("emit", "--redis-url", "redis://127.0.0.1:1", *arguments, "ping", "1")
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == f"socket-gateway emit: error: {message}\n"


def test_serve_and_emit_share_the_namespace_rule():
    serve = run_cli("serve", "--port", "0", "--allow-anonymous", "--namespace", "admin")
    assert (serve.returncode, serve.stdout) == (64, ""), serve.stderr
    assert serve.stderr == "socket-gateway serve: error: --namespace 'admin' does not start with '/'; write --namespace /admin\n"
    for command in (("serve", "--port", "0", "--allow-anonymous"), ("emit", "--broadcast")):
        result = run_cli(*command, "--namespace", "", *(("ping",) if command[0] == "emit" else ()))
        assert result.returncode == 64, result.stderr
        assert result.stderr == (
            f"socket-gateway {command[0]}: error: --namespace is empty; write --namespace / for the default namespace, "
            "or a name such as /admin\n"
        )


@pytest.mark.parametrize(
    "origin, problem",
    [
        ("https://app.example.com/", "it ends with '/'; write --cors-origin https://app.example.com"),
        ("https://app.example.com/app", "it has a path ('/app'); write --cors-origin https://app.example.com"),
        ("https://App.Example.com:443", "browsers leave out the default port 443, and browsers send it in lowercase; "
                                        "write --cors-origin https://app.example.com"),
        ("http://localhost:5173/", "it ends with '/'; write --cors-origin http://localhost:5173"),
        ("not a url", "it is not http(s)://host[:port]; write http(s)://host[:port], e.g. --cors-origin "
                      "https://app.example.com, or * for any origin"),
    ],
)
def test_serve_refuses_a_cors_origin_that_never_matches(origin, problem):
    result = run_cli("serve", "--port", "0", "--allow-anonymous", "--cors-origin", "*", "--cors-origin", origin)
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway serve: error: --cors-origin '{origin}' never matches a browser's Origin header: {problem}\n"
    )


def test_serve_refuses_a_cors_origin_from_the_environment():
    result = run_cli(
        "serve", "--port", "0", "--allow-anonymous",
        env={"SOCKET_CORS_ORIGINS": "https://a.example.com, https://b.example.com/"},
    )
    assert (result.returncode, result.stdout) == (78, ""), result.stderr
    assert result.stderr == (
        "socket-gateway serve: error: SOCKET_CORS_ORIGINS 'https://b.example.com/' never matches a browser's Origin "
        "header: it ends with '/'; write https://b.example.com\n"
    )


@pytest.mark.parametrize(
    "command",
    [("serve", "--port", "0", "--allow-anonymous"), ("emit", "--broadcast", "ping"), ("tail",)],
    ids=["serve", "emit", "tail"],
)
def test_a_log_level_that_does_not_exist_is_refused(command):
    # Before anything else: serve does not listen, emit and tail do not look for Redis.
    result = run_cli(*command, "--log-level", "bogus")
    assert (result.returncode, result.stdout) == (64, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway {command[0]}: error: --log-level 'bogus' is not a log level; use one of trace, debug, info, "
        "notice, warning, error, critical\n"
    )


def test_a_log_level_is_taken_in_any_case():
    # Past the level check: with no Redis URL, emit stops at "not configured".
    assert run_cli("emit", "--log-level", "WARNING", "--broadcast", "ping").returncode == 78


def test_emit_reads_the_payload_from_a_file_or_stdin(tmp_path):
    """@FILE and - read the JSON; a payload over the ~128 KiB an argument can hold gets through a file."""
    redis, channel = redis_url(), new_channel()
    small = tmp_path / "small.json"
    small.write_text('{"from": "file"}\n')
    large_payload = {"rows": ["x" * 100] * 2000}  # about 200 KiB
    large = tmp_path / "large.json"
    large.write_text(json.dumps(large_payload))
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--json", "--redis-url", redis, "--channel", channel, "--count", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert tail.stderr.readline().startswith(f"SUBSCRIBED {channel}")
        emit = ("emit", "--redis-url", redis, "--channel", channel, "--room", "r", "ev")
        assert run_cli(*emit, f"@{small}").returncode == 0
        with open(tmp_path / "stdin.json", "w+") as stdin:
            stdin.write('[1, "from stdin"]')
            stdin.seek(0)
            assert run_cli(*emit, "-", stdin=stdin).returncode == 0
        assert run_cli(*emit, f"@{large}").returncode == 0
        out, _ = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    assert [json.loads(line)["data"] for line in out.splitlines()] == [
        [{"from": "file"}], [[1, "from stdin"]], [large_payload]
    ]


def test_emit_refuses_a_payload_it_cannot_read(tmp_path):
    # Refused before Redis is contacted (the URL points nowhere on purpose).
    emit = ("emit", "--redis-url", "redis://127.0.0.1:1", "--broadcast", "ping")
    redirected = tmp_path / "payload.json"
    redirected.write_text('{"a": 1}')
    with open(redirected) as stdin:
        forgotten_dash = run_cli(*emit, stdin=stdin)
    assert (forgotten_dash.returncode, forgotten_dash.stdout) == (64, ""), forgotten_dash.stderr
    assert forgotten_dash.stderr == (
        "socket-gateway emit: error: stdin holds data but no payload argument was given, so the event would be "
        "published with no argument; write - as the payload to read the JSON from stdin "
        "(socket-gateway emit ... ping - < FILE), or @FILE\n"
    )
    missing = run_cli(*emit, f"@{tmp_path}/absent.json")
    assert missing.returncode == 74, missing.stderr
    assert missing.stderr == (
        f"socket-gateway emit: error: cannot read the payload file '{tmp_path}/absent.json': No such file or "
        "directory; check the path after '@'\n"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": }')
    not_json = run_cli(*emit, f"@{broken}")
    assert not_json.returncode == 64, not_json.stderr
    assert not_json.stderr == (
        f"socket-gateway emit: error: the payload in '{broken}' is not valid JSON: at byte 6: expected a value "
        "(object, array, string, number, true, false or null), found '}'\n"
    )


@pytest.fixture
def redis_with_password(tmp_path):
    """A private redis-server on a free loopback port that wants the password 'right'; stopped by PID."""
    port, process = start_on_free_port(
        "redis-server", lambda port: (port, plain_redis(port, tmp_path, "--requirepass", "right", password="right"))
    )
    try:
        yield port
    finally:
        stop_process(process)


@pytest.mark.parametrize(
    "command",
    [("emit", "--broadcast", "ping", "1"), ("tail",), ("serve", "--port", "0", "--allow-anonymous")],
    ids=["emit", "tail", "serve"],
)
def test_a_wrong_redis_password_stops_at_once_with_78(redis_with_password, command):
    """A refused password is not an outage: 78 at once (tail and serve no longer retry forever), not 69."""
    url = f"redis://:wrong@127.0.0.1:{redis_with_password}"
    result = run_cli(*command, "--redis-url", url, timeout=30)
    assert (result.returncode, result.stdout) == (78, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway {command[0]}: error: not configured: Redis at redis://:***@127.0.0.1:{redis_with_password}/0 "
        "refused the URL's credentials or database (Redis refused AUTH: WRONGPASS invalid username-password pair or "
        "user is disabled.); fix the user, password or database number in the Redis URL (--redis-url or REDIS_URL)\n"
    ), result.stderr


def test_every_tool_prints_its_version():
    """--version prints `<tool> <version>` from the one constant in Sources/SocketGatewayVersion, exit 0."""
    source = (REPO / "Sources/SocketGatewayVersion/SocketGatewayVersion.swift").read_text()
    version = re.search(r'static let current = "([^"]+)"', source).group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    for tool, variable in (
        ("socket-gateway", "SOCKET_GATEWAY_CLI"),
        ("socket-gateway-codegen", "SOCKET_GATEWAY_CODEGEN_EXECUTABLE"),
        ("sheet-sync-demo", "SOCKET_GATEWAY_DEMO_EXECUTABLE"),
    ):
        result = subprocess.run(
            [str(built_executable(tool, variable)), "--version"], capture_output=True, text=True, timeout=30
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, f"{tool} {version}\n", ""), tool


def run_demo(*arguments: str, env=None) -> subprocess.CompletedProcess:
    """Runs `sheet-sync-demo ARGUMENTS...` without REDIS_URL (unless `env` sets it)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SOCKET_TOKEN_SECRET")}
    environment.update(env or {})
    executable = built_executable("sheet-sync-demo", "SOCKET_GATEWAY_DEMO_EXECUTABLE")
    return subprocess.run(
        [str(executable), *arguments], capture_output=True, text=True, timeout=30, env=environment, cwd=REPO
    )


def test_demo_server_takes_token_secret_and_warns_on_the_old_name():
    """--token-secret as in `socket-gateway serve`; --jwt-secret still works, with a warning; not both."""
    no_redis = "error: not configured: no Redis URL (use --redis-url or REDIS_URL; tools/demo starts a Redis)\n"
    current = run_demo("server", "--name", "s", "--token-secret", "t" * 32)
    assert (current.returncode, current.stderr) == (78, "sheet-sync-demo server: " + no_redis)
    old = run_demo("server", "--name", "s", "--jwt-secret", "t" * 32)
    assert (old.returncode, old.stderr) == (
        78,
        "sheet-sync-demo server: warning: --jwt-secret is deprecated; use --token-secret, as socket-gateway serve "
        "does\nsheet-sync-demo server: " + no_redis,
    )
    both = run_demo("server", "--name", "s", "--jwt-secret", "a", "--token-secret", "b")
    assert both.returncode == 64
    assert both.stderr.startswith("Error: --jwt-secret is the old name of --token-secret; give only --token-secret\n")


def test_demo_exit_codes_match_the_gateway():
    """The same situation exits with the same code in sheet-sync-demo as in socket-gateway (78, 64, 1)."""
    worker = run_demo("worker", "--name", "w")
    assert (worker.returncode, worker.stderr) == (
        78,
        "sheet-sync-demo worker: error: not configured: no Redis URL (use --redis-url or REDIS_URL; tools/demo starts "
        "a Redis)\n",
    )
    assert run_cli("tail").returncode == worker.returncode
    bad_url = run_demo("worker", "--name", "w", "--redis-url", "redis//x")
    assert bad_url.returncode == 78 == run_cli("tail", "--redis-url", "redis//x").returncode
    assert bad_url.stderr.startswith("sheet-sync-demo worker: error: not configured: "), bad_url.stderr
    usage = run_demo("worker", "--name", "w", "--step-delay=-1")
    assert usage.returncode == 64 == run_cli("tail", "--count", "0").returncode
    assert usage.stderr.startswith("Error: --step-delay must be 0 or more, got -1\n"), usage.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        demo = run_demo("server", "--name", "s", "--redis-url", redis_url(), "--port", port)
        gateway = run_cli("serve", "--allow-anonymous", "--port", port)
    assert demo.returncode == 1 == gateway.returncode, (demo.stderr, gateway.stderr)
    assert demo.stderr.splitlines()[-1].startswith("sheet-sync-demo server: error: did not start: "), demo.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line():
    """A port in use: exit 1 (the server could not start), one line with the address and what to do, and no
    "stopped" or start-up line for a server that never listened."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--token-secret", "s" * 32)
        anonymous = run_cli("serve", "--port", str(port), "--allow-anonymous")
    message = (
        f"socket-gateway serve: error: cannot listen on 127.0.0.1:{port}: the address is already in use; stop what "
        "uses it or pass another --port (or PORT)\n"
    )
    for process in (result, anonymous):
        assert (process.returncode, process.stdout) == (1, ""), process.stderr
        assert process.stderr == message


def test_serve_cannot_listen_on_an_unknown_host():
    result = run_cli("serve", "--port", "0", "--host", "no-such-host.invalid", "--token-secret", "s" * 32)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        "socket-gateway serve: error: cannot listen on no-such-host.invalid:0: the host name 'no-such-host.invalid' "
        "does not resolve; pass an IP address or a name this machine resolves with --host (or HOST)\n"
    )


def test_serve_shows_why_it_could_not_listen_at_debug_level():
    """The errno and the internal names stay available to whoever debugs: at --log-level debug only."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--token-secret", "s" * 32, "--log-level", "debug")
    assert result.returncode == 1, result.stderr
    assert "errno: 98" in result.stderr
    assert "socket.io server stopped" not in result.stderr
    assert result.stderr.endswith("the address is already in use; stop what uses it or pass another --port (or PORT)\n")


@pytest.mark.parametrize(
    "command",
    [("emit", "--broadcast", "ping", "1"), ("tail",), ("serve", "--port", "0", "--allow-anonymous")],
    ids=["emit", "tail", "serve"],
)
def test_an_invalid_redis_url_is_said_once_without_type_names(command):
    """One line, for a person: what is wrong, the URL with its password masked, where to fix it (78)."""
    for url, problem, shown in (
        ("redis//x", "missing scheme: expected redis://host:port/db or unix:///path/to/redis.sock", "redis//x"),
        (
            "redis://:hunter2@127.0.0.1:notaport",
            "port 'notaport' is not a number between 1 and 65535",
            "redis://:***@127.0.0.1:notaport",
        ),
    ):
        result = run_cli(*command, "--redis-url", url)
        assert (result.returncode, result.stdout) == (78, ""), result.stderr
        assert result.stderr == (
            f"socket-gateway {command[0]}: error: not configured: invalid Redis URL: {problem} in '{shown}'; fix the "
            "Redis URL (--redis-url or REDIS_URL), e.g. redis://127.0.0.1:6379/0\n"
        )


def publish_raw(url: str, channel: str, payload: bytes):
    """PUBLISH `payload` as is on `channel` (RESP over a plain socket), for messages no emit would write."""
    host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    command = [b"PUBLISH", channel.encode(), payload]
    request = b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in command)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        assert connection.recv(64).startswith(b":")


def test_tail_says_why_it_skipped_a_message_without_type_names():
    redis, channel = redis_url(), new_channel()
    tail = subprocess.Popen(
        [str(cli_path()), "tail", "--redis-url", redis, "--channel", channel, "--count", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert tail.stderr.readline().startswith(f"SUBSCRIBED {channel}")
        publish_raw(redis, channel, b"not json")
        publish_raw(redis, channel, b'{"method":"nope"}')
        assert run_cli("emit", "--redis-url", redis, "--channel", channel, "--broadcast", "e").returncode == 0
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    assert tail.returncode == 0, err
    assert out.startswith("emit event=e "), out
    assert err == (
        "skipped a message of 8 bytes that is not JSON (pickled, as older python-socketio versions publish?); "
        "it starts: not json\n"
        "skipped a message of 17 bytes that is not in python-socketio's format (unknown method 'nope'); "
        'it starts: {"method":"nope"}\n'
    )


def plain_redis(port: int, directory, *arguments: str, **client) -> subprocess.Popen:
    """A private redis-server on 127.0.0.1:`port`, answering when this returns (bounded); PortTaken when another
    process has the port. `client`: how to talk to it (e.g. its password). Stop it by its PID."""
    return start_redis(
        "redis-server",
        ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory),
         *arguments],
        port, directory / f"redis-{port}.log", **client,
    )


def test_emit_rides_out_a_redis_that_is_restarting(tmp_path):
    """Redis stops and comes back on the same port about 1 s after emit started: emit keeps connecting within
    --timeout and publishes (0), instead of failing at the first refused connection."""
    port, redis = start_on_free_port("redis-server", lambda port: (port, plain_redis(port, tmp_path)))
    url = f"redis://127.0.0.1:{port}"
    emit = None
    try:
        first = run_cli("emit", "--redis-url", url, "--min-subscribers", "0", "--broadcast", "ping", "1")
        assert first.returncode == 0, first.stderr
        redis.terminate()
        redis.wait(timeout=10)
        emit = subprocess.Popen(
            [str(cli_path()), "emit", "--redis-url", url, "--timeout", "10", "--min-subscribers", "0", "--broadcast",
             "ping", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1)
        assert emit.poll() is None, emit.communicate()
        # The same port again: emit was given it (another process may take it meanwhile; nothing to retry then).
        redis = plain_redis(port, tmp_path)
        out, err = emit.communicate(timeout=30)
        assert emit.returncode == 0, (emit.returncode, err)
        assert out == "published ping to everyone in / on channel socketio: 0 subscriber(s)\n"
        assert err == ""
    finally:
        if emit is not None and emit.poll() is None:
            emit.kill()
            emit.wait(timeout=10)
        redis.terminate()
        redis.wait(timeout=10)


def test_emit_without_redis_gives_up_at_its_timeout_with_69():
    port = free_port()
    result = run_cli("emit", "--redis-url", f"redis://127.0.0.1:{port}", "--timeout", "0.5", "--broadcast", "ping")
    assert (result.returncode, result.stdout) == (69, ""), result.stderr
    assert result.stderr == (
        f"socket-gateway emit: error: Redis unavailable, not published: no answer from redis://127.0.0.1:{port}/0 "
        "within --timeout 0.5 s, retrying all along (last: cannot connect to Redis; is redis-server running "
        "there?); start Redis there, or raise --timeout\n"
    )


def test_emit_with_a_catalog_publishes_a_uuid_in_lowercase(tmp_path):
    """The catalog says a uuid is lowercase on the wire; the generated Swift reads either case and writes
    lowercase. emit --catalog does the same: it accepts an uppercase UUID and a client receives it lowercased."""
    redis, channel = redis_url(), new_channel()
    serve = start_serve(tmp_path, redis, channel)

    async def scenario():
        peer = Peer(serve.url, mint_token(serve.secret, "42"), name="user-42")
        try:
            await peer.connect()
            payload = {
                "sheet_id": "s1", "job_id": "0B8F9A3E-3F52-4D2C-9A57-1F7C7F0E9D11", "stage": "parsing",
                "processed": 10, "total": None, "percent": 10.0,
            }
            result = run_cli(
                "emit", "--redis-url", redis, "--channel", channel, "--catalog", str(CATALOG), "--user", "42",
                "sheet:sync:progress", json.dumps(payload),
            )
            assert result.returncode == 0, result.stderr
            assert await peer.next("sheet:sync:progress") == [
                {**payload, "job_id": "0b8f9a3e-3f52-4d2c-9a57-1f7c7f0e9d11"}
            ]
        finally:
            await peer.close()

    try:
        run(scenario())
    finally:
        serve.stop()


def test_typescript_export_allows_null_where_the_wire_does():
    """An optional field may be absent or null on the wire, and the TypeScript type says both."""
    exported = run_cli("export", "--format", "typescript", str(CATALOG))
    assert exported.returncode == 0, exported.stderr
    assert "\n  total?: number | null;\n" in exported.stdout
    assert "?: number;" not in exported.stdout and "?: string;" not in exported.stdout


def test_emit_stops_reading_a_payload_that_never_ends():
    """A flood on stdin or behind @FILE (/dev/zero never ends) is cut at 16 MiB: exit 64 with the reason, rather
    than reading until memory runs out. The bounded read, not a timeout, ends it."""
    with open("/dev/zero", "rb") as flood:
        from_stdin = run_cli("emit", "--redis-url", "redis://127.0.0.1:1", "--user", "42", "e", "-", stdin=flood)
    assert (from_stdin.returncode, from_stdin.stdout) == (64, ""), from_stdin.stderr
    assert from_stdin.stderr == (
        "socket-gateway emit: error: the payload from stdin is larger than 16 MiB; send a reference to the data "
        "(a URL, an id) instead\n"
    )
    from_file = run_cli("emit", "--redis-url", "redis://127.0.0.1:1", "--user", "42", "e", "@/dev/zero")
    assert (from_file.returncode, from_file.stdout) == (64, ""), from_file.stderr
    assert from_file.stderr == (
        "socket-gateway emit: error: the payload in '/dev/zero' is larger than 16 MiB; send a reference to the "
        "data (a URL, an id) instead\n"
    )
