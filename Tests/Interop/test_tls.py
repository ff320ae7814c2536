"""TLS on `socket-gateway serve`'s own listener (https:// long-polling and wss://), with certificates the test makes
(openssl CLI: a private CA, a server certificate for 127.0.0.1 and localhost):

- python-socketio clients that verify the certificate against that CA connect over each transport and get an emit
  published through Redis; a client that does not trust the CA is refused by its own verification;
- plaintext HTTP to the TLS port closes that connection only;
- SIGHUP reloads the files: a new connection sees the new certificate (fingerprints compared), an old connection
  still gets emits; a bad new file keeps the previous certificate and the log says why, naming the file;
- bad files are refused at startup with a line naming the file.
"""

import asyncio
import hashlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import socketio

from cluster_helpers import cli_path, new_channel, redis_url, run_cli
from interop import Peer, mint_token, run
from processes import read_listening_port, stop_gracefully


def _openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem"), "-days", "2",
        "-subj", f"/CN=SocketGateway test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash",
    )
    return directory / f"{name}.pem"


def make_server_certificate(directory: Path, name: str, ca: str = "ca") -> tuple:
    """(certificate chain file, key file) of a new key and a certificate for 127.0.0.1 and localhost signed by
    `ca`."""
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.csr"), "-subj", "/CN=localhost",
    )
    _openssl(
        "x509", "-req", "-in", str(directory / f"{name}.csr"), "-CA", str(directory / f"{ca}.pem"),
        "-CAkey", str(directory / f"{ca}.key"), "-set_serial", str(int.from_bytes(os.urandom(4), "big")),
        "-days", "2", "-out", str(directory / f"{name}.pem"), "-extfile", str(extensions),
    )
    return directory / f"{name}.pem", directory / f"{name}.key"


def fingerprint_of_file(certificate: Path) -> str:
    """SHA-256 of the first certificate in a PEM file."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(certificate.read_text())).hexdigest()


def presented_fingerprint(port: int, ca: Path) -> str:
    """SHA-256 of the certificate a new TLS connection to 127.0.0.1:port is given (verified against `ca`)."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def trusting_session(ca: Path) -> aiohttp.ClientSession:
    """An aiohttp session (both python-socketio transports use it) that verifies servers against `ca` only."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(ca))))


class TLSServe:
    """A `socket-gateway serve --tls-cert … --tls-key …` process on a free loopback port, clustered through the
    test Redis on its own channel."""

    def __init__(self, tmp_path: Path, certificate: Path, key: Path, ca: Path, *extra: str):
        self.secret = secrets.token_urlsafe(32)
        self.channel = new_channel()
        self.redis = redis_url()
        self.ca = ca
        self.log = tmp_path / f"serve-{secrets.token_hex(3)}.log"
        with open(self.log, "wb") as log_file:
            self.process = subprocess.Popen(
                [str(cli_path()), "serve", "--port", "0", "--redis-url", self.redis, "--channel", self.channel,
                 f"--token-secret={self.secret}", "--tls-cert", str(certificate), "--tls-key", str(key), *extra],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
            )
        try:
            self.port = read_listening_port(self.process)
        except RuntimeError as error:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail(f"serve: {error}\n{self.log_text()}")
        self.url = f"https://127.0.0.1:{self.port}"
        self._wait_until_subscribed()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def healthz(self) -> tuple:
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5, context=context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def _wait_until_subscribed(self):
        for _ in range(200):
            status, body = self.healthz()
            if status == 200 and body.get("redis", {}).get("connected"):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"serve's Redis subscriber did not connect within 10 s\n{self.log_text()}")

    def emit_to_user(self, user: str, event: str, payload) -> None:
        result = run_cli(
            "emit", "--redis-url", self.redis, "--channel", self.channel, "--user", user, event, json.dumps(payload)
        )
        assert result.returncode == 0, result.stderr

    def stop(self):
        stop_gracefully(self.process, "serve", lambda: self.log_text()[-3000:])


@pytest.fixture
def pki(tmp_path):
    """The test's CA, another CA, and a server certificate signed by the first."""
    ca = make_ca(tmp_path, "ca")
    other_ca = make_ca(tmp_path, "other-ca")
    certificate, key = make_server_certificate(tmp_path, "server")
    return {"ca": ca, "other_ca": other_ca, "certificate": certificate, "key": key, "dir": tmp_path}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_verifying_the_certificate_connects_and_receives(tmp_path, pki, transport):
    serve = TLSServe(tmp_path, pki["certificate"], pki["key"], pki["ca"])

    async def scenario():
        session = trusting_session(pki["ca"])
        peer = Peer(serve.url, mint_token(serve.secret, "42"), transports=[transport], http_session=session)
        try:
            await peer.connect()
            assert peer.sio.transport() == transport
            serve.emit_to_user("42", "hello", {"over": "tls"})
            assert await peer.next("hello") == [{"over": "tls"}]
        finally:
            await peer.close()
            await session.close()

    try:
        run(scenario())
    finally:
        serve.stop()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_that_does_not_trust_the_ca_refuses_the_server(tmp_path, pki, transport):
    serve = TLSServe(tmp_path, pki["certificate"], pki["key"], pki["ca"])

    async def scenario():
        untrusting = trusting_session(pki["other_ca"])
        refused = Peer(serve.url, mint_token(serve.secret, "7"), transports=[transport], http_session=untrusting)
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect()
            assert not refused.sio.connected
            # What refused it: the client's own certificate check, on the same session the transports use.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(serve.url + "/healthz")
        finally:
            await refused.close()
            await untrusting.close()
        # The server is unharmed: a client that trusts the CA connects next.
        session = trusting_session(pki["ca"])
        peer = Peer(serve.url, mint_token(serve.secret, "8"), transports=[transport], http_session=session)
        try:
            await peer.connect()
        finally:
            await peer.close()
            await session.close()

    try:
        run(scenario())
    finally:
        serve.stop()


def test_plaintext_http_to_the_tls_port_closes_only_that_connection(tmp_path, pki):
    serve = TLSServe(tmp_path, pki["certificate"], pki["key"], pki["ca"])

    async def scenario():
        session = trusting_session(pki["ca"])
        peer = Peer(serve.url, mint_token(serve.secret, "42"), http_session=session)
        try:
            await peer.connect()
            reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes it
            writer.close()
            assert b"HTTP/1.1" not in answer  # never answered in plaintext
            serve.emit_to_user("42", "still", 1)
            assert await peer.next("still") == [1]
        finally:
            await peer.close()
            await session.close()

    try:
        run(scenario())
    finally:
        serve.stop()


def test_sighup_reloads_the_certificate_for_new_connections_only(tmp_path, pki):
    live_certificate, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_certificate.write_bytes(pki["certificate"].read_bytes())
    live_key.write_bytes(pki["key"].read_bytes())
    serve = TLSServe(tmp_path, live_certificate, live_key, pki["ca"])
    first = fingerprint_of_file(pki["certificate"])
    renewed_certificate, renewed_key = make_server_certificate(tmp_path, "renewed")
    renewed = fingerprint_of_file(renewed_certificate)
    assert first != renewed

    def replace(path: Path, data: bytes):
        staged = path.with_suffix(".new")
        staged.write_bytes(data)
        os.replace(staged, path)  # as certbot and friends do: a reader never sees half a file

    def new_connections_see(expected: str) -> str:
        seen = None
        for _ in range(100):
            seen = presented_fingerprint(serve.port, pki["ca"])
            if seen == expected:
                return seen
            time.sleep(0.05)
        return seen

    async def scenario():
        session = trusting_session(pki["ca"])
        old_websocket = Peer(serve.url, mint_token(serve.secret, "1"), http_session=session, name="old-ws")
        old_polling = Peer(
            serve.url, mint_token(serve.secret, "1"), transports=["polling"], http_session=session, name="old-poll"
        )
        try:
            await old_websocket.connect()
            await old_polling.connect()
            assert presented_fingerprint(serve.port, pki["ca"]) == first

            replace(live_certificate, renewed_certificate.read_bytes())
            replace(live_key, renewed_key.read_bytes())
            serve.process.send_signal(signal.SIGHUP)
            assert new_connections_see(renewed) == renewed
            # The connections opened before the reload still work (the polling one opens new HTTP connections,
            # which get the new certificate: signed by the same CA, so the client accepts them).
            serve.emit_to_user("1", "after-reload", 2)
            assert await old_websocket.next("after-reload") == [2]
            assert await old_polling.next("after-reload") == [2]
            fresh = Peer(serve.url, mint_token(serve.secret, "3"), http_session=session, name="fresh")
            try:
                await fresh.connect()
            finally:
                await fresh.close()

            # A bad new file: the reload is refused, the log says why and names the file, the old context stays.
            replace(live_certificate, b"not a certificate\n")
            serve.process.send_signal(signal.SIGHUP)
            for _ in range(100):
                if "TLS reload failed" in serve.log_text():
                    break
                await asyncio.sleep(0.05)
            log = serve.log_text()
            assert "TLS reload failed" in log, log[-2000:]
            assert f"the TLS certificate chain file '{live_certificate}' is not a PEM certificate file" in log
            assert presented_fingerprint(serve.port, pki["ca"]) == renewed
            serve.emit_to_user("1", "after-bad-reload", 3)
            assert await old_websocket.next("after-bad-reload") == [3]
            assert serve.process.poll() is None
        finally:
            await old_websocket.close()
            await old_polling.close()
            await session.close()

    try:
        run(scenario())
    finally:
        serve.stop()


@pytest.mark.parametrize(
    "case",
    [
        "missing-certificate", "not-pem", "key-of-another-certificate", "flag-without-key", "variable-without-key",
        "bad-handshake-timeout",
    ],
)
def test_bad_tls_files_are_refused_at_startup(pki, case):
    certificate, key = str(pki["certificate"]), str(pki["key"])
    missing = str(pki["dir"] / "missing.pem")
    _, other_key = make_server_certificate(pki["dir"], "other")
    garbage = pki["dir"] / "garbage.pem"
    garbage.write_text("hello\n")
    arguments, env, code, message = {
        "missing-certificate": (
            ["--tls-cert", missing, "--tls-key", key], {}, 78,
            f"tls: the TLS certificate chain file '{missing}' does not exist",
        ),
        "not-pem": (
            ["--tls-cert", str(garbage), "--tls-key", key], {}, 78,
            f"tls: the TLS certificate chain file '{garbage}' is not a PEM certificate file",
        ),
        "key-of-another-certificate": (
            ["--tls-cert", certificate, "--tls-key", str(other_key)], {}, 78,
            f"tls: the TLS private key file '{other_key}' does not belong to the first certificate of the TLS "
            f"certificate chain file '{certificate}'",
        ),
        "flag-without-key": (["--tls-cert", certificate], {}, 64, "--tls-cert needs --tls-key"),
        "variable-without-key": (
            [], {"SOCKET_TLS_CERT": certificate}, 78, "SOCKET_TLS_KEY must be set with SOCKET_TLS_CERT"
        ),
        "bad-handshake-timeout": (
            ["--tls-cert", certificate, "--tls-key", key], {"SOCKET_TLS_HANDSHAKE_TIMEOUT": "soon"}, 78,
            "SOCKET_TLS_HANDSHAKE_TIMEOUT must be a number of seconds, 0.001...3600, got 'soon'",
        ),
    }[case]
    result = run_cli("serve", "--allow-anonymous", "--port", "0", *arguments, env=env)
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"socket-gateway serve: error: {message}"), result.stderr
