"""Redis over TLS (`rediss://`) between our CLI, our server and python-socketio, against a redis-server whose port
speaks only TLS, with a private CA the test makes (openssl CLI):

- `socket-gateway serve` with redis-py's `?ssl_ca_certs=` in the URL, `socket-gateway emit` with REDIS_URL=rediss://…
  and SOCKET_REDIS_TLS_CA: the emit reaches a python-socketio client;
- python-socketio's AsyncRedisManager on the same rediss:// URL (redis-py parses ssl_ca_certs itself) emits to the
  Swift server: the wire-compat check;
- a CA file that does not exist is refused by emit with exit 78 and what is wrong; a CA that did not sign the
  server's certificate makes emit fail (exit 69) saying "certificate verify failed".
"""

import os
import shutil
import subprocess

import pytest
import socketio

from cluster_helpers import new_channel, run_cli, start_serve
from interop import Peer, mint_token, run
from processes import start_on_free_port, start_redis, stop_process


def _openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)


def _make_ca(directory, name):
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem"), "-days", "2",
        "-subj", f"/CN=SocketGateway {name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash",
    )


def _make_server_certificate(directory):
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(directory / "server.key"), "-out", str(directory / "server.csr"), "-subj", "/CN=localhost",
    )
    _openssl(
        "x509", "-req", "-in", str(directory / "server.csr"), "-CA", str(directory / "ca.pem"),
        "-CAkey", str(directory / "ca.key"), "-set_serial", str(int.from_bytes(os.urandom(4), "big")),
        "-days", "2", "-out", str(directory / "server.pem"), "-extfile", str(extensions),
    )


@pytest.fixture
def tls_redis(tmp_path):
    """(rediss:// URL, CA file, another CA's file) of a private redis-server with a TLS-only port."""
    if shutil.which("openssl") is None or shutil.which("redis-server") is None:
        pytest.fail("these tests need the openssl CLI and redis-server (tools/test installs them)")
    _make_ca(tmp_path, "ca")
    _make_ca(tmp_path, "other-ca")
    _make_server_certificate(tmp_path)

    def start(port):
        return port, start_redis(
            "redis-server with TLS",
            ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(tmp_path / "server.pem"), "--tls-key-file", str(tmp_path / "server.key"),
             "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            port, tmp_path / "redis.log", ssl=True, ssl_ca_certs=str(tmp_path / "ca.pem"),
        )

    port, process = start_on_free_port("redis-server with TLS", start)
    try:
        yield f"rediss://127.0.0.1:{port}/0", str(tmp_path / "ca.pem"), str(tmp_path / "other-ca.pem")
    finally:
        stop_process(process)


def test_emit_and_python_socketio_reach_a_swift_server_over_tls(tmp_path, tls_redis):
    url, ca, _ = tls_redis
    channel = new_channel()
    # serve takes the CA in the URL, as redis-py spells it; emit takes it from SOCKET_REDIS_TLS_CA.
    serve = start_serve(tmp_path, f"{url}?ssl_ca_certs={ca}", channel)

    async def scenario():
        peer = Peer(serve.url, mint_token(serve.secret, "42"), name="user-42")
        try:
            await peer.connect()
            environment = {"REDIS_URL": url, "SOCKET_REDIS_TLS_CA": ca}
            result = run_cli("emit", "--channel", channel, "--user", "42", "progress", '{"percent":5}', env=environment)
            assert result.returncode == 0, result.stderr
            assert "1 subscriber(s)" in result.stdout, result.stdout
            assert await peer.next("progress") == [{"percent": 5}]

            manager = socketio.AsyncRedisManager(f"{url}?ssl_ca_certs={ca}", channel=channel, write_only=True)
            await manager.emit("from-python", {"ok": True}, room="user:42", namespace="/")
            assert await peer.next("from-python") == [{"ok": True}]
        finally:
            await peer.close()

    try:
        run(scenario())
    finally:
        serve.stop()


def test_emit_refuses_tls_files_it_cannot_use_and_says_why_a_handshake_failed(tls_redis, tmp_path):
    url, _, other_ca = tls_redis
    missing = str(tmp_path / "missing-ca.pem")
    result = run_cli("emit", "--broadcast", "x", "1", env={"REDIS_URL": url, "SOCKET_REDIS_TLS_CA": missing})
    assert result.returncode == 78, (result.returncode, result.stderr)
    assert f"CA file (ssl_ca_certs, SOCKET_REDIS_TLS_CA) '{missing}' does not exist" in result.stderr, result.stderr

    result = run_cli("emit", "--broadcast", "x", "1", env={"REDIS_URL": url.replace("rediss", "redis"),
                                                           "SOCKET_REDIS_TLS_CA": other_ca})
    assert result.returncode == 78, (result.returncode, result.stderr)
    assert "the URL is not rediss://" in result.stderr, result.stderr

    result = run_cli(
        "emit", "--timeout", "1", "--broadcast", "x", "1", env={"REDIS_URL": url, "SOCKET_REDIS_TLS_CA": other_ca}
    )
    assert result.returncode == 69, (result.returncode, result.stderr)
    assert "certificate verify failed" in result.stderr, result.stderr
