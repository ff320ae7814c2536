"""python-socketio's side of tools/bench: the deployment people move off.

An AsyncServer on aiohttp + uvloop with AsyncRedisManager (events arrive over Redis from a write-only emitter),
and the same authentication our server does: the CONNECT payload's `token` is an HS256 JWT whose `sub` is the
user id; the client joins the room `user:<sub>`. Nothing else runs on the server.

Usage: pysio_server.py --port N   (environment: REDIS_URL, SOCKET_TOKEN_SECRET, SOCKET_REDIS_CHANNEL)
Prints `LISTENING <port>` on stdout once listening. Stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import os
import signal
import sys

import jwt
import socketio
import uvloop
from aiohttp import web


def build(redis_url: str, channel: str, secret: str) -> web.Application:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, cors_allowed_origins=[])

    @sio.event
    async def connect(sid, environ, auth):
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str):
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized")
        subject = claims.get("sub")
        if not subject:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized")
        await sio.enter_room(sid, f"user:{subject}")

    app = web.Application()
    sio.attach(app)
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL")
    secret = os.environ.get("SOCKET_TOKEN_SECRET")
    if not redis_url or not secret:
        sys.exit("pysio_server.py: set REDIS_URL and SOCKET_TOKEN_SECRET")
    app = build(redis_url, os.environ.get("SOCKET_REDIS_CHANNEL", "socketio"), secret)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main())
