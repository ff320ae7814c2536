import Foundation
import Logging
import NIOCore
import NIOPosix
import SheetSyncEvents
import SocketGatewayCore
import SocketGatewayRedisTestKit
import SocketGatewayServer
import Testing

/// Strict mode: events other hosts publish on the Redis channel are checked against the generated SheetSync
/// catalog. Messages are published raw, in python-socketio's format, with redis-cli: a non-Swift publisher.
@Suite(.serialized) struct StrictValidationTests {
    static let jobID = "4f1c2a7e-9b3d-4c8e-a1f0-2d6b8e9c0a11"

    /// python-socketio's `emit` message for a broadcast of `event` with one argument `payload` (raw JSON).
    static func pythonEmit(_ event: String, _ payload: String, namespace: String = "/") -> String {
        #"{"method": "emit", "event": "\#(event)", "data": [\#(payload)], "binary": false, "#
            + #""namespace": "\#(namespace)", "room": null, "skip_sid": null, "callback": null, "#
            + #""host_id": "0b5e6f1d2c3a4b5c6d7e8f9a0b1c2d3e"}"#
    }

    static func progress(processed: String, sheet: String = #""sheet_id": "s1", "#) -> String {
        #"{\#(sheet)"job_id": "\#(jobID)", "stage": "parsing", "processed": \#(processed), "percent": 50.5}"#
    }

    /// What the client receives for a valid `progress(processed:)`.
    static func deliveredProgress(processed: Int) -> String {
        #"42["sheet:sync:progress",{"sheet_id":"s1","job_id":"\#(jobID)","stage":"parsing","#
            + #""processed":\#(processed),"percent":50.5}]"#
    }

    /// Publishes `message` raw with redis-cli, as a non-Swift publisher; one server is subscribed.
    func publish(_ message: String, _ redis: RedisServerProcess, _ channel: String) async throws {
        #expect(try await redis.cli(["PUBLISH", channel, message]) == "1")
    }

    func startServer(
        redis: RedisServerProcess,
        channel: String,
        validation: InboundEventValidation
    ) async throws -> (SocketServer, Int) {
        var logger = Logger(label: "socket-gateway.strict-test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 2,
                redis: SocketServerRedisConfiguration(url: redis.urlString, channel: channel),
                inboundValidation: validation
            ).anonymous,
            logger: logger
        )
        server.namespace("/")
        try await server.start()
        for _ in 0..<500 where server.clusterHealth.redisConnected != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.clusterHealth.redisConnected == true)
        return (server, try #require(server.localPort))
    }

    func connect(port: Int, group: any EventLoopGroup) async throws -> TestWebSocketClient {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        try await client.send("40")
        #expect(try await client.nextText().hasPrefix("40{\"sid\":\""))
        return client
    }

    @Test func strictModeDropsAndCountsMismatchesAndDeliversValidEvents() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-strict-\(UUID().uuidString.prefix(8))"
        let (server, port) = try await self.startServer(
            redis: redis,
            channel: channel,
            validation: .strict(SheetSyncEvent.self)
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let client = try await self.connect(port: port, group: group)
            // Registered once the server answered CONNECT; a valid event is delivered as published.
            try await self.publish(
                Self.pythonEmit("sheet:sync:progress", Self.progress(processed: "10")),
                redis,
                channel
            )
            #expect(try await client.nextText() == Self.deliveredProgress(processed: 10))
            #expect(server.clusterHealth.inboundRejected == 0)

            let invalid = [
                // Wrong type.
                Self.pythonEmit("sheet:sync:progress", Self.progress(processed: #""ten""#)),
                // Missing field.
                Self.pythonEmit("sheet:sync:progress", Self.progress(processed: "10", sheet: "")),
                // Not an enum value.
                Self.pythonEmit(
                    "sheet:sync:progress",
                    Self.progress(processed: "10").replacingOccurrences(of: "parsing", with: "sleeping")
                ),
                // Not in the catalog.
                Self.pythonEmit("sheet:sync:exploded", "{}"),
                // Two arguments.
                Self.pythonEmit("sheet:sync:progress", Self.progress(processed: "1") + ", 2"),
                // A valid stage first, then a duplicate key that browsers and Python read instead (the last wins).
                Self.pythonEmit(
                    "sheet:sync:progress",
                    Self.progress(processed: "10").replacingOccurrences(
                        of: #""stage": "parsing""#,
                        with: #""stage": "parsing", "stage": "<img src=x>""#
                    )
                ),
            ]
            for message in invalid {
                try await self.publish(message, redis, channel)
            }
            // Messages are applied in order: the next valid one arrives, and nothing before it did.
            try await self.publish(
                Self.pythonEmit("sheet:sync:progress", Self.progress(processed: "11")),
                redis,
                channel
            )
            #expect(try await client.nextText() == Self.deliveredProgress(processed: 11))
            #expect(server.clusterHealth.inboundRejected == invalid.count)
            #expect(server.clusterHealth.json.description.contains(#""inbound_rejected":\#(invalid.count)"#))

            // This server's own emits are not checked (they never come back over Redis).
            await server.gateway.broadcast(event: "local", data: 1)
            #expect(try await client.nextText() == #"42["local",1]"#)
            #expect(client.hasNoPendingFrames())
            await client.close()
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func logOnlyModeDeliversMismatchesButCountsThem() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-strict-\(UUID().uuidString.prefix(8))"
        let (server, port) = try await self.startServer(
            redis: redis,
            channel: channel,
            validation: .logOnly(SheetSyncEvent.self)
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let client = try await self.connect(port: port, group: group)
            try await self.publish(Self.pythonEmit("legacy", #""x""#), redis, channel)
            #expect(try await client.nextText() == #"42["legacy","x"]"#)
            #expect(server.clusterHealth.inboundRejected == 1)
            await client.close()
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func generatedCatalogValidatesWithTheTypedDecoder() throws {
        let payload = try JSONValue.parse(ByteBuffer(string: Self.progress(processed: "3")))
        #expect(SheetSyncEvent.validate(event: "sheet:sync:progress", namespace: "/", arguments: [payload]) == nil)
        let wrongNamespace = SheetSyncEvent.validate(
            event: "sheet:sync:progress",
            namespace: "/admin",
            arguments: [payload]
        )
        #expect(wrongNamespace?.code == .wrongNamespace)
        let rejection = CatalogInboundEventValidator<SheetSyncEvent>()
            .rejection(event: "sheet:sync:progress", namespace: "/", arguments: [.string("x")])
        #expect(rejection?.reason == .invalidPayload)
        #expect(rejection?.message.contains("sheet:sync:progress") == true)
        let unknown = CatalogInboundEventValidator<SheetSyncEvent>()
            .rejection(event: "nope", namespace: "/", arguments: [])
        #expect(unknown?.reason == .unknownEvent)
    }
}
