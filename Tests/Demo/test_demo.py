"""tools/demo end to end: syncs asked for through the HTTP API and the typed client event sheet:sync:request, followed
with python-socketio clients, then Ctrl-C.

alice listens on server A, bob on server B; alice's sync is requested through server B. The worker's events reach
alice (through Redis, on the other server) and nobody else, with the values the worker logs; stopping tools/demo
leaves no process behind.
"""

import asyncio
import signal
import time
import uuid

import socketio

from conftest import alive, http, token_for

WAIT = 20.0  # seconds any expected event may take on a small, busy machine
SYNC_EVENTS = ("sheet:sync:started", "sheet:sync:progress", "sheet:sync:completed", "sheet:sync:failed")


class Listener:
    """A python-socketio client that records every sheet:sync:* event it gets."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.token = token
        self.events: list[tuple[str, dict]] = []
        self.changed = asyncio.Event()
        self.client = socketio.AsyncClient(reconnection=False)
        for name in SYNC_EVENTS:
            self.client.on(name, self._recorder(name))

    def _recorder(self, name):
        async def record(payload):
            self.events.append((name, payload))
            self.changed.set()

        return record

    async def __aenter__(self):
        await self.client.connect(self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=WAIT)
        return self

    async def __aexit__(self, *exc):
        await self.client.disconnect()

    async def until(self, event: str, job_id: str) -> dict:
        deadline = time.monotonic() + WAIT
        while True:
            for name, payload in self.events:
                if name == event and payload["job_id"] == job_id:
                    return payload
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event} for job {job_id} within {WAIT} s; got {self.events}"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def sheets(server: str) -> dict[str, dict]:
    status, body = http("GET", f"{server}/api/sheets")
    assert status == 200
    return {sheet["id"]: sheet for sheet in body}


def test_sync_reaches_the_user_on_the_other_server_and_nobody_else(demo):
    alice_token = token_for(demo.server_a, "alice")
    bob_token = token_for(demo.server_b, "bob")
    expected_rows = sheets(demo.server_a)["customers"]["rows"]
    log_start = len(demo.lines)

    async def scenario():
        async with Listener(demo.server_a, alice_token) as alice, Listener(demo.server_b, bob_token) as bob:
            # alice asks server B; she listens on server A.
            status, accepted = http("POST", f"{demo.server_b}/api/sheets/customers/sync", token=alice_token)
            assert status == 202, accepted
            assert accepted["user"] == "alice" and accepted["queued_by"] == "server-B"
            job = accepted["job_id"]
            completed = await alice.until("sheet:sync:completed", job)
            # bob's server got the same pub/sub messages; give it the time it took alice's to arrive twice over.
            await asyncio.sleep(1.0)
            return job, completed, list(alice.events), list(bob.events)

    job, completed, alice_events, bob_events = asyncio.run(asyncio.wait_for(scenario(), 60))

    assert bob_events == [], f"bob received alice's events: {bob_events}"
    names = [name for name, payload in alice_events if payload["job_id"] == job]
    assert names[0] == "sheet:sync:started" and names[-1] == "sheet:sync:completed", names
    progress = [payload for name, payload in alice_events if name == "sheet:sync:progress" and payload["job_id"] == job]
    assert len(progress) >= 3
    percents = [payload["percent"] for payload in progress]
    assert percents == sorted(percents) and 0 < percents[0] and percents[-1] < 100
    assert progress[-1]["processed"] == expected_rows and progress[-1]["total"] == expected_rows
    assert completed["rows"] == expected_rows and completed["sheet_id"] == "customers"
    assert [warning["row"] for warning in completed["warnings"]] == [212, 3077]

    # The live log names the worker, the event, the user and how many servers got each emit (both of them).
    line = demo.wait_for_line(r"(worker-\d)\s+sheet:sync:completed → user:alice \[3816 rows.*published to (\d) servers", 10, log_start)
    assert line.group(2) == "2"
    taken = demo.wait_for_line(rf"{line.group(1)}\s+took job {job[:8]}: sync customers for alice \(queued by server-B\)", 5, log_start)
    assert taken
    demo.wait_for_line(rf"server-B\s+alice asked to sync customers: job {job[:8]} queued", 5, log_start)


def test_a_failing_sheet_reports_a_typed_error(demo):
    token = token_for(demo.server_a, "carol")

    async def scenario():
        async with Listener(demo.server_a, token) as carol:
            status, accepted = http("POST", f"{demo.server_a}/api/sheets/legacy-import/sync", token=token)
            assert status == 202, accepted
            return await carol.until("sheet:sync:failed", accepted["job_id"]), carol.events

    failed, events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert failed["error"]["code"] == "invalid_data"
    assert failed["error"]["retryable"] is False
    assert "row 118" in failed["error"]["message"]
    assert not any(name == "sheet:sync:completed" for name, _ in events)


def test_the_api_refuses_bad_requests_with_reasons(demo):
    status, body = http("POST", f"{demo.server_a}/api/sheets/customers/sync")
    assert status == 401 and "Bearer" in body["error"]
    status, body = http("POST", f"{demo.server_a}/api/sheets/customers/sync", token="not.a.jwt")
    assert status == 401 and "JWT" in body["error"]
    token = token_for(demo.server_a, "dave")
    status, body = http("POST", f"{demo.server_a}/api/sheets/no-such-sheet/sync", token=token)
    assert status == 404 and "no sheet" in body["error"]
    status, body = http("POST", f"{demo.server_a}/api/token", {"user": "not a valid id!"})
    assert status == 400 and "user" in body["error"]
    status, body = http("POST", f"{demo.server_a}/api/token", "not an object")
    assert status == 400


def test_the_typed_request_acks_the_job_id_of_the_events_that_follow(demo):
    token = token_for(demo.server_b, "erin")
    expected_rows = sheets(demo.server_b)["inventory"]["rows"]
    log_start = len(demo.lines)

    async def scenario():
        async with Listener(demo.server_b, token) as erin:
            ack = await erin.client.call("sheet:sync:request", {"sheet_id": "inventory"}, timeout=WAIT)
            completed = await erin.until("sheet:sync:completed", ack["job_id"])
            return ack, completed, list(erin.events)

    ack, completed, events = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert ack == {"job_id": ack["job_id"], "sheet_id": "inventory", "queued_by": "server-B"}, ack
    job = ack["job_id"]
    assert str(uuid.UUID(job)) == job, f"job_id is not a lowercase UUID: {job}"
    names = [name for name, payload in events if payload["job_id"] == job]
    assert names[0] == "sheet:sync:started" and names[-1] == "sheet:sync:completed", names
    assert completed["rows"] == expected_rows
    demo.wait_for_line(rf"server-B\s+erin asked to sync inventory \(sheet:sync:request\): job {job[:8]} queued", 5, log_start)


def test_the_typed_request_refuses_what_the_catalog_or_the_server_does_not_accept(demo):
    token = token_for(demo.server_a, "frank")

    async def scenario():
        async with Listener(demo.server_a, token) as frank:
            call = frank.client.call
            wrong_type = await call("sheet:sync:request", {"sheet_id": 42}, timeout=WAIT)
            missing = await call("sheet:sync:request", {"sheet": "customers"}, timeout=WAIT)
            no_sheet = await call("sheet:sync:request", {"sheet_id": "no-such-sheet"}, timeout=WAIT)
            # The connection stays open and a good request after the refusals is served.
            ack = await call("sheet:sync:request", {"sheet_id": "inventory"}, timeout=WAIT)
            await frank.until("sheet:sync:completed", ack["job_id"])
            return wrong_type, missing, no_sheet, ack

    wrong_type, missing, no_sheet, ack = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert wrong_type["error"] == "invalid_payload", wrong_type
    assert wrong_type["event"] == "sheet:sync:request" and wrong_type["path"] == "$.sheet_id", wrong_type
    assert "expected a string" in wrong_type["message"], wrong_type
    assert missing["error"] == "invalid_payload" and "sheet_id" in missing["message"], missing
    assert no_sheet == {"error": "sheet_not_found", "message": "no sheet 'no-such-sheet'; GET /api/sheets lists them"}
    assert ack["sheet_id"] == "inventory" and ack["queued_by"] == "server-A"


def test_the_page_and_its_client_are_served(demo):
    import urllib.request

    with urllib.request.urlopen(f"{demo.server_b}/", timeout=10) as response:
        page = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/app.js">' in page
    with urllib.request.urlopen(f"{demo.server_b}/socketio-client.js", timeout=10) as response:
        client = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/javascript")
    assert "export class SocketIOClient" in client and "emitWithAck(event, ...args)" in client
    with urllib.request.urlopen(f"{demo.server_b}/sync-request.js", timeout=10) as response:
        assert 'socket.emitWithAck("sheet:sync:request"' in response.read().decode()


def test_ctrl_c_stops_everything_it_started(demo):
    started = set(demo.started)
    # redis-server, two servers, two workers at least.
    commands = {}
    for pid in started:
        try:
            commands[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            pass
    assert sum("redis-server" in command for command in commands.values()) == 1, commands
    assert sum("sheet-sync-demo server" in command for command in commands.values()) == 2, commands
    assert sum("sheet-sync-demo worker" in command for command in commands.values()) == 2, commands

    status = demo.stop(signal.SIGINT, to_group=True)  # what a terminal's Ctrl-C does
    assert status == 130, f"tools/demo exited with {status}\n{demo.log_tail()}"
    left = [pid for pid in started | {demo.process.pid} if alive(pid)]
    assert left == [], f"processes left behind: {[(pid, commands.get(pid)) for pid in left]}"
    demo.wait_for_line(r"^demo\s+stopped$", 1)
    for name in ("server-A", "server-B", "worker-1", "worker-2"):
        demo.wait_for_line(rf"^{name}\s+stopped", 1)
