import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import Testing

/// A frame (WebSocket) or record received by a test client.
enum TestFrame: Equatable, CustomStringConvertible {
    case text(String)
    case binary([UInt8])

    var description: String {
        switch self {
        case .text(let text): return "text(\(text))"
        case .binary(let bytes): return "binary(\(bytes))"
        }
    }
}

struct TestClientError: Error, CustomStringConvertible {
    var description: String
}

/// A minimal WebSocket client speaking raw Engine.IO/Socket.IO text, for end-to-end tests against a real server
/// on 127.0.0.1. It answers Engine.IO pings by itself and hides them from the test.
final class TestWebSocketClient: Sendable {
    private let channel: any Channel
    private let inbox: Inbox

    final class Inbox: Sendable {
        private struct State {
            var frames: [TestFrame] = []
            var closed = false
            var handshakeDone = false
            var ignoresClose = false
        }
        private let state = NIOLockedValueBox(State())

        func push(_ frame: TestFrame) { self.state.withLockedValue { $0.frames.append(frame) } }
        func markClosed() { self.state.withLockedValue { $0.closed = true } }
        func markHandshakeDone() { self.state.withLockedValue { $0.handshakeDone = true } }
        func ignoreClose() { self.state.withLockedValue { $0.ignoresClose = true } }
        var ignoresClose: Bool { self.state.withLockedValue { $0.ignoresClose } }
        var isClosed: Bool { self.state.withLockedValue { $0.closed } }
        var handshakeDone: Bool { self.state.withLockedValue { $0.handshakeDone } }
        func pop() -> TestFrame? {
            self.state.withLockedValue { state in state.frames.isEmpty ? nil : state.frames.removeFirst() }
        }
        var pending: [TestFrame] { self.state.withLockedValue { $0.frames } }
    }

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Opens a WebSocket to `path` (an Engine.IO URL) and returns once the HTTP upgrade completed.
    static func connect(
        port: Int,
        path: String = "/socket.io/?EIO=4&transport=websocket",
        group: any EventLoopGroup,
        receiveBufferSize: Int? = nil
    ) async throws -> TestWebSocketClient {
        let inbox = Inbox()
        var keyBytes = [UInt8](repeating: 0, count: 16)
        for index in keyBytes.indices { keyBytes[index] = UInt8.random(in: 0...255) }
        let key = base64(keyBytes)
        var bootstrap = ClientBootstrap(group: group)
        if let receiveBufferSize {
            // Before connecting, so the window the client advertises is small from the start.
            bootstrap = bootstrap.channelOption(
                ChannelOptions.socketOption(.so_rcvbuf),
                value: .init(receiveBufferSize)
            )
        }
        let channel =
            try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WebSocketClientHandler(inbox: inbox))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let client = TestWebSocketClient(channel: channel, inbox: inbox)
        try await client.waitUntil("the WebSocket handshake") { inbox.handshakeDone || inbox.isClosed }
        guard inbox.handshakeDone else { throw TestClientError(description: "WebSocket upgrade to \(path) refused") }
        return client
    }

    /// Connects, reads the Engine.IO open packet and returns the client with the Engine.IO sid.
    static func connectEngineIO(
        port: Int,
        group: any EventLoopGroup,
        receiveBufferSize: Int? = nil
    ) async throws -> (TestWebSocketClient, String) {
        let client = try await Self.connect(port: port, group: group, receiveBufferSize: receiveBufferSize)
        guard case .text(let open) = try await client.next(), open.hasPrefix("0") else {
            throw TestClientError(description: "expected an Engine.IO open packet")
        }
        return (client, open)
    }

    /// Connects, sends a Socket.IO CONNECT to `namespace` with `auth` (a JSON object's text, or "") and reads the
    /// reply; returns the client and the reply's payload (`sid`, and `pid` with recovery on).
    static func connectSocketIO(
        port: Int,
        group: any EventLoopGroup,
        namespace: String = "/",
        auth: String = "",
        receiveBufferSize: Int? = nil
    ) async throws -> (TestWebSocketClient, JSONValue) {
        let (client, _) = try await Self.connectEngineIO(port: port, group: group, receiveBufferSize: receiveBufferSize)
        let prefix = namespace == "/" ? "40" : "40\(namespace),"
        try await client.send(prefix + auth)
        let reply = try await client.nextText()
        #expect(reply.hasPrefix(prefix + "{\"sid\":\""), "CONNECT reply: \(reply)")
        return (client, try JSONValue.parse(String(reply.dropFirst(prefix.count))))
    }

    /// ``connectSocketIO(port:group:namespace:auth:receiveBufferSize:)`` to a server whose namespaces greet a new connection with
    /// `welcome` and its sid (the end-to-end and Hummingbird fixtures); checks the greeting, returns the sid.
    static func connectWelcomed(
        port: Int,
        group: any EventLoopGroup,
        namespace: String = "/",
        auth: String = "",
        receiveBufferSize: Int? = nil
    ) async throws -> (TestWebSocketClient, String) {
        let (client, reply) = try await Self.connectSocketIO(
            port: port,
            group: group,
            namespace: namespace,
            auth: auth,
            receiveBufferSize: receiveBufferSize
        )
        let sid = reply["sid"]?.stringValue ?? ""
        let eventPrefix = namespace == "/" ? "42" : "42\(namespace),"
        #expect(try await client.nextText() == "\(eventPrefix)[\"welcome\",\"\(sid)\"]")
        return (client, sid)
    }

    /// Stops reading from the socket: what the server sends stays in its buffers (a client that never reads).
    func stopReading() async throws {
        try await self.channel.setOption(ChannelOptions.autoRead, value: false).get()
    }

    /// From now on a close frame from the server is neither answered nor followed by closing the connection, nor
    /// is the server's end of its output (a client that leaves the server's close handshake hanging); the
    /// connection ends when the server resets or fully closes it.
    func ignoreCloseFrames() async throws {
        self.inbox.ignoreClose()
        try await self.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).get()
    }

    func send(_ text: String) async throws {
        try await self.channel.writeAndFlush(Self.frame(opcode: 0x1, payload: Array(text.utf8))).get()
    }

    func send(binary: [UInt8]) async throws {
        try await self.channel.writeAndFlush(Self.frame(opcode: 0x2, payload: binary)).get()
    }

    /// The next frame that is not an Engine.IO ping (pings are answered). Fails after `attempts` × 10 ms.
    func next(attempts: Int = 500) async throws -> TestFrame {
        for _ in 0..<attempts {
            if let frame = self.inbox.pop() {
                if frame == .text("2") {
                    try await self.send("3")
                    continue
                }
                return frame
            }
            if self.inbox.isClosed { throw TestClientError(description: "connection closed while waiting for a frame") }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "no frame received in time")
    }

    /// The next frame, which must be text.
    func nextText() async throws -> String {
        let frame = try await self.next()
        guard case .text(let text) = frame else { throw TestClientError(description: "expected text, got \(frame)") }
        return text
    }

    /// Waits until the server closes (or resets) the connection; fails after `attempts` × 10 ms.
    func waitForClose(attempts: Int = 500) async throws {
        try await self.waitUntil("the server to close the connection", attempts: attempts) { self.inbox.isClosed }
    }

    /// True when nothing but pings arrived so far.
    func hasNoPendingFrames() -> Bool {
        self.inbox.pending.allSatisfy { $0 == .text("2") }
    }

    var isClosed: Bool { self.inbox.isClosed }

    func close() async {
        try? await self.channel.close().get()
    }

    private func waitUntil(_ what: String, attempts: Int = 500, _ condition: () -> Bool) async throws {
        for _ in 0..<attempts {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "timed out waiting for \(what)")
    }

    private static func frame(opcode: UInt8, payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(0x80 | opcode)
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        let mask: [UInt8] = (0..<4).map { _ in UInt8.random(in: 0...255) }
        buffer.writeBytes(mask)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        return buffer
    }
}

/// Reads the HTTP 101 response, then unmasked server frames, into the inbox.
private final class WebSocketClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let inbox: TestWebSocketClient.Inbox
    private var buffer = ByteBuffer()
    private var upgraded = false
    private var fragments: (opcode: UInt8, bytes: [UInt8])?

    init(inbox: TestWebSocketClient.Inbox) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        self.buffer.writeBuffer(&incoming)
        if !self.upgraded {
            let view = self.buffer.readableBytesView
            guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
            let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
            self.buffer.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
            guard head.hasPrefix("HTTP/1.1 101") else {
                context.close(promise: nil)
                return
            }
            self.upgraded = true
            self.inbox.markHandshakeDone()
        }
        while let (opcode, fin, payload) = self.parseFrame() {
            switch opcode {
            case 0x0:
                self.fragments?.bytes += payload
            case 0x1, 0x2:
                self.fragments = (opcode, payload)
            case 0x8:
                if self.inbox.ignoresClose { continue }
                self.inbox.markClosed()
                context.close(promise: nil)
                return
            default:
                continue  // ping/pong frames
            }
            if fin, let (messageOpcode, bytes) = self.fragments {
                self.fragments = nil
                self.inbox.push(messageOpcode == 0x1 ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inbox.markClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.inbox.markClosed()
        context.close(promise: nil)
    }

    private func parseFrame() -> (UInt8, Bool, [UInt8])? {
        var view = self.buffer
        guard let first = view.readInteger(as: UInt8.self), let second = view.readInteger(as: UInt8.self) else {
            return nil
        }
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = view.readInteger(as: UInt16.self) else { return nil }
            length = Int(extended)
        } else if length == 127 {
            guard let extended = view.readInteger(as: UInt64.self) else { return nil }
            length = Int(extended)
        }
        var mask: [UInt8]?
        if second & 0x80 != 0 {
            guard let key = view.readBytes(length: 4) else { return nil }
            mask = key
        }
        guard var payload = view.readBytes(length: length) else { return nil }
        if let mask {
            for index in payload.indices { payload[index] ^= mask[index % 4] }
        }
        self.buffer = view
        return (first & 0x0F, first & 0x80 != 0, payload)
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), for long-polling tests. Waits for the server to
/// close the connection (bounded: 1,500 polls, 15 s or more; no test expects a request to go unanswered, and 500 were
/// too few for the first requests of a loaded run).
func httpRequest(
    port: Int,
    method: String,
    path: String,
    body: String? = nil,
    group: any EventLoopGroup
) async throws -> (status: Int, body: String) {
    let collected = NIOLockedValueBox<(bytes: [UInt8], done: Bool)>(([], false))
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ResponseCollector(collected: collected))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    if let body {
        request += "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    } else {
        request += "\r\n"
    }
    try await channel.writeAndFlush(ByteBuffer(string: request)).get()
    for _ in 0..<1500 {
        if collected.withLockedValue({ $0.done }) { break }
        try await Task.sleep(for: .milliseconds(10))
    }
    let bytes = collected.withLockedValue { $0.bytes }
    try? await channel.close().get()
    let text = String(decoding: bytes, as: UTF8.self)
    guard let headEnd = text.range(of: "\r\n\r\n"), text.hasPrefix("HTTP/1.1 ") else {
        throw TestClientError(description: "no HTTP response to \(method) \(path)")
    }
    let status = Int(text.dropFirst(9).prefix(3)) ?? 0
    return (status, String(text[headEnd.upperBound...]))
}

private final class ResponseCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let collected: NIOLockedValueBox<(bytes: [UInt8], done: Bool)>

    init(collected: NIOLockedValueBox<(bytes: [UInt8], done: Bool)>) {
        self.collected = collected
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        self.collected.withLockedValue { $0.bytes += buffer.readableBytesView }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.collected.withLockedValue { $0.done = true }
    }
}

private func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
        let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
        let value =
            (UInt32(chunk[0]) << 16) | (UInt32(chunk.count > 1 ? chunk[1] : 0) << 8)
            | UInt32(chunk.count > 2 ? chunk[2] : 0)
        output.append(alphabet[Int((value >> 18) & 63)])
        output.append(alphabet[Int((value >> 12) & 63)])
        output.append(chunk.count > 1 ? alphabet[Int((value >> 6) & 63)] : UInt8(ascii: "="))
        output.append(chunk.count > 2 ? alphabet[Int(value & 63)] : UInt8(ascii: "="))
        index += 3
    }
    return String(decoding: output, as: UTF8.self)
}
