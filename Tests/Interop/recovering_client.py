"""A small Socket.IO client that recovers its connection state the way socket.io-client 4.6+ does, for the
connection state recovery tests (python-socketio's client has no recovery).

What it copies from socket.io-client's documented behaviour (packages/socket.io-client/lib/socket.ts):
- it keeps the `pid` of the server's CONNECT reply (`{"sid", "pid"}`), and, while it has one, the last argument of
  every event it receives when that argument is a string: the offset of the last packet it processed;
- when it connects again it adds `{pid, offset}` to its auth payload;
- `recovered` is true when the reply carries the same pid.
Events are recorded without the offset argument. Both transports, on aiohttp (WebSocket or long-polling); "losing"
the connection drops the TCP connection (WebSocket) or sends an Engine.IO close packet without a Socket.IO
DISCONNECT (long-polling: the server sees the transport go, not the client leave). Every wait is bounded.
"""

import asyncio
import json

import aiohttp

PATH = "/socket.io/"


class RecoveringClient:
    def __init__(self, url: str, token: str, transport: str, timeout: float = 10.0, namespace: str = "/"):
        self.url = url
        self.token = token
        self.transport = transport
        self.timeout = timeout
        # Socket.IO packets name a namespace other than "/" after their type: `42/mw,[…]`.
        self.namespace_prefix = "" if namespace == "/" else namespace + ","
        self.connect_error = None  # the CONNECT_ERROR payload of the last connect, if refused
        self.pid = None
        self.last_offset = None
        self.sid = None
        self.recovered = False
        self.events = []  # (event, args without the offset), in arrival order
        self.acks = {}
        self._next_ack = 0
        self._new_event = asyncio.Event()
        self._http = None
        self._ws = None
        self._polling_url = None
        self._reader = None

    # Connecting and losing the connection

    async def connect(self):
        """Engine.IO handshake, then a Socket.IO CONNECT with the token (and pid/offset once it has a pid)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.sid = None
        base = self.url.replace("http", "ws", 1) if self.transport == "websocket" else self.url
        if self.transport == "websocket":
            self._ws = await self._http.ws_connect(f"{base}{PATH}?EIO=4&transport=websocket", autoping=False)
            opened = await self._ws.receive_str(timeout=self.timeout)
            assert opened.startswith("0"), opened
        else:
            async with self._http.get(f"{self.url}{PATH}?EIO=4&transport=polling") as response:
                opened = await response.text()
            assert opened.startswith("0"), opened
            self._polling_url = f"{self.url}{PATH}?EIO=4&transport=polling&sid={json.loads(opened[1:])['sid']}"
        auth = {"token": self.token}
        if self.pid is not None:
            # socket.io-client: Object.assign({pid, offset}, auth); an undefined offset is left out by JSON.
            auth = {"pid": self.pid, **({"offset": self.last_offset} if self.last_offset else {}), **auth}
        self.connect_error = None
        await self._send("40" + self.namespace_prefix + json.dumps(auth))
        self._reader = asyncio.ensure_future(self._read_loop())
        for _ in range(int(self.timeout / 0.02)):
            if self.sid is not None:
                return
            if self.connect_error is not None:
                return
            if self._reader.done():
                self._reader.result()  # raises what ended it
                raise AssertionError("the connection ended before the CONNECT reply")
            await asyncio.sleep(0.02)
        raise AssertionError("no CONNECT reply in time")

    async def lose_connection(self):
        """The transport goes away without a Socket.IO DISCONNECT (a tunnel, a Wi-Fi switch)."""
        if self.transport == "websocket":
            # No close frame: the TCP connection is dropped.
            self._ws._response.connection.transport.abort()
        else:
            await self._post("1")
        await self._stop_reader()

    async def close(self):
        await self._stop_reader()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _stop_reader(self):
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
            self._reader = None

    # Sending

    async def emit(self, event: str, *args):
        await self._send("42" + self.namespace_prefix + json.dumps([event, *args]))

    async def call(self, event: str, *args):
        """Emits with an ack request; returns the ack's arguments."""
        ack_id = self._next_ack
        self._next_ack += 1
        await self._send(f"42{self.namespace_prefix}{ack_id}" + json.dumps([event, *args]))
        for _ in range(int(self.timeout / 0.02)):
            if ack_id in self.acks:
                return self.acks.pop(ack_id)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no ack for {event} in time")

    async def _send(self, text: str):
        if self.transport == "websocket":
            await self._ws.send_str(text)
        else:
            await self._post(text)

    async def _post(self, text: str):
        async with self._http.post(self._polling_url, data=text.encode()) as response:
            await response.read()
            assert response.status == 200, response.status

    # Receiving

    async def wait_for_events(self, count: int, ignoring=("probe",)):
        """Waits (bounded) until `count` events (other than `ignoring`) were received in all; returns them."""
        for _ in range(int(self.timeout / 0.02)):
            events = [event for event in self.events if event[0] not in ignoring]
            if len(events) >= count:
                return events
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} events, got {self.events}")

    async def _read_loop(self):
        while True:
            if self.transport == "websocket":
                message = await self._ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                packets = [message.data]
            else:
                async with self._http.get(self._polling_url) as response:
                    body = await response.text()
                    if response.status != 200:
                        return
                packets = body.split("\x1e")
            for packet in packets:
                await self._handle(packet)

    async def _handle(self, packet: str):
        if packet == "2":
            await self._send("3")
            return
        if not packet.startswith("4") or len(packet) < 2:
            return
        kind, body = packet[:2], packet[2:]
        if self.namespace_prefix:
            if not body.startswith(self.namespace_prefix):
                return  # another namespace's packet
            body = body[len(self.namespace_prefix) :]
        packet = kind + body
        if packet.startswith("44"):
            self.connect_error = json.loads(packet[2:])
        elif packet.startswith("40"):
            reply = json.loads(packet[2:])
            self.recovered = self.pid is not None and reply.get("pid") == self.pid
            self.pid = reply.get("pid")
            self.sid = reply["sid"]
        elif packet.startswith("42"):
            payload = json.loads(packet[2:])
            if self.pid is not None and len(payload) > 1 and isinstance(payload[-1], str):
                self.last_offset = payload[-1]
                payload = payload[:-1]
            self.events.append((payload[0], payload[1:]))
        elif packet.startswith("43"):
            body = packet[2:]
            split = body.index("[")
            self.acks[int(body[:split])] = json.loads(body[split:])
