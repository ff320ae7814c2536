import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayServer
import Testing

/// The cluster seam is public: an adapter written only against the public API (`ClusterAdapter`,
/// `ClusterOperation`, `SocketGateway.local`, `ClusterHealth.Mode.custom`) links two servers in one process, and
/// emits, room changes, acks and disconnects made on one server reach a real WebSocket client of the other.
@Suite struct CustomClusterAdapterTests {
    /// Links a server to its peer by calling the peer's `gateway.local` directly: the simplest cluster there is.
    /// Cluster requests are answered with fixed replies, as other servers would have answered them.
    final class PairedAdapter: ClusterAdapter {
        private let peer = NIOLockedValueBox<PairedAdapter?>(nil)
        private let gateway = NIOLockedValueBox<SocketGateway?>(nil)
        /// Operations this adapter was handed, in order (what a real adapter would publish).
        let handed = NIOLockedValueBox<[String]>([])
        /// The other servers' answers to every cluster request, by host id.
        let replies: [String: JSONValue]

        init(replies: [String: JSONValue] = [:]) {
            self.replies = replies
        }

        static func pair(_ a: PairedAdapter, _ b: PairedAdapter) {
            a.peer.withLockedValue { $0 = b }
            b.peer.withLockedValue { $0 = a }
        }

        /// The other server's gateway, once it started.
        private var peerGateway: SocketGateway? {
            self.peer.withLockedValue { $0 }?.gateway.withLockedValue { $0 }
        }

        var modeDescription: String { "paired in-process" }

        var health: ClusterHealth {
            var health = ClusterHealth(mode: .custom(name: "paired"))
            health.redisConnected = self.peerGateway != nil
            return health
        }

        func start(gateway: SocketGateway) { self.gateway.withLockedValue { $0 = gateway } }

        func shutdown() async {
            self.gateway.withLockedValue { $0 = nil }
            self.peer.withLockedValue { $0 = nil }
        }

        func emitted(
            _ event: String,
            arguments: [JSONValue],
            to target: EmitTarget,
            options: EmitOptions,
            local: EmitResult
        ) async -> EmitResult {
            self.handed.withLockedValue { $0.append("emit \(event)") }
            guard let peer = self.peerGateway else { return EmitResult(outcome: .failed, reason: "no peer") }
            let remote = await peer.local.emit(event, arguments: arguments, to: target, options: options)
            return EmitResult(outcome: .published, localDeliveries: local.localDeliveries + remote.localDeliveries)
        }

        func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
            self.handed.withLockedValue { $0.append("\(operation)") }
            guard let peer = self.peerGateway?.local else { return EmitResult(outcome: .failed, reason: "no peer") }
            switch operation {
            case .joinRoom(let sid, let room, let namespace) where localMatches == 0:
                return await peer.joinRoom(sid, room: room, namespace: namespace)
            case .leaveRoom(let sid, let room, let namespace) where localMatches == 0:
                return await peer.leaveRoom(sid, room: room, namespace: namespace)
            case .disconnect(let sid, let namespace) where localMatches == 0:
                return await peer.disconnect(sid, namespace: namespace)
            case .closeRoom(let room, let namespace):
                return await peer.closeRoom(room, namespace: namespace)
            default:
                return EmitResult(outcome: .delivered, localDeliveries: localMatches)
            }
        }

        func emitWithAck(
            _ event: String,
            arguments: [JSONValue],
            sid: String,
            namespace: String,
            timeout: Duration
        ) async throws -> [JSONValue]? {
            guard let peer = self.peerGateway?.local else { return nil }
            return try await peer.emitWithAck(
                event,
                arguments: arguments,
                to: sid,
                namespace: namespace,
                timeout: timeout
            )
        }

        func request(_ query: ClusterQuery, timeout: Duration) async throws -> ClusterReplies<JSONValue> {
            ClusterReplies(replies: self.replies, expectedServers: self.replies.count)
        }
    }

    static func server(cluster: PairedAdapter) -> SocketServer {
        var logger = Logger(label: "socket-gateway.custom-cluster-test")
        logger.logLevel = .critical
        return SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: logger,
            cluster: cluster
        )
    }

    @Test func aPublicAdapterCarriesEmitsRoomsAcksAndDisconnectsToTheOtherServer() async throws {
        let adapterA = PairedAdapter()
        let adapterB = PairedAdapter()
        PairedAdapter.pair(adapterA, adapterB)
        let a = Self.server(cluster: adapterA)
        let b = Self.server(cluster: adapterB)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await a.start()
        try await b.start()
        do {
            #expect(a.clusterHealth.mode == .custom(name: "paired"))
            #expect(a.clusterHealth.isHealthy && b.clusterHealth.isHealthy)
            #expect(a.clusterHealth.json["mode"] == "paired")

            let port = try #require(b.localPort)
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await client.send("40")
            let reply = try await client.nextText()
            #expect(reply.hasPrefix("40{\"sid\":\""), "CONNECT reply: \(reply)")
            let sid = String(reply.dropFirst(10).dropLast(2))

            // An emit on A reaches B's client through the adapter; B's local gateway does not call its adapter.
            let result = await a.gateway.emit("hi", arguments: [1], to: .broadcast, options: EmitOptions())
            #expect(result.outcome == .published && result.localDeliveries == 1)
            #expect(try await client.nextText() == #"42["hi",1]"#)
            #expect(adapterB.handed.withLockedValue { $0 }.isEmpty)

            // joinRoom on A for B's client is applied on B, then a room emit on A reaches it.
            let joined = await a.gateway.joinRoom(sid, room: "team", namespace: "/")
            #expect(joined.outcome == .delivered && joined.localDeliveries == 1)
            await a.gateway.emit("team", arguments: ["t1"], to: .room("team"), options: EmitOptions())
            #expect(try await client.nextText() == #"42["team","t1"]"#)

            // An ack asked on A for B's client comes back through the adapter.
            async let answer = a.gateway.emitWithAck("ask", arguments: [7], to: sid, timeout: .seconds(10))
            let asked = try await client.nextText()
            #expect(asked.hasPrefix("42") && asked.hasSuffix(#"["ask",7]"#), "got \(asked)")
            let ackID = asked.dropFirst(2).prefix(while: { $0.isNumber })
            try await client.send("43\(ackID)[\"yes\"]")
            #expect(try await answer == ["yes"])

            // A disconnect on A closes B's client's namespace.
            let disconnected = await a.gateway.disconnect(sid, namespace: "/")
            #expect(disconnected.outcome == .delivered)
            #expect(try await client.nextText() == "41")
            #expect(
                adapterA.handed.withLockedValue { $0 } == [
                    "emit hi", #"joinRoom(sid: "\#(sid)", room: "team", namespace: "/")"#, "emit team",
                    #"disconnect(sid: "\#(sid)", namespace: "/")"#,
                ]
            )
            await client.close()
        } catch {
            try? await a.shutdown()
            try? await b.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        try await a.shutdown()
        try await b.shutdown()
        try await group.shutdownGracefully()
    }

    /// A server's answer to fetchSockets that is not a list of socket summaries (a `null`, as a ping is answered,
    /// or a list holding something else) is an error naming that server, never an empty list: "no sockets there"
    /// would hide that the server's answer could not be read.
    @Test func aFetchSocketsAnswerThatIsNotAListOfSocketsIsAnError() async throws {
        let server = Self.server(
            cluster: PairedAdapter(replies: ["none": [], "null": nil, "number": 1, "list": [1]])
        )
        try await server.start()
        let found = try await server.gateway.fetchSockets()
        // This server's own answer (no socket here), and the one server that answered with an empty list.
        #expect(found.replies.count == 2)
        #expect(found.replies["none"]?.isEmpty == true)
        #expect(
            found.errors == [
                "null": "an answer that cannot be read", "number": "an answer that cannot be read",
                "list": "an answer that cannot be read",
            ]
        )
        #expect(!found.isComplete)
        try await server.shutdown()
    }

    @Test func redisAndAnAdapterTogetherAreRefused() async throws {
        var logger = Logger(label: "socket-gateway.custom-cluster-test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 1,
                redis: SocketServerRedisConfiguration(url: "redis://127.0.0.1:1")
            ).anonymous,
            logger: logger,
            cluster: PairedAdapter()
        )
        let error = await #expect(throws: SocketServerConfigurationError.self) { try await server.start() }
        #expect(error?.variable == "redis")
        try await server.shutdown()
    }

    @Test func clusterTimingsMustBePositive() throws {
        let invalid: [(String, (inout ClusterTimings) -> Void)] = [
            ("remoteAckTimeout", { $0.remoteAckTimeout = .zero }),
            ("connectTimeout", { $0.connectTimeout = .seconds(-1) }),
            ("replyTimeout", { $0.replyTimeout = .zero }),
            ("reconnectDelay", { $0.reconnectDelay = .zero }),
            ("maxReconnectDelay", { $0.maxReconnectDelay = .zero }),
            ("livenessInterval", { $0.livenessInterval = .zero }),
            ("livenessTimeout", { $0.livenessTimeout = .zero }),
            ("signedMessageMaxAge", { $0.signedMessageMaxAge = .zero }),
            ("maxReconnectDelay", { $0.maxReconnectDelay = .milliseconds(50) }),
        ]
        for (name, breakIt) in invalid {
            var timings = ClusterTimings()
            breakIt(&timings)
            let configuration = SocketServerConfiguration(
                redis: SocketServerRedisConfiguration(url: "redis://127.0.0.1", timings: timings)
            )
            let error = #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
            #expect(error?.variable == "redis.timings.\(name)")
        }
        var valid = SocketServerConfiguration(redis: SocketServerRedisConfiguration(url: "redis://127.0.0.1"))
        valid.allowAnonymous = true
        try valid.validate()
        #expect(
            ClusterTimings()
                == ClusterTimings(
                    remoteAckTimeout: .seconds(60),
                    connectTimeout: .seconds(1),
                    replyTimeout: .seconds(5),
                    reconnectDelay: .milliseconds(100),
                    maxReconnectDelay: .seconds(1),
                    livenessInterval: .seconds(1),
                    livenessTimeout: .seconds(1),
                    signedMessageMaxAge: .seconds(60)
                )
        )
    }
}
