"""Helpers for the interop suite: JWT minting and a recording python-socketio client.

Every wait is bounded: `Peer` methods take a timeout (default `WAIT`), and each test runs inside `run()`, which
puts an overall limit on the whole coroutine.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import defaultdict

import socketio

# Seconds any single expected event or ack may take. Generous: the machines running this are small and busy.
WAIT = 10.0
# Seconds a whole test coroutine may take.
TEST_LIMIT = 60.0

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
}


def run(coroutine, limit=TEST_LIMIT):
    """Runs `coroutine` on a fresh event loop, failing with TimeoutError after `limit` seconds."""
    return asyncio.run(asyncio.wait_for(coroutine, limit))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def mint_token(secret: str, user: str, expires_in: float = 300, **claims) -> str:
    """An HS256 JWT with `sub` = user and `exp` = now + expires_in (negative for an expired token)."""
    now = int(time.time())
    payload = {"sub": user, "iat": now, "exp": now + int(expires_in), **claims}
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


class Peer:
    """One python-socketio AsyncClient that records everything the server sends it.

    Events land in per-(namespace, event) queues; `answers` maps an event name to a function whose return
    value becomes the client's ack when the server emits that event with an ack request.
    """

    def __init__(self, url: str, token=None, transports=("websocket",), name: str = "peer", http_session=None):
        """`http_session`: an aiohttp.ClientSession for both transports (e.g. one whose connector trusts a test CA);
        the caller closes it."""
        self.url = url
        self.token = token
        self.transports = list(transports) if transports is not None else None
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http_session)
        self.queues = defaultdict(asyncio.Queue)
        self.received = []  # (namespace, event, args) in arrival order
        self.answers = {}
        self.connect_errors = []
        self.disconnects = asyncio.Queue()

        async def any_event(event, namespace, *args):
            self.received.append((namespace, event, list(args)))
            self.queues[(namespace, event)].put_nowait(list(args))
            answer = self.answers.get(event)
            if answer is None:
                return None
            result = answer(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        async def on_connect_error(namespace, data=None):
            self.connect_errors.append((namespace, data))

        async def on_disconnect(namespace, reason=None):
            self.disconnects.put_nowait((namespace, reason))

        self.sio.on("*", any_event, namespace="*")
        self.sio.on("connect_error", on_connect_error, namespace="*")
        self.sio.on("disconnect", on_disconnect, namespace="*")

    async def connect(self, namespaces=("/",), timeout: float = WAIT):
        auth = {"token": self.token} if self.token is not None else None
        await asyncio.wait_for(
            self.sio.connect(
                self.url,
                auth=auth,
                transports=self.transports,
                namespaces=list(namespaces),
                wait_timeout=timeout,
            ),
            timeout + 2,
        )
        return self

    async def close(self):
        if self.sio.connected or self.sio.eio.state == "connected":
            try:
                await asyncio.wait_for(self.sio.disconnect(), WAIT)
            except Exception:  # teardown of a peer that is already gone must not hide the test's real failure
                pass

    def sid(self, namespace: str = "/") -> str:
        sid = self.sio.get_sid(namespace)
        assert sid, f"{self.name} has no sid in {namespace}"
        return sid

    async def request(self, event: str, *args, namespace: str = "/", timeout: float = WAIT) -> list:
        """Emits `event` with `args` and an ack request; returns the ack's arguments as a list."""
        loop = asyncio.get_running_loop()
        answered = loop.create_future()

        def callback(*ack_args):
            if not answered.done():
                answered.set_result(list(ack_args))

        await self.sio.emit(event, data=tuple(args), namespace=namespace, callback=callback)
        try:
            return await asyncio.wait_for(answered, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: no ack for {event!r} in {namespace} within {timeout}s") from None

    async def next(self, event: str, namespace: str = "/", timeout: float = WAIT) -> list:
        """Waits for the next `event` in `namespace`; returns its arguments."""
        try:
            return await asyncio.wait_for(self.queues[(namespace, event)].get(), timeout)
        except asyncio.TimeoutError:
            seen = [(ns, ev) for ns, ev, _ in self.received]
            raise AssertionError(
                f"{self.name}: no {event!r} in {namespace} within {timeout}s (received so far: {seen})"
            ) from None

    def pending(self, event: str, namespace: str = "/") -> list:
        """Everything already queued for `event` (without waiting)."""
        queue = self.queues[(namespace, event)]
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    async def fence(self, namespace: str = "/", timeout: float = WAIT):
        """Round-trips an `echo` so that anything the server sent this client earlier has arrived."""
        marker = f"fence-{time.monotonic_ns()}"
        await self.sio.emit("echo", data=(marker,), namespace=namespace)
        while True:
            args = await self.next("echo", namespace=namespace, timeout=timeout)
            if args == [marker]:
                return

    async def wait_disconnect(self, timeout: float = WAIT):
        try:
            return await asyncio.wait_for(self.disconnects.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: not disconnected within {timeout}s") from None


async def connect_all(peers, namespaces=("/",)):
    """Connects peers concurrently; returns them."""
    await asyncio.gather(*(peer.connect(namespaces=namespaces) for peer in peers))
    return peers


async def close_all(peers):
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
