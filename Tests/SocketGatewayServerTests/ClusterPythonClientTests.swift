import Foundation
import Logging
import NIOCore
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// Two python-socketio clients (users alice and bob) connected to the server at argv[1] with the tokens argv[2]
/// and argv[3]; every event is printed as one JSON line `{"who":…,"event":…,"args":[…]}` (bytes as {"$bytes"}).
private let pythonClients = #"""
    import asyncio, base64, json, sys
    import socketio

    \#(PythonPeer.plainFunction)

    async def main():
        url = sys.argv[1]
        clients = {}
        for who, token in (("alice", sys.argv[2]), ("bob", sys.argv[3])):
            client = socketio.AsyncClient(reconnection=False)
            def handler(event, *args, who=who):
                print(json.dumps({"who": who, "event": event, "args": plain(list(args))}), flush=True)
            client.on("*", handler)
            # A generous wait for the CONNECT answer: this runs beside the whole parallel Swift suite on 2 cores.
            await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
            clients[who] = client
        print(json.dumps({"ready": {who: c.get_sid() for who, c in clients.items()}}), flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """#

/// `WorkerSocketGateway` (from Swift) → a clustered Swift server → python-socketio clients.
@Suite(.serialized) struct ClusterPythonClientTests {
    @Test func workerEmitsReachPythonClientsOfAClusteredSwiftServer() async throws {
        let python = try await PythonPeer.interpreter(importing: ["socketio", "aiohttp"])
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-py-\(UUID().uuidString.prefix(8))"
        let secret = "cluster-python-secret-0123456789abcdef"
        var logger = Logger(label: "cluster-python-test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 2,
                redis: .init(url: redis.urlString, channel: channel),
                tokenSecret: secret
            ),
            logger: logger
        )
        try await server.start()
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: logger
        )
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("socketgateway-clients-\(UUID()).py")
        try pythonClients.write(to: script, atomically: true, encoding: .utf8)
        let process = Process()
        defer {
            try? FileManager.default.removeItem(at: script)
            // SIGKILL: a child of the test process inherits its blocked signals, so SIGTERM may never arrive.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        func token(_ user: String) async throws -> String {
            try await TestTokens.hs256(
                ["sub": .string(user), "exp": .int(Int64(Date().timeIntervalSince1970) + 600)],
                secret: secret
            )
        }
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            script.path, "http://127.0.0.1:\(try #require(server.localPort))", try await token("alice"),
            try await token("bob"),
        ]
        let output = Pipe()
        process.standardOutput = output
        // The clients' errors go to a file, shown if they do not connect.
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent(
            "socketgateway-clients-\(UUID()).err"
        )
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errors) }
        process.standardError = try FileHandle(forWritingTo: errors)
        let lines = ProcessLines(output)
        try process.run()
        do {
            let connected = await lines.wait(for: 1, from: process)
            let stderr = String(decoding: (try? Data(contentsOf: errors)) ?? Data(), as: UTF8.self)
            try #require(connected, "the python-socketio clients did not connect: \(stderr.suffix(2000))")
            let ready = try JSONValue.parse(ByteBuffer(string: lines.lines[0]))
            let alice = try #require(ready["ready"]?["alice"]?.stringValue)
            let bob = try #require(ready["ready"]?["bob"]?.stringValue)
            #expect(await server.gateway.joinRoom(bob, room: "team").outcome == .delivered)

            #expect(await worker.emitToUser("alice", event: "to-user", data: ["n": 1]).outcome == .published)
            #expect(await worker.emitToRoom("team", event: "to-room", data: "t").outcome == .published)
            #expect(
                await worker.broadcast(event: "all-but-alice", data: true, excluding: [alice]).outcome == .published
            )
            let file: JSONValue = ["name": "b.bin", "data": .binary(ByteBuffer(bytes: [0, 1, 254, 255]))]
            #expect(
                await worker.emit("blob", arguments: [file], to: .user("bob"), options: .init()).outcome == .published
            )
            #expect(await worker.broadcast(event: "done", data: nil).outcome == .published)
            #expect(await lines.wait(for: 7, from: process))
            let received = Array(lines.lines.dropFirst()).compactMap {
                try? JSONValue.parse(ByteBuffer(string: $0))
            }
            let forAlice = received.filter { $0["who"] == "alice" }
            let forBob = received.filter { $0["who"] == "bob" }
            #expect(
                forAlice == [
                    ["who": "alice", "event": "to-user", "args": [["n": 1]]],
                    ["who": "alice", "event": "done", "args": [nil]],
                ]
            )
            #expect(
                forBob == [
                    ["who": "bob", "event": "to-room", "args": ["t"]],
                    ["who": "bob", "event": "all-but-alice", "args": [true]],
                    ["who": "bob", "event": "blob", "args": [["name": "b.bin", "data": ["$bytes": "AAH+/w=="]]]],
                    ["who": "bob", "event": "done", "args": [nil]],
                ]
            )
        } catch {
            lines.stop()
            await worker.shutdown(timeout: .seconds(1))
            try? await server.shutdown()
            await redis.stop()
            throw error
        }
        lines.stop()
        await worker.shutdown(timeout: .seconds(1))
        try await server.shutdown()
        await redis.stop()
    }
}
