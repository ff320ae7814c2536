import Foundation
import Logging
import NIOCore
import SocketGatewayCore
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

/// A real python-socketio server (AsyncServer + AsyncRedisManager) with a real python-socketio client in it;
/// the client prints every event it receives as one JSON line.
private let pythonPeer = #"""
    import asyncio, base64, json, sys
    import redis.asyncio as aioredis
    import socketio
    from aiohttp import web

    \#(PythonPeer.plainFunction)

    async def main():
        url, channel = sys.argv[1], sys.argv[2]
        sio = socketio.AsyncServer(client_manager=socketio.AsyncRedisManager(url, channel=channel), async_mode="aiohttp")
        app = web.Application()
        sio.attach(app)

        @sio.event
        async def connect(sid, environ, auth):
            await sio.enter_room(sid, "room1")

        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client = socketio.AsyncClient()

        @client.on("*")
        async def any_event(event, *args):
            print(json.dumps({"event": event, "args": plain(list(args))}), flush=True)

        await client.connect(f"http://127.0.0.1:{port}", wait_timeout=10)
        probe = aioredis.Redis.from_url(url)
        for _ in range(200):
            counts = await probe.pubsub_numsub(channel)
            if counts and counts[0][1] >= 1:
                break
            await asyncio.sleep(0.05)
        print(json.dumps({"ready": client.get_sid()}), flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """#

@Suite(.serialized) struct PythonInteropTests {
    @Test func aPythonSocketIOServerDeliversWorkerEmitsToItsClient() async throws {
        let python = try await PythonPeer.interpreter(importing: ["socketio", "aiohttp", "redis"])
        let redis = try await RedisServerProcess.start()
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("socketgateway-peer-\(UUID()).py")
        try pythonPeer.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, redis.urlString, "events"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let lines = ProcessLines(output)
        try process.run()
        defer {
            lines.stop()
            // SIGKILL: a child of the test process inherits its blocked signals, so SIGTERM may never arrive.
            // Foundation reaps it; waiting here (`waitUntilExit`) would hold a thread of the cooperative pool.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        guard await lines.wait(for: 1, from: process) else {
            let stderr = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            Issue.record("the python-socketio peer did not start: \(stderr.suffix(2000))")
            return
        }
        let ready = try JSONValue.parse(lines.lines[0])
        guard let clientSID = ready["ready"]?.stringValue else {
            Issue.record("unexpected first line: \(ready)")
            return
        }

        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: "events",
            emitTimeout: .seconds(10),
            logger: Logger(label: "test")
        )
        #expect(
            await worker.emitToRoom("room1", event: "greeting", data: ["text": "héllo ✓ 😀", "n": 1.5]).outcome
                == .published
        )
        #expect(
            await worker.emitToRoom("room1", event: "skipped", data: 0, excluding: [clientSID]).outcome == .published
        )
        #expect(
            await worker.emit(
                "blob",
                arguments: [
                    .binary(ByteBuffer(bytes: [0, 1, 254, 255])), ["nested": .binary(ByteBuffer(string: "xyz"))],
                ],
                to: .room(clientSID),
                options: .init()
            ).outcome == .published
        )
        #expect(await worker.broadcast(event: "done", data: nil).outcome == .published)
        #expect(await lines.wait(for: 4, from: process))
        let received = Array(lines.lines.dropFirst()).map { try? JSONValue.parse($0) }
        #expect(
            received == [
                ["event": "greeting", "args": [["text": "héllo ✓ 😀", "n": 1.5]]],
                ["event": "blob", "args": [["$bytes": "AAH+/w=="], ["nested": ["$bytes": "eHl6"]]]],
                // python-socketio unwraps a one-element `data` list, and an emit of None has no arguments.
                ["event": "done", "args": []],
            ]
        )
        await worker.shutdown()
        await redis.stop()
    }
}
