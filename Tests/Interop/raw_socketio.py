"""A minimal Socket.IO-over-WebSocket client written by hand on asyncio streams, for volume: connect/disconnect
cycles by the thousand and event counting by the million, far cheaper than python-socketio per connection.

Only what the fault tests and tools/reliability need: the HTTP upgrade, Engine.IO v4 open/ping/pong, a Socket.IO
CONNECT to "/" with `auth: {token}`, event counting, and a clean (close frame) or abrupt (TCP close) disconnect;
plus a long-polling cycle on aiohttp (handshake, CONNECT, Engine.IO close).
Every read is bounded by a timeout. No pytest import: tools/reliability uses it too.
"""

import asyncio
import base64
import json
import os
import struct

import aiohttp

SOCKET_IO_PATH = "/socket.io/"


class RawProtocolError(Exception):
    """The server answered something this client did not expect."""


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (clients must mask)."""
    length = len(payload)
    header = bytearray([0x80 | opcode])
    if length < 126:
        header.append(0x80 | length)
    elif length < 65536:
        header.append(0x80 | 126)
        header += struct.pack("!H", length)
    else:
        header.append(0x80 | 127)
        header += struct.pack("!Q", length)
    mask = os.urandom(4)
    header += mask
    if length == 0:
        return bytes(header)
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return bytes(header) + masked


PONG = None  # filled lazily: a masked "3" text frame


class RawSocket:
    """One connected Socket.IO client on the default namespace."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.sid = None
        self.events = 0  # Socket.IO EVENT packets counted by pump()
        self.closed_by_server = False

    @classmethod
    async def connect(cls, host: str, port: int, token, path: str = SOCKET_IO_PATH, timeout: float = 10.0):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        socket = cls(reader, writer)
        try:
            await asyncio.wait_for(socket._handshake(host, port, token, path), timeout)
        except BaseException:
            socket.abort()
            raise
        return socket

    async def _handshake(self, host, port, token, path):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RawProtocolError(f"no upgrade: {head[:200]!r}")
        opcode, payload = await self.read_frame()
        if opcode != 1 or not payload.startswith(b"0"):
            raise RawProtocolError(f"expected an Engine.IO open packet, got {opcode} {payload[:200]!r}")
        auth = "" if token is None else json.dumps({"token": token})
        self.writer.write(masked_frame(1, ("40" + auth).encode()))
        for _ in range(10):  # a ping may come first
            opcode, payload = await self.read_frame()
            if opcode == 1 and payload == b"2":
                self.writer.write(masked_frame(1, b"3"))
                continue
            if opcode == 1 and payload.startswith(b"40"):
                self.sid = json.loads(payload[2:]).get("sid")
                return
            raise RawProtocolError(f"expected a Socket.IO CONNECT answer, got {opcode} {payload[:200]!r}")
        raise RawProtocolError("no Socket.IO CONNECT answer after 10 frames")

    async def read_frame(self) -> tuple:
        """(opcode, payload) of the next server frame (servers do not mask; fragments are not expected here)."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(length) if length else b""
        return first & 0x0F, payload

    async def close(self, clean: bool = True, timeout: float = 5.0):
        """Clean: a WebSocket close frame, then waits (bounded) for the server's close or EOF. Abrupt: TCP close."""
        if clean and not self.writer.is_closing():
            try:
                self.writer.write(masked_frame(8, struct.pack("!H", 1000)))
                await asyncio.wait_for(self._until_close(), timeout)
            except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
        self.abort()

    async def _until_close(self):
        for _ in range(1000):
            opcode, _ = await self.read_frame()
            if opcode == 8:
                return

    def abort(self):
        self.writer.close()

    async def pump(self, chunk: int = 1 << 16):
        """Reads until EOF, counting Socket.IO EVENT packets (`42...`) in `events` and answering pings.
        Frame parsing is inline for speed (a million events through Python)."""
        global PONG
        if PONG is None:
            PONG = masked_frame(1, b"3")
        buffer = bytearray()
        reader = self.reader
        unpack = struct.unpack_from
        while True:
            data = await reader.read(chunk)
            if not data:
                return
            buffer += data
            position = 0
            end = len(buffer)
            while end - position >= 2:
                first = buffer[position]
                length = buffer[position + 1] & 0x7F
                start = position + 2
                if length == 126:
                    if end - position < 4:
                        break
                    (length,) = unpack("!H", buffer, start)
                    start += 2
                elif length == 127:
                    if end - position < 10:
                        break
                    (length,) = unpack("!Q", buffer, start)
                    start += 8
                if end - start < length:
                    break
                opcode = first & 0x0F
                if opcode == 1 and length >= 2 and buffer[start] == 0x34 and buffer[start + 1] == 0x32:
                    self.events += 1
                elif opcode == 1 and length == 1 and buffer[start] == 0x32:
                    self.writer.write(PONG)
                elif opcode == 8:
                    self.closed_by_server = True
                    return
                position = start + length
            del buffer[:position]


async def connect_cycle(host: str, port: int, token, clean: bool, timeout: float = 10.0):
    """One full cycle: connect, Socket.IO CONNECT, disconnect (clean or abrupt)."""
    socket = await RawSocket.connect(host, port, token, timeout=timeout)
    await socket.close(clean=clean, timeout=timeout)


async def polling_cycle(session, host: str, port: int, token, timeout: float = 10.0):
    """One long-polling cycle with aiohttp: handshake GET, CONNECT by POST, GET its answer, POST an Engine.IO close."""
    base = f"http://{host}:{port}{SOCKET_IO_PATH}?EIO=4&transport=polling"
    limit = aiohttp.ClientTimeout(total=timeout)
    async with session.get(base, timeout=limit) as response:
        opened = await response.text()
    if response.status != 200 or not opened.startswith("0"):
        raise RawProtocolError(f"polling handshake answered {response.status} {opened[:200]!r}")
    url = base + "&sid=" + json.loads(opened[1:])["sid"]
    auth = "" if token is None else json.dumps({"token": token})
    async with session.post(url, data="40" + auth, timeout=limit) as response:
        await response.read()
    async with session.get(url, timeout=limit) as response:
        answer = await response.text()
    if not answer.startswith("40"):
        raise RawProtocolError(f"expected a Socket.IO CONNECT answer, got {answer[:200]!r}")
    async with session.post(url, data="1", timeout=limit) as response:
        await response.read()


async def connect_cycles(host: str, port: int, tokens: list, count: int, concurrency: int = 16,
                         on_progress=None, progress_every: int = 0, timeout: float = 10.0,
                         polling_every: int = 10) -> dict:
    """`count` cycles over `concurrency` parallel lanes: WebSocket cycles alternating clean and abrupt
    disconnects, and every `polling_every`-th cycle (0: none) a long-polling one ending with an Engine.IO close.
    Returns {"done": n, "failed": n, "polling": n, "errors": [first few]}. `on_progress(done)` is awaited every
    `progress_every` cycles (from one lane at a time)."""
    state = {"next": 0, "done": 0, "failed": 0, "polling": 0, "errors": []}
    progress_lock = asyncio.Lock()
    session = aiohttp.ClientSession() if polling_every else None

    async def lane():
        while state["next"] < count:
            index = state["next"]
            state["next"] += 1
            token = tokens[index % len(tokens)]
            try:
                if polling_every and index % polling_every == polling_every - 1:
                    await polling_cycle(session, host, port, token, timeout=timeout)
                    state["polling"] += 1
                else:
                    await connect_cycle(host, port, token, clean=index % 2 == 0, timeout=timeout)
                state["done"] += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RawProtocolError, ValueError,
                    aiohttp.ClientError) as error:
                state["failed"] += 1
                if len(state["errors"]) < 5:
                    state["errors"].append(repr(error))
            finished = state["done"] + state["failed"]
            if on_progress and progress_every and finished % progress_every == 0:
                async with progress_lock:
                    await on_progress(finished)

    try:
        await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, count)))))
    finally:
        if session is not None:
            await session.close()
    return state
