import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayEngineIO
import Testing

/// Thrown when a bounded wait gives up: the server did not do what the test waits for.
struct GaveUpWaiting: Error, CustomStringConvertible {
    var what: String
    var description: String { "gave up waiting: \(self.what)" }
}

/// Runs `body`, giving up (throwing) after `seconds`: a bound on a wait, never an assertion about timing.
func bounded<T: Sendable>(
    _ what: String,
    seconds: Int = 30,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw GaveUpWaiting(what: what) }
        return value
    }
}

/// Attacker-style checks of the HTTP and long-polling side: slow or silent connections, stuck sessions, lost
/// replies.
@Suite struct EngineIOHardeningTests {
    static let path = EngineIOServerTests.path

    func handshake(_ response: RawTestConnection.Response) throws -> HandshakeInfo {
        try EngineIOServerTests().handshake(response)
    }

    @Test func slowAndSilentHTTPConnectionsAreClosedWhilePollingGoesOn() async throws {
        // Limits a few seconds long, not fractions of one: on a loaded 2-core CI machine the test's own clients can
        // stall for a second between connecting and writing, and must not be cut off as slow.
        var configuration = EngineIOConfiguration(pingInterval: .seconds(8), pingTimeout: .seconds(30))
        configuration.httpIdleTimeout = .seconds(6)
        configuration.httpHeaderTimeout = .seconds(3)
        configuration.httpBodyTimeout = .seconds(3)
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            async let silent: Bool = bounded("silent connection closed") {
                var closed = false
                try await RawTestConnection.with(port: port) { connection in
                    closed = try await connection.waitForClose()
                }
                return closed
            }
            async let halfLine: Int = bounded("half a request line answered") {
                var status = 0
                try await RawTestConnection.with(port: port) { connection in
                    try await connection.writeRaw(ByteBuffer(string: "GET /engine.io/?EIO=4&tra"))
                    status = try await connection.readResponse().status
                    #expect(try await connection.waitForClose())
                }
                return status
            }
            async let trickle: (status: Int, cutShort: Bool, sessionUsable: Bool) = bounded("trickling body answered") {
                var sid = ""
                try await RawTestConnection.with(port: port) { connection in
                    sid = try EngineIOServerTests().handshake(try await connection.request("GET", Self.path)).sid
                }
                var status = 0
                var sent = 0
                try await RawTestConnection.with(port: port) { connection in
                    let head = "POST \(Self.path)&sid=\(sid) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n"
                    try await connection.writeRaw(ByteBuffer(string: head))
                    // One byte every 100 ms, so the connection is never silent for a body timeout, until the server
                    // closes it (writes then fail). Bounded: 150 bytes at most (15 s), far beyond the 3 s body
                    // timeout, so that a loaded machine's late timer still cuts the body short.
                    for _ in 0..<150 {
                        do {
                            try await connection.writeRaw(ByteBuffer(string: "4"))
                            sent += 1
                        } catch {
                            break
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    // The 408, unless the bytes we sent after the server closed made it reset the connection first.
                    do {
                        status = try await connection.readResponse().status
                    } catch {
                        status = -1
                    }
                }
                // The abandoned POST does not block the session's next one.
                var next = ""
                try await RawTestConnection.with(port: port) { connection in
                    next = try await connection.request("POST", "\(Self.path)&sid=\(sid)", body: "4after").text
                }
                return (status, sent < 150, next == "ok")
            }
            // A polling client on the same server, its GET parked longer than every HTTP limit.
            let polled: [String] = try await bounded("normal polling client") {
                var texts: [String] = []
                try await RawTestConnection.with(port: port) { connection in
                    let sid = try EngineIOServerTests().handshake(try await connection.request("GET", Self.path)).sid
                    let target = "\(Self.path)&sid=\(sid)"
                    texts.append(try await connection.request("GET", target).text)  // the ping, after 8 s
                    texts.append(try await connection.request("POST", target, body: "3\u{1e}4hi").text)
                    texts.append(try await connection.request("GET", target).text)
                }
                return texts
            }
            #expect(polled == ["2", "ok", "4hi"])
            #expect(try await silent)
            #expect(try await halfLine == 408)
            let trickled = try await trickle
            #expect(trickled.status == 408 || trickled.status == -1, "the trickling POST ended with \(trickled.status)")
            #expect(trickled.cutShort, "the server closed the connection while the body was still trickling in")
            #expect(trickled.sessionUsable)
            _ = application
        }
    }

    @Test func postRefusedForItsQueryDoesNotBlockTheNextPost() async throws {
        try await EngineIOServerTests().withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            _ in
            try await RawTestConnection.with(port: port) { connection in
                let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
                let wrongVersion = try await connection.request(
                    "POST",
                    "/engine.io/?EIO=3&transport=polling&sid=\(sid)",
                    body: "4a"
                )
                #expect(wrongVersion.status == 400)
                let wrongTransport = try await connection.request(
                    "POST",
                    "/engine.io/?EIO=4&transport=websocket&sid=\(sid)",
                    body: "4a"
                )
                #expect(wrongTransport.status == 400)
                let target = "\(Self.path)&sid=\(sid)"
                #expect(try await connection.request("POST", target, body: "4b").text == "ok")
                #expect(try await connection.request("GET", target).text == "4b")
            }
        }
    }

    @Test func handshakesBeyondThePendingSessionLimitAreRefused() async throws {
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.maxPendingSessions = 2
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            try await RawTestConnection.with(port: port) { connection in
                let first = try self.handshake(try await connection.request("GET", Self.path)).sid
                let second = try self.handshake(try await connection.request("GET", Self.path)).sid
                // Two sessions wait for their first message: the third handshake is refused, on either transport.
                let refused = try await connection.request("GET", Self.path)
                #expect(refused.status == 503)
                #expect(refused.text == "{\"code\":4,\"message\":\"Too many sessions waiting to connect\"}")
                try await RawTestConnection.with(port: port) { webSocket in
                    let upgrade = try await webSocket.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket")
                    #expect(upgrade.status == 503)
                }
                // Established sessions are unaffected, and an established session frees its place.
                #expect(try await connection.request("POST", "\(Self.path)&sid=\(first)", body: "4hi").text == "ok")
                #expect(try await connection.request("GET", "\(Self.path)&sid=\(first)").text == "4hi")
                let third = try self.handshake(try await connection.request("GET", Self.path)).sid
                #expect(try await connection.request("GET", Self.path).status == 503)
                // So does a pending session that closes.
                #expect(try await connection.request("POST", "\(Self.path)&sid=\(second)", body: "1").text == "ok")
                _ = try await application.closeReasons()
                #expect(try await connection.request("GET", Self.path).status == 200)
                _ = third
            }
        }
    }

    @Test func anApplicationThatMarksSessionsDecidesWhenTheyAreEstablished() async throws {
        // The Socket.IO layer marks a session established only once a namespace accepted it: a message alone
        // (e.g. a CONNECT to a namespace that does not exist) does not free its place.
        final class MarkingApplication: EngineIOApplication {
            var marksSessionsEstablished: Bool { true }
            func sessionOpened(_ session: EngineIOSession) {}
            func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
                if case .text(let text) = message, String(buffer: text) == "accept" { session.markEstablished() }
            }
            func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {}
        }
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.maxPendingSessions = 1
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        server.mount(path: "/engine.io/", configuration: configuration, application: MarkingApplication())
        try await server.start()
        let port = try #require(server.localPort)
        try await RawTestConnection.with(port: port) { connection in
            let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
            #expect(try await connection.request("POST", "\(Self.path)&sid=\(sid)", body: "4hello").text == "ok")
            #expect(try await connection.request("GET", Self.path).status == 503)
            #expect(try await connection.request("POST", "\(Self.path)&sid=\(sid)", body: "4accept").text == "ok")
            #expect(try await connection.request("GET", Self.path).status == 200)
        }
        try await server.shutdown()
    }

    @Test func applicationCloseOverPollingReachesTheClientAsTheClosePacket() async throws {
        // The Socket.IO layer closes a session for a protocol error with session.close(reason:); a polling client
        // with no GET parked must learn it from its next GET (the close packet), not from "Session ID unknown".
        final class ClosingApplication: EngineIOApplication {
            func sessionOpened(_ session: EngineIOSession) {}
            func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
                if case .text(let text) = message, String(buffer: text) == "bad" { session.close(reason: .parseError) }
            }
            func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {}
        }
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        server.mount(
            path: "/engine.io/",
            configuration: EngineIOConfiguration(pingInterval: .seconds(60)),
            application: ClosingApplication()
        )
        try await server.start()
        let port = try #require(server.localPort)
        try await RawTestConnection.with(port: port) { connection in
            let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
            let target = "\(Self.path)&sid=\(sid)"
            #expect(try await connection.request("POST", target, body: "4bad").text == "ok")
            let next = try await connection.request("GET", target)
            #expect(next.status == 200)
            #expect(next.text == "1")
            #expect(try await connection.request("GET", target).status == 400)
        }
        try await server.shutdown()
    }

    @Test func neverReadingPollingClientIsClosedAndItsSessionFreed() async throws {
        // The server broadcasts to a polling client that never GETs: at maxBufferedBytesPerSession the session is
        // closed as a slow client, and nothing keeps it (or its buffer) alive afterwards.
        final class BroadcastingApplication: EngineIOApplication {
            let closes = NIOLockedValueBox<[EngineIOCloseReason]>([])
            let session = NIOLockedValueBox<WeakSession>(WeakSession())
            func sessionOpened(_ session: EngineIOSession) {
                self.session.withLockedValue { $0.value = session }
            }
            func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
                let payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: 1024)
                for _ in 0..<100 { session.sendMessage(payload) }
            }
            func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
                self.closes.withLockedValue { $0.append(reason) }
            }
        }
        let application = BroadcastingApplication()
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), maxBufferedBytesPerSession: 16 << 10)
        server.mount(path: "/engine.io/", configuration: configuration, application: application)
        try await server.start()
        let port = try #require(server.localPort)
        try await RawTestConnection.with(port: port) { connection in
            let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
            let target = "\(Self.path)&sid=\(sid)"
            #expect(try await connection.request("POST", target, body: "4go").text == "ok")
            #expect(try await connection.request("GET", target).status == 400)
        }
        #expect(application.closes.withLockedValue { $0 } == [.slowClient])
        // Freed: the last reference goes once its event loop has run the close (bounded: 200 short polls).
        for _ in 0..<200 where application.session.withLockedValue({ $0.value != nil }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(application.session.withLockedValue { $0.value == nil })
        try await server.shutdown()
    }

    @Test func connectionsBeyondThePerAddressLimitAreClosed() async throws {
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.maxConnectionsPerAddress = 2
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { first in
                #expect(try await first.request("GET", Self.path).status == 200)
                try await RawTestConnection.with(port: port) { second in
                    #expect(try await second.request("GET", Self.path).status == 200)
                    let third = try await bounded("third connection closed") {
                        var closed = false
                        try await RawTestConnection.with(port: port) { connection in
                            closed = try await connection.waitForClose()
                        }
                        return closed
                    }
                    #expect(third)
                }
                // The second one closed: its place is free again (bounded: 200 short tries).
                var status = 0
                for _ in 0..<200 where status != 200 {
                    try? await RawTestConnection.with(port: port) { connection in
                        status = try await connection.request("GET", Self.path).status
                    }
                    if status != 200 { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(status == 200)
            }
        }
    }

    @Test func oversizedRequestHeadsAreRefusedBeforeASessionKeepsThem() async throws {
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.maxRequestHeaderBytes = 4096
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            let big = String(repeating: "c", count: 5000)
            for upgrade in [false, true] {
                try await RawTestConnection.with(port: port) { connection in
                    var headers = [("Cookie", big)]
                    if upgrade {
                        headers += [
                            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
                        ]
                    }
                    let target = upgrade ? "/engine.io/?EIO=4&transport=websocket" : Self.path
                    let response = try await connection.request("GET", target, headers: headers)
                    #expect(response.status == 431)
                    #expect(try await connection.waitForClose())
                }
            }
            #expect(application.opened.withLockedValue { $0 } == 0)
            try await RawTestConnection.with(port: port) { connection in
                let response = try await connection.request(
                    "GET",
                    Self.path,
                    headers: [("Cookie", String(repeating: "c", count: 1000))]
                )
                #expect(response.status == 200)
            }
        }
    }

    @Test func webSocketsAreNotSubjectToHTTPTimeouts() async throws {
        // Upgraded connections are left to the Engine.IO heartbeat: quiet for longer than every HTTP limit, the
        // WebSocket still works.
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        // Limits long enough that a loaded machine still gets the upgrade request in before them (at 1 s, a full
        // run's first seconds, every suite starting at once, once saw the header timeout reset the connection
        // before the upgrade was read).
        configuration.httpIdleTimeout = .seconds(3)
        configuration.httpHeaderTimeout = .seconds(3)
        configuration.httpBodyTimeout = .seconds(3)
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
                _ = try await connection.readText()
                try await Task.sleep(for: .milliseconds(7000))
                try await connection.sendText("4still here")
                #expect(try await connection.readText() == "4still here")
            }
        }
    }
}

/// A weak reference to a session, to see that nothing keeps a closed one alive.
struct WeakSession: @unchecked Sendable {
    weak var value: EngineIOSession?
}
