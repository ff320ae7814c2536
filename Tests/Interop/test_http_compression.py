"""Compression of long-polling responses (engine.io's `httpCompression`) against interop servers of their own
started with SOCKET_HTTP_COMPRESSION=on (it is off by default, so the suite's shared server keeps it off): on our
own listener and mounted on Hummingbird. A raw HTTP client checks the bytes (gzip and deflate bodies decompressed
with Python's zlib, plain ones without Accept-Encoding); python-socketio's asyncio polling client (aiohttp, which
sends `Accept-Encoding: gzip, deflate` and decompresses) keeps working with large payloads. (Its threaded client
would need `requests`, which the suite does not install.)"""

import gzip
import json
import os
import subprocess
import urllib.request
import zlib

import pytest

from cluster_helpers import cli_path, run_cli
from interop import Peer, close_all, connect_all, mint_token, run
from processes import interop_server, read_listening_port

THRESHOLD = 1024
LARGE = "cell A1 = 42; " * 200  # about 2.8 KB: compresses well, as JSON events do


@pytest.fixture(scope="module", params=["listener", "hummingbird"])
def polling_compression_server(request, tmp_path_factory):
    yield from interop_server(
        tmp_path_factory,
        f"http-compression-{request.param}",
        SOCKET_HTTP_COMPRESSION="on",
        SOCKET_HTTP_COMPRESSION_THRESHOLD=str(THRESHOLD),
        SOCKET_GATEWAY_INTEROP_MOUNTED="hummingbird" if request.param == "hummingbird" else "",
    )


def http(method: str, url: str, body: str = None, accept_encoding: str = None):
    """One request with urllib, which decompresses nothing: (status, headers, raw body bytes)."""
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method)
    if accept_encoding is not None:
        request.add_header("Accept-Encoding", accept_encoding)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


def test_large_polling_responses_are_gzip_or_deflate_as_accepted_and_plain_otherwise(polling_compression_server):
    url, secret = polling_compression_server.url, polling_compression_server.secret
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    _, headers, opened = http("GET", base, accept_encoding="gzip")
    assert headers.get("Content-Encoding") is None, "the handshake is below the threshold"
    sid = json.loads(opened.decode()[1:])["sid"]
    target = f"{base}&sid={sid}"
    assert http("POST", target, body="40" + json.dumps({"token": mint_token(secret, "gzip-reader")}))[2] == b"ok"
    assert http("GET", target, accept_encoding="gzip")[2].startswith(b'40{"sid"')
    # The server emits `echo` back with the same argument, in the same JSON.
    event = "42" + json.dumps(["echo", LARGE], separators=(",", ":"))

    assert http("POST", target, body=event)[2] == b"ok"
    status, headers, body = http("GET", target, accept_encoding="gzip, deflate")
    assert (status, headers.get("Content-Encoding"), headers.get("Vary")) == (200, "gzip", "Accept-Encoding")
    assert len(body) < len(event) // 4
    assert gzip.decompress(body).decode() == event

    assert http("POST", target, body=event)[2] == b"ok"
    _, headers, body = http("GET", target, accept_encoding="deflate")
    assert headers.get("Content-Encoding") == "deflate"
    assert zlib.decompress(body).decode() == event

    for accept in (None, "br", "identity"):
        assert http("POST", target, body=event)[2] == b"ok"
        _, headers, body = http("GET", target, accept_encoding=accept)
        assert headers.get("Content-Encoding") is None, accept
        assert body.decode() == event


def test_python_socketio_polling_clients_work_with_it_on(polling_compression_server):
    url, secret = polling_compression_server.url, polling_compression_server.secret

    async def scenario():
        peer = Peer(url, mint_token(secret, "aiohttp-poller"), ["polling"], name="aiohttp")
        try:
            await connect_all([peer])
            assert await peer.request("echo", LARGE) == [LARGE]
            assert await peer.request("echo", "small") == ["small"]
        finally:
            await close_all([peer])

    run(scenario())


def test_serve_turns_polling_compression_on_from_the_environment():
    """`socket-gateway serve` with SOCKET_HTTP_COMPRESSION=on compresses polling responses: `Vary: Accept-Encoding`
    says so (only a server that compresses sends it); the handshake, above the 16-byte threshold, is gzipped unless
    its random sid keeps it from shrinking (then it goes out plain)."""
    process = subprocess.Popen(
        [str(cli_path()), "serve", "--allow-anonymous", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, SOCKET_HTTP_COMPRESSION="on", SOCKET_HTTP_COMPRESSION_THRESHOLD="16"),
    )
    try:
        port = read_listening_port(process)
        _, headers, body = http(
            "GET", f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling", accept_encoding="gzip"
        )
        assert headers.get("Vary") == "Accept-Encoding"
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert headers.get("Content-Encoding") in (None, "gzip")
        assert body.startswith(b'0{"sid"')
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SOCKET_HTTP_COMPRESSION": "maybe"}, "SOCKET_HTTP_COMPRESSION must be 'on' or 'off', got 'maybe'"),
        (
            {"SOCKET_HTTP_COMPRESSION": "on", "SOCKET_HTTP_COMPRESSION_THRESHOLD": "1k"},
            "SOCKET_HTTP_COMPRESSION_THRESHOLD must be a whole number of bytes, 0 or more, got '1k'",
        ),
        (
            {"SOCKET_HTTP_COMPRESSION_THRESHOLD": "2048"},
            "SOCKET_HTTP_COMPRESSION_THRESHOLD is set but SOCKET_HTTP_COMPRESSION is not 'on'",
        ),
    ],
)
def test_serve_refuses_bad_polling_compression_settings(env, message):
    result = run_cli("serve", "--allow-anonymous", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (78, "", f"socket-gateway serve: error: {message}\n")
