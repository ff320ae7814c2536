import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

/// A connection's own catch-all listeners (socket.io's `socket.onAny`, `offAny`, `onAnyOutgoing`,
/// `offAnyOutgoing`), through a real server and raw WebSocket clients on 127.0.0.1.
@Suite(.serialized) struct SocketAnyListenerTests {
    /// What the listeners and handlers saw, as `<sid> <what>` lines, in order.
    final class Seen: Sendable {
        private let lines = NIOLockedValueBox<[String]>([])
        func add(_ line: String) { self.lines.withLockedValue { $0.append(line) } }
        var all: [String] { self.lines.withLockedValue { $0 } }
        func of(_ sid: String) -> [String] {
            self.all.filter { $0.hasPrefix(sid + " ") }.map { String($0.dropFirst(sid.count + 1)) }
        }

        /// Waits (bounded) until `sid` has seen `line`.
        func wait(_ sid: String, saw line: String) async throws {
            for _ in 0..<500 where !self.of(sid).contains(line) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(self.of(sid).contains(line), "seen: \(self.of(sid))")
        }
    }

    /// A server on which a client whose CONNECT payload has `"watch": true` gets its own listeners in onConnect,
    /// after a pause (so events sent right after the CONNECT reply arrive while onConnect runs): `in` logs every
    /// event and answers `ask` through its ack; `in2` logs the event name, removes `in` on `drop-first` and every
    /// listener on `drop-all`; `out` logs what the connection is sent. `handled` has a handler; `drop-out`
    /// removes the outgoing listeners.
    func withServer(
        _ body: (SocketServer, Int, Seen, Recorder, any EventLoopGroup) async throws -> Void
    ) async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous
        let server = SocketServer(configuration: configuration, logger: logger)
        let seen = Seen()
        let recorder = Recorder()
        let namespace = server.namespace("/")
        namespace.onConnect { connection in
            recorder.connected(connection)
            guard connection.handshake.auth?["watch"] == true else { return }
            try? await Task.sleep(for: .milliseconds(50))
            let first = connection.onAny { event, arguments, ack in
                seen.add("\(connection.id) in \(event) \(JSONValue.array(arguments).jsonString)")
                if event == "ask" { ack?.send([.string("answered by onAny")]) }
            }
            connection.onAny { event, _, _ in
                seen.add("\(connection.id) in2 \(event)")
                if event == "drop-first" { connection.offAny(first) }
                if event == "drop-all" { connection.offAny() }
            }
            connection.onAnyOutgoing { event, arguments in
                seen.add("\(connection.id) out \(event) \(JSONValue.array(arguments).jsonString)")
            }
            seen.add("\(connection.id) ready")
        }
        namespace.on("handled") { connection, arguments, _ in
            seen.add("\(connection.id) handler \(JSONValue.array(arguments).jsonString)")
        }
        namespace.on("drop-out") { connection, _, ack in
            connection.offAnyOutgoing()
            ack?.send([])
        }
        try await server.start()
        let port = try #require(server.localPort)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await body(server, port, seen, recorder, clients)
        } catch {
            try await server.shutdown()
            try await clients.shutdownGracefully()
            throw error
        }
        try await server.shutdown()
        try await clients.shutdownGracefully()
    }

    /// Connects to `/` with `auth`; returns the client and its sid.
    func connect(port: Int, group: any EventLoopGroup, auth: String) async throws -> (TestWebSocketClient, String) {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        try await client.send("40" + auth)
        let reply = try await client.nextText()
        #expect(reply.hasPrefix("40{"), "CONNECT reply: \(reply)")
        let sid = try #require(try JSONValue.parse(String(reply.dropFirst(2)))["sid"]?.stringValue)
        return (client, sid)
    }

    @Test func onAnySeesEveryEventOfItsOwnConnectionEvenOnesSentWhileOnConnectRuns() async throws {
        try await self.withServer { _, port, seen, _, group in
            let (watched, sid) = try await self.connect(port: port, group: group, auth: #"{"watch":true}"#)
            // Sent at once: onConnect is still pausing, so they wait for it (and its listeners).
            try await watched.send(#"42["early",1]"#)
            try await watched.send(#"42["handled",2]"#)
            let (other, otherSID) = try await self.connect(port: port, group: group, auth: "{}")
            try await other.send(#"42["nobody-handles",3]"#)
            try await other.send(#"42["handled",4]"#)
            // An event only onAny handles, with an ack: the listener answers it.
            try await watched.send(#"427["ask","?"]"#)
            #expect(try await watched.nextText() == #"437["answered by onAny"]"#)
            try await seen.wait(otherSID, saw: "handler [4]")
            #expect(
                seen.of(sid) == [
                    "ready",
                    "in early [1]", "in2 early",
                    "in handled [2]", "in2 handled", "handler [2]",
                    #"in ask ["?"]"#, "in2 ask",
                ]
            )
            // The other connection has no listener: only its handler ran.
            #expect(seen.of(otherSID) == ["handler [4]"])
            await watched.close()
            await other.close()
        }
    }

    @Test func offAnyRemovesOneListenerByItsTokenOrEveryOne() async throws {
        try await self.withServer { _, port, seen, _, group in
            let (client, sid) = try await self.connect(port: port, group: group, auth: #"{"watch":true}"#)
            try await seen.wait(sid, saw: "ready")
            for event in ["drop-first", "after-first", "drop-all", "unheard", "handled"] {
                try await client.send(#"42[""# + event + #""]"#)
            }
            try await seen.wait(sid, saw: "handler []")
            #expect(
                seen.of(sid) == [
                    "ready",
                    "in drop-first []", "in2 drop-first",  // `in` saw it, then `in2` removed `in`
                    "in2 after-first",
                    "in2 drop-all",  // then nothing listens: `unheard` is dropped, `handled` has its handler
                    "handler []",
                ]
            )
            await client.close()
        }
    }

    @Test func onAnyOutgoingSeesTheConnectionsOwnAndGatewayEmitsUntilOffAnyOutgoing() async throws {
        try await self.withServer { server, port, seen, recorder, group in
            let (client, sid) = try await self.connect(port: port, group: group, auth: #"{"watch":true}"#)
            let (other, otherSID) = try await self.connect(port: port, group: group, auth: "{}")
            try await seen.wait(sid, saw: "ready")
            try await recorder.waitUntil { $0.connection(sid) != nil && $0.connection(otherSID) != nil }
            let connection = try #require(recorder.connection(sid))
            // No namespace-level onAnyOutgoing: the gateway notifies because a connection has its own.
            connection.emit("own", arguments: [1])
            #expect(try await client.nextText() == #"42["own",1]"#)
            await server.gateway.emit("all", arguments: [2], to: .broadcast, options: EmitOptions())
            #expect(try await client.nextText() == #"42["all",2]"#)
            #expect(try await other.nextText() == #"42["all",2]"#)
            try await seen.wait(sid, saw: "out all [2]")
            #expect(seen.of(sid) == ["ready", "out own [1]", "out all [2]"])
            #expect(seen.of(otherSID).isEmpty)

            try await client.send(#"421["drop-out"]"#)
            #expect(try await client.nextText() == "431[]")
            connection.emit("own", arguments: [3])
            #expect(try await client.nextText() == #"42["own",3]"#)
            await server.gateway.emit("all", arguments: [4], to: .broadcast, options: EmitOptions())
            #expect(try await client.nextText() == #"42["all",4]"#)
            #expect(seen.of(sid).filter { $0.hasPrefix("out ") } == ["out own [1]", "out all [2]"])
            #expect(server.namespace("/").outgoingNotification.socketListeners == false, "the last listener went")
            await client.close()
            await other.close()
        }
    }
}
