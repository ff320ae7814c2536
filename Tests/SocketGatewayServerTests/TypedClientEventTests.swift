import Foundation
import GeneratedBothWaysFixture
import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@_spi(Generated) import SocketGatewayCore
import SocketGatewayRedisTestKit
import SocketGatewayServer
import Testing

// Conforming types written by hand the way socket-gateway-codegen writes them, so the runtime is tested apart
// from the generator.

/// `test:sync:request` in `/`, answered with `TypedSyncRequestAck`.
struct TypedSyncRequest: SocketClientEvent, Hashable {
    typealias Ack = TypedSyncRequestAck
    static let eventName = "test:sync:request"
    static let namespace = "/"

    var sheetID: String
    var priority: Int?
    var after: UUID?

    init(jsonValue: JSONValue) throws {
        typealias Decoding = GeneratedEventDecoding
        let members = try Decoding.object(jsonValue)
        self.sheetID = try Decoding.required(members, "sheet_id") { try Decoding.string($0) }
        self.priority = try Decoding.optional(members, "priority") { try Decoding.int($0) }
        self.after = try Decoding.optional(members, "after") { try Decoding.uuid($0) }
    }
}

/// The server's answer to `test:sync:request`.
struct TypedSyncRequestAck: SocketPayloadEncodable, Hashable {
    var jobID: String
    var jsonValue: JSONValue { .object([(key: "job_id", value: .string(self.jobID))]) }
}

/// `test:note` in `/`: the catalog declares no ack.
struct TypedNote: SocketClientEvent, Hashable {
    static let eventName = "test:note"
    static let namespace = "/"

    var text: String

    init(jsonValue: JSONValue) throws {
        let members = try GeneratedEventDecoding.object(jsonValue)
        self.text = try GeneratedEventDecoding.required(members, "text") { try GeneratedEventDecoding.string($0) }
    }
}

/// `test:ping`, a server event in `namespace` that the client acknowledges with `TypedPingAck`.
struct TypedPing: SocketAcknowledgedEvent, Hashable {
    typealias Ack = TypedPingAck
    static let eventName = "test:ping"
    static let namespace = "/"

    var nonce: Int
    var jsonValue: JSONValue { .object([(key: "nonce", value: .int(Int64(self.nonce)))]) }
}

/// The same event in `/admin`, to emit on a connection of the wrong namespace.
struct TypedAdminPing: SocketAcknowledgedEvent, Hashable {
    typealias Ack = TypedPingAck
    static let eventName = "test:ping"
    static let namespace = "/admin"

    var jsonValue: JSONValue { .object([]) }
}

/// What the client answers `test:ping` with.
struct TypedPingAck: SocketPayloadDecodable, Hashable {
    var nonce: Int
    var status: String

    init(nonce: Int, status: String) {
        self.nonce = nonce
        self.status = status
    }

    init(jsonValue: JSONValue) throws {
        let members = try GeneratedEventDecoding.object(jsonValue)
        self.nonce = try GeneratedEventDecoding.required(members, "nonce") { try GeneratedEventDecoding.int($0) }
        self.status = try GeneratedEventDecoding.required(members, "status") { try GeneratedEventDecoding.string($0) }
    }
}

/// Typed client→server handlers and typed server→client acks, end to end over real sockets on 127.0.0.1.
@Suite(.serialized) struct TypedClientEventTests {
    struct Harness {
        var port: Int
        var recorder: Recorder
        var group: any EventLoopGroup
        var metrics: TestMetrics
        var logs: NIOLockedValueBox<[CapturingLogHandler.Line]>
        var requests: NIOLockedValueBox<[TypedSyncRequest]>

        /// Refusals counted for `event` in `/`.
        var refused: Int64 {
            let dimensions = [("namespace", "/"), ("event", TypedSyncRequest.eventName)]
            return (try? self.metrics.expectCounter("socketgateway_client_events_refused_total", dimensions))?
                .totalValue ?? 0
        }

        /// The refusal warnings logged so far.
        var refusalWarnings: [CapturingLogHandler.Line] {
            self.logs.withLockedValue { $0.filter { $0.level == .warning && $0.message.contains("refused") } }
        }
    }

    /// Starts a server whose `/` has typed handlers for `test:sync:request` (answers `job-<sheet id>`) and
    /// `test:note` (records), and an untyped `echo`; runs `body`; shuts down.
    func withServer(_ body: (Harness) async throws -> Void) async throws {
        let logs = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "socket-gateway.test") { _ in CapturingLogHandler(lines: logs) }
        let metrics = TestMetrics()
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous,
            authenticator: nil,
            logger: logger,
            httpFallback: nil,
            metricsFactory: metrics
        )
        let recorder = Recorder()
        let requests = NIOLockedValueBox<[TypedSyncRequest]>([])
        let namespace = server.namespace("/")
        namespace.onConnect { recorder.connected($0) }
        namespace.onDisconnect { connection, reason in recorder.disconnected(connection.id, reason) }
        namespace.on(TypedSyncRequest.self) { _, request, ack in
            requests.withLockedValue { $0.append(request) }
            if request.sheetID == "missing" {
                ack.refuse("sheet_not_found", message: "no sheet missing")
            } else {
                ack(TypedSyncRequestAck(jobID: "job-\(request.sheetID)"))
            }
        }
        namespace.on(TypedNote.self) { _, note in
            recorder.record("note \(note.text)")
        }
        namespace.on("echo") { _, arguments, ack in ack?.send(arguments) }
        // A generated type (the both-ways fixture catalog), registered the same way.
        namespace.on(ChatMessageFromClient.self) { _, message, ack in
            recorder.record("chat \(message.room): \(message.text)")
            ack(ChatMessageFromClientAck(messageID: Self.messageID, acceptedAt: Date(timeIntervalSince1970: 0)))
        }
        server.namespace("/admin").onConnect { recorder.connected($0) }
        try await server.whileStarted { port, clients in
            let harness = Harness(
                port: port,
                recorder: recorder,
                group: clients,
                metrics: metrics,
                logs: logs,
                requests: requests
            )
            try await body(harness)
        }
    }

    /// Connects a WebSocket client to `namespace`; returns it and its Socket.IO sid.
    func connect(_ h: Harness, namespace: String = "/") async throws -> (TestWebSocketClient, String) {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: h.port, group: h.group)
        let prefix = namespace == "/" ? "40" : "40\(namespace),"
        try await client.send(prefix)
        let reply = try await client.nextText()
        #expect(reply.hasPrefix(prefix + "{\"sid\":\""), "CONNECT reply: \(reply)")
        return (client, String(reply.dropFirst((prefix + "{\"sid\":\"").count).dropLast(2)))
    }

    // MARK: Client → server

    @Test func aValidPayloadReachesTheHandlerDecodedAndTheTypedAckAnswers() async throws {
        try await self.withServer { h in
            let (client, _) = try await self.connect(h)
            try await client.send(#"421["test:sync:request",{"sheet_id":"s1","priority":3}]"#)
            #expect(try await client.nextText() == #"431[{"job_id":"job-s1"}]"#)
            // An absent optional field decodes as nil; without an ack the handler runs and nothing is sent.
            try await client.send(#"42["test:sync:request",{"sheet_id":"s2"}]"#)
            try await client.send(#"422["echo","after"]"#)
            #expect(try await client.nextText() == #"432["after"]"#)
            let requests = h.requests.withLockedValue { $0 }
            #expect(requests.map(\.sheetID) == ["s1", "s2"])
            #expect(requests.map(\.priority) == [3, nil])
            // A handler's own refusal has the same shape as a payload refusal, and is not counted as one.
            try await client.send(#"423["test:sync:request",{"sheet_id":"missing"}]"#)
            #expect(
                try await client.nextText() == #"433[{"error":"sheet_not_found","message":"no sheet missing"}]"#
            )
            #expect(h.refused == 0)
            await client.close()
        }
    }

    @Test func aPayloadThatDoesNotMatchIsRefusedInTheAckAndNothingElseIsAffected() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(h)
            let (bystander, _) = try await self.connect(h)
            try await client.send(#"427["test:sync:request",{"sheet_id":5}]"#)
            #expect(
                try await client.nextText()
                    == #"437[{"error":"invalid_payload","event":"test:sync:request","path":"$.sheet_id","#
                    + #""message":"test:sync:request: wrong type at $.sheet_id: expected a string, found a number"}]"#
            )
            try await client.send(#"428["test:sync:request",{"sheet_id":"s1","priority":"high"}]"#)
            #expect(
                try await client.nextText()
                    .hasPrefix(#"438[{"error":"invalid_payload","event":"test:sync:request","path":"$.priority","#)
            )
            // The handler never ran, the refusals were counted, and the connection is still open and served.
            #expect(h.requests.withLockedValue { $0.isEmpty })
            #expect(h.refused == 2)
            try await client.send(#"429["test:sync:request",{"sheet_id":"s3"}]"#)
            #expect(try await client.nextText() == #"439[{"job_id":"job-s3"}]"#)
            #expect(h.recorder.disconnectReason(sid) == nil)
            // The other client saw nothing and is served as before.
            #expect(bystander.hasNoPendingFrames())
            try await bystander.send(#"421["echo","ok"]"#)
            #expect(try await bystander.nextText() == #"431["ok"]"#)
            await client.close()
            await bystander.close()
        }
    }

    @Test func withoutAnAckTheRefusalIsTheErrorEventToThatClientOnly() async throws {
        try await self.withServer { h in
            let (client, _) = try await self.connect(h)
            let (bystander, _) = try await self.connect(h)
            try await client.send(#"42["test:sync:request",{}]"#)
            #expect(
                try await client.nextText()
                    == #"42["socketgateway:error",{"error":"invalid_payload","event":"test:sync:request","#
                    + #""path":"$.sheet_id","message":"test:sync:request: missing field at $.sheet_id: "#
                    + #"the payload has no 'sheet_id'"}]"#
            )
            // No argument at all, or two: the argument count is refused too.
            try await client.send(#"42["test:sync:request"]"#)
            #expect(
                try await client.nextText()
                    == #"42["socketgateway:error",{"error":"invalid_payload","event":"test:sync:request","path":"$","#
                    + #""message":"test:sync:request: wrong number of arguments: expected exactly one argument "#
                    + #"(the payload), found 0"}]"#
            )
            try await client.send(#"42["test:note",{"text":1}]"#)
            #expect(
                try await client.nextText()
                    .hasPrefix(
                        #"42["socketgateway:error",{"error":"invalid_payload","event":"test:note","path":"$.text""#
                    )
            )
            #expect(h.refused == 2)
            try await bystander.send(#"421["echo","ok"]"#)
            #expect(try await bystander.nextText() == #"431["ok"]"#)
            #expect(h.recorder.events.isEmpty)
            await client.close()
            await bystander.close()
        }
    }

    @Test func anEventWithoutACatalogAckRunsItsHandlerAndReleasesAnAckTheClientAskedFor() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(h)
            try await client.send(#"42["test:note",{"text":"plain"}]"#)
            try await client.send(#"425["test:note",{"text":"asked"}]"#)
            #expect(try await client.nextText() == #"435[]"#)
            try await h.recorder.waitUntil { $0.events == ["note plain", "note asked"] }
            let connection = try #require(h.recorder.connection(sid))
            #expect(await connection.owedAcks() == 0)
            await client.close()
        }
    }

    @Test func refusalsAreLoggedRateLimitedOnOneEscapedLine() async throws {
        try await self.withServer { h in
            let (client, _) = try await self.connect(h)
            // A hostile string in the payload: a newline and a terminal escape end up in the decoding message.
            let hostile = #"{"sheet_id":"s","after":"x\nFORGED LINE \u001B[31m"}"#
            for id in 0..<20 {
                try await client.send(#"42\#(id)["test:sync:request",\#(hostile)]"#)
                #expect(try await client.nextText().hasPrefix(#"43\#(id)[{"error":"invalid_payload""#))
            }
            #expect(h.refused == 20)
            let warnings = h.refusalWarnings
            #expect(!warnings.isEmpty)
            #expect(warnings.count < 20)
            for line in warnings {
                #expect(!line.text.contains("\n") && !line.text.contains("\u{1B}"), "one line, no escape: \(line.text)")
                #expect(line.metadata.contains(#"$.after: expected a UUID, found 'x\nFORGED LINE \u{1B}[31m'"#))
            }
            await client.close()
        }
    }

    static let messageID = UUID(uuidString: "4F1C2B3A-9D8E-4F70-8A6B-5C4D3E2F1A0B")!

    @Test func generatedTypesRegisterAndAnswerTheSameWay() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(h)
            try await client.send(#"421["chat:message",{"room":"r1","text":"hi"}]"#)
            #expect(
                try await client.nextText()
                    == #"431[{"message_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b","#
                    + #""accepted_at":"1970-01-01T00:00:00.000Z"}]"#
            )
            try await client.send(#"422["chat:message",{"room":"r1"}]"#)
            #expect(
                try await client.nextText()
                    == #"432[{"error":"invalid_payload","event":"chat:message","path":"$.text","#
                    + #""message":"chat:message: missing field at $.text: the payload has no 'text'"}]"#
            )
            #expect(h.recorder.events == ["chat r1: hi"])

            // A generated server event with an ack: emitWithAck returns the generated Ack type.
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))
            let progress = SheetSyncProgress(jobID: Self.messageID, stage: .running, percent: 50.5)
            async let answer = connection.emitWithAck(progress, timeout: .seconds(10))
            #expect(
                try await client.nextText()
                    == #"420["sheet:sync:progress",{"job_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b","stage":"running","#
                    + #""percent":50.5}]"#
            )
            try await client.send(#"430[{"rendered":true,"lag_ms":4}]"#)
            #expect(try await answer == SheetSyncProgressAck(rendered: true, lagMs: 4))
            await client.close()
        }
    }

    // MARK: Server → client

    @Test func emitWithAckDecodesTheClientsTypedAnswer() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(h)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))

            async let answer = connection.emitWithAck(TypedPing(nonce: 7), timeout: .seconds(10))
            #expect(try await client.nextText() == #"420["test:ping",{"nonce":7}]"#)
            try await client.send(#"430[{"nonce":7,"status":"ok"}]"#)
            #expect(try await answer == TypedPingAck(nonce: 7, status: "ok"))
        }
    }

    @Test func aMalformedAnswerIsAnInvalidAnswerErrorNamingThePath() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(h)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))

            async let malformed = connection.emitWithAck(TypedPing(nonce: 1), timeout: .seconds(10))
            #expect(try await client.nextText() == #"420["test:ping",{"nonce":1}]"#)
            try await client.send(#"430[{"nonce":"one","status":"ok"}]"#)
            do {
                _ = try await malformed
                Issue.record("a malformed answer was accepted")
            } catch let error as SocketAckError {
                #expect(error.code == .invalidAnswer)
                #expect(error.answerError?.pathDescription == "$.nonce")
                #expect(
                    error.description
                        == "no ack for event test:ping from \(sid) in /: invalidAnswer: test:ping: wrong type at "
                        + "$.nonce: expected an integer, found a string"
                )
            }

            // No answer within the timeout: a timeout, as for untyped acks.
            await #expect(throws: SocketAckError.self) {
                _ = try await connection.emitWithAck(TypedPing(nonce: 2), timeout: .milliseconds(50))
            }
            #expect(try await client.nextText() == #"421["test:ping",{"nonce":2}]"#)

            // An event of another namespace is not sent at all.
            do {
                _ = try await connection.emitWithAck(TypedAdminPing(), timeout: .seconds(1))
                Issue.record("an event of /admin was sent on a / connection")
            } catch let error as SocketAckError {
                #expect(error.code == .wrongNamespace)
            }
            // The session stays up.
            try await client.send(#"421["echo","still here"]"#)
            #expect(try await client.nextText() == #"431["still here"]"#)
            await client.close()
        }
    }
}
