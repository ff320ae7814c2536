"""Strict mode: `socket-gateway serve --catalog events.yaml --strict` checks what non-Swift publishers emit.

python-socketio's AsyncRedisManager(write_only=True) publishes to the channel; events that do not match the
catalog are dropped, logged (rate-limited) and counted (/healthz redis.inbound_rejected), the valid ones arrive.
"""

import socketio

from cluster_helpers import REPO, new_channel, redis_url, run_cli, start_serve
from interop import Peer, mint_token, run

CATALOG = REPO / "Tests/EventCodegenTests/Fixtures/golden/sheet-sync/events.yaml"
PROGRESS = {
    "sheet_id": "s1", "job_id": "0b8f9a3e-3f52-4d2c-9a57-1f7c7f0e9d11", "stage": "parsing",
    "processed": 10, "total": 100, "percent": 10.0,
}


def test_strict_server_drops_bad_python_emits_and_delivers_good_ones(tmp_path):
    redis, channel = redis_url(), new_channel()
    serve = start_serve(tmp_path, redis, channel, "--catalog", str(CATALOG), "--strict")

    async def scenario():
        peer = Peer(serve.url, mint_token(serve.secret, "42"), name="user-42")
        manager = socketio.AsyncRedisManager(redis, channel=channel, write_only=True)
        try:
            await peer.connect()
            await manager.emit("sheet:sync:progress", {**PROGRESS, "processed": "ten"}, room="user:42")
            await manager.emit("sheet:sync:progress", {k: v for k, v in PROGRESS.items() if k != "job_id"})
            await manager.emit("sheet:sync:exploded", {"sheet_id": "s1"}, room="user:42")
            # Messages are applied in order: when the good one arrives, the bad ones were handled before it.
            await manager.emit("sheet:sync:progress", PROGRESS, room="user:42")
            assert await peer.next("sheet:sync:progress") == [PROGRESS]
            assert peer.pending("sheet:sync:progress") == []
            assert peer.pending("sheet:sync:exploded") == []
            return manager.host_id
        finally:
            await peer.close()

    try:
        host_id = run(scenario())
        status, health = serve.healthz()
        assert status == 200
        assert health["redis"]["inbound_rejected"] == 3
    finally:
        serve.stop()
    log = serve.log_text()
    # One warning for the first rejection, with event, namespace, origin and reason; the next two within the
    # rate-limit interval are counted, not logged.
    assert log.count("dropped a remote event that does not match the catalog") == 1, log
    warning = next(line for line in log.splitlines() if "dropped a remote event" in line)
    for part in ("sheet:sync:progress", "invalid_payload", host_id, "$.processed"):
        assert part in warning, warning


def test_catalog_without_strict_logs_and_delivers(tmp_path):
    redis, channel = redis_url(), new_channel()
    serve = start_serve(tmp_path, redis, channel, "--catalog", str(CATALOG))

    async def scenario():
        peer = Peer(serve.url, mint_token(serve.secret, "7"), name="user-7")
        manager = socketio.AsyncRedisManager(redis, channel=channel, write_only=True)
        try:
            await peer.connect()
            await manager.emit("legacy:event", {"anything": 1}, room="user:7")
            assert await peer.next("legacy:event") == [{"anything": 1}]
        finally:
            await peer.close()

    try:
        run(scenario())
        assert serve.healthz()[1]["redis"]["inbound_rejected"] == 1
    finally:
        serve.stop()
    assert "delivered a remote event that does not match the catalog (log-only)" in serve.log_text()


def test_strict_needs_a_catalog():
    result = run_cli("serve", "--port", "0", "--allow-anonymous", "--strict")
    assert result.returncode == 64, (result.returncode, result.stderr)
    assert "--strict needs --catalog" in result.stderr
