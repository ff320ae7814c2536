"""python-socketio's write-only emitter at full speed: the publish-rate figure of tools/bench's python column.

Usage: pysio_emit.py --seconds 5 --tasks 64 --payload-bytes 64   (environment: REDIS_URL)
Emits to a room nobody is in through AsyncRedisManager(write_only=True), as an application's worker would,
and prints one line `JSON {"emits_per_s": …, "tool_cpu": …}`.
"""

import argparse
import asyncio
import json
import os
import resource
import time

import socketio
import uvloop


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--payload-bytes", type=int, default=64)
    options = parser.parse_args()
    manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"], write_only=True)
    pad = "x" * options.payload_bytes
    await manager.emit("tick", {"t": 0, "seq": 0, "pad": pad}, room="bench-nobody")  # connect
    sent = 0
    deadline = time.monotonic() + options.seconds

    async def lane() -> None:
        nonlocal sent
        while time.monotonic() < deadline:
            payload = {"t": time.monotonic_ns() // 1000, "seq": sent, "pad": pad}
            await manager.emit("tick", payload, room="bench-nobody")
            sent += 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(options.tasks)))
    elapsed = time.monotonic() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / elapsed
    print("JSON " + json.dumps({"emits_per_s": sent / elapsed, "tool_cpu": cpu}), flush=True)


if __name__ == "__main__":
    uvloop.run(main())
