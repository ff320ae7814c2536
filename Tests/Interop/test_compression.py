"""WebSocket per-message compression (permessage-deflate, RFC 7692) against an interop server of its own started
with SOCKET_WS_COMPRESSION=on (compression is off by default, so the suite's shared server keeps it off).

python-socketio's asyncio client (aiohttp) offers permessage-deflate; its threaded client (websocket-client) offers
nothing and must keep working uncompressed. A raw client checks what really goes over the wire: RSV1 on a large
message, none on a small one, Python's own zlib on both sides, and a zip bomb closing only its own connection."""

import asyncio
import base64
import os
import struct
import subprocess
import zlib

import pytest
import socketio

from cluster_helpers import cli_path, run_cli
from interop import WAIT, Peer, close_all, connect_all, mint_token, run
from processes import interop_server, read_listening_port

THRESHOLD = 1024


@pytest.fixture(scope="module")
def compression_server(tmp_path_factory):
    yield from interop_server(
        tmp_path_factory,
        "compression-server",
        SOCKET_WS_COMPRESSION="on",
        SOCKET_WS_COMPRESSION_THRESHOLD=str(THRESHOLD),
    )


class RawWebSocket:
    """A WebSocket client on raw asyncio streams that offers permessage-deflate and shows each frame's RSV1."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str, offer: str = "permessage-deflate; client_max_window_bits"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {offer}\r\n\r\n"
            ).encode()
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
        connection = cls(reader, writer)
        connection.head = head
        return connection

    def header(self, name: str):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    async def read_frame(self):
        """(rsv1, opcode, payload) of the next frame, or None at EOF."""
        try:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        except asyncio.IncompleteReadError:
            return None
        return bool(first & 0x40), first & 0x0F, payload

    async def read_message(self):
        """(rsv1, text) of the next text frame, inflated with Python's zlib when RSV1 is set."""
        while True:
            frame = await self.read_frame()
            assert frame is not None, "connection closed"
            rsv1, opcode, payload = frame
            if opcode == 0x1:
                if rsv1:
                    payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
                return rsv1, payload.decode()

    def send(self, payload: bytes, rsv1: bool = False, opcode: int = 0x1):
        mask = os.urandom(4)
        header = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length <= 0xFFFF:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_compressed(self, text: str):
        compressor = zlib.compressobj(wbits=-15)
        data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        self.send(data[:-4], rsv1=True)

    def close(self):
        self.writer.close()


async def raw_socketio(server) -> RawWebSocket:
    """A raw WebSocket connected to the default namespace (Engine.IO open, Socket.IO CONNECT with a token)."""
    connection = await RawWebSocket.connect(server.port, "/socket.io/?EIO=4&transport=websocket")
    assert connection.header("Sec-WebSocket-Extensions") == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )
    _, opened = await connection.read_message()
    assert opened.startswith("0{")
    token = mint_token(server.secret, "raw-compression")
    connection.send(('40{"token":"%s"}' % token).encode())
    _, connected = await connection.read_message()
    assert connected.startswith("40")
    return connection


def test_large_messages_are_compressed_and_small_ones_are_not(compression_server):
    async def scenario():
        connection = await raw_socketio(compression_server)
        try:
            large = "x" * 5000
            connection.send(('42["echo","%s"]' % large).encode())
            rsv1, text = await connection.read_message()
            assert rsv1, "a 5000-byte message came uncompressed"
            assert text == '42["echo","%s"]' % large
            connection.send(b'42["echo","small"]')
            rsv1, text = await connection.read_message()
            assert not rsv1
            assert text == '42["echo","small"]'
            # A message the client compressed (Python's zlib) is inflated by the server and answered.
            structured = "row " * 2000
            connection.send_compressed('42["echo","%s"]' % structured)
            rsv1, text = await connection.read_message()
            assert rsv1
            assert text == '42["echo","%s"]' % structured
        finally:
            connection.close()

    run(scenario())


def test_python_socketio_clients_with_and_without_compression(compression_server):
    async def scenario():
        url, secret = compression_server.url, compression_server.secret
        # aiohttp offers permessage-deflate only when asked (ws_connect's compress=15; its default is 0):
        # python-socketio passes websocket_extra_options on to it.
        compressed = Peer(url, mint_token(secret, "aiohttp-compress"), ["websocket"], name="compressed")
        compressed.sio.eio.websocket_extra_options = {"compress": 15}
        plain = Peer(url, mint_token(secret, "aiohttp-plain"), ["websocket"], name="plain")
        try:
            await connect_all([compressed, plain])
            assert compressed.sio.eio.ws.compress == 15, "the extension was not negotiated"
            assert plain.sio.eio.ws.compress == 0
            large = {"rows": [{"cell": f"A{index}", "value": index} for index in range(500)]}
            for peer in (compressed, plain):
                await peer.sio.emit("echo", large)
                assert await peer.next("echo") == [large]
                await peer.sio.emit("echo", "small")
                assert await peer.next("echo") == ["small"]
        finally:
            await close_all([compressed, plain])

    run(scenario())

    # The threaded client (websocket-client) offers no extension: uncompressed, and it works all the same.
    client = socketio.Client(reconnection=False)
    received = []
    client.on("echo", lambda *args: received.append(list(args)))
    client.connect(
        compression_server.url,
        transports=["websocket"],
        auth={"token": mint_token(compression_server.secret, "websocket-client")},
        wait_timeout=WAIT,
    )
    try:
        payload = "y" * 5000
        client.emit("echo", payload)
        for _ in range(int(WAIT / 0.05)):
            if received:
                break
            client.sleep(0.05)
        assert received == [[payload]]
    finally:
        client.disconnect()


def test_a_zip_bomb_closes_only_its_connection_with_1009(compression_server):
    async def scenario():
        peer = Peer(compression_server.url, mint_token(compression_server.secret, "bystander"), ["websocket"])
        try:
            await connect_all([peer])
            attacker = await raw_socketio(compression_server)
            try:
                # 64 MiB of "0" in about 64 KiB: far past the server's maxPayload (1 MB) once inflated.
                attacker.send_compressed('42["echo","' + "0" * (64 << 20) + '"]')
                while True:
                    frame = await attacker.read_frame()
                    assert frame is not None, "closed without a close frame"
                    rsv1, opcode, payload = frame
                    if opcode == 0x8:
                        assert struct.unpack("!H", payload[:2])[0] == 1009
                        break
            finally:
                attacker.close()
            # The bystander is untouched.
            await peer.sio.emit("echo", "still here")
            assert await peer.next("echo") == ["still here"]
        finally:
            await close_all([peer])

    run(scenario())


def test_serve_turns_compression_on_from_the_environment():
    """`socket-gateway serve` with SOCKET_WS_COMPRESSION=on answers the offer in its 101 and compresses."""
    process = subprocess.Popen(
        [str(cli_path()), "serve", "--allow-anonymous", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, SOCKET_WS_COMPRESSION="on", SOCKET_WS_COMPRESSION_THRESHOLD="16"),
    )
    try:
        port = read_listening_port(process)

        async def scenario():
            connection = await RawWebSocket.connect(port, "/socket.io/?EIO=4&transport=websocket")
            try:
                assert connection.header("Sec-WebSocket-Extensions") == (
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                )
                # The Engine.IO open packet (about 100 bytes) is over the 16-byte threshold: compressed.
                rsv1, opened = await connection.read_message()
                assert rsv1
                assert opened.startswith('0{"sid"')
            finally:
                connection.close()

        run(scenario())
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SOCKET_WS_COMPRESSION": "maybe"}, "SOCKET_WS_COMPRESSION must be 'on' or 'off', got 'maybe'"),
        (
            {"SOCKET_WS_COMPRESSION": "on", "SOCKET_WS_COMPRESSION_THRESHOLD": "-1"},
            "SOCKET_WS_COMPRESSION_THRESHOLD must be a whole number of bytes, 0 or more, got '-1'",
        ),
        (
            {"SOCKET_WS_COMPRESSION_THRESHOLD": "2048"},
            "SOCKET_WS_COMPRESSION_THRESHOLD is set but SOCKET_WS_COMPRESSION is not 'on'",
        ),
    ],
)
def test_serve_refuses_bad_compression_settings(env, message):
    result = run_cli("serve", "--allow-anonymous", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (78, "", f"socket-gateway serve: error: {message}\n")
