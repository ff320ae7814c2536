import Foundation
import NIOCore
import NIOPosix

/// A deliberately dumb HTTP/1.1 + WebSocket client speaking raw bytes, so the server is checked against the
/// wire format itself rather than against another library's view of it.
final class RawTestConnection {
    struct EOFError: Error, CustomStringConvertible {
        var description: String { "the server closed the connection" }
    }

    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: ByteBuffer
        var text: String { String(buffer: self.body) }
        func header(_ name: String) -> String? {
            self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var buffer = ByteBuffer()

    private init(
        iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.iterator = iterator
        self.writer = writer
    }

    /// Connects to 127.0.0.1:`port`, runs `body`, closes.
    static func with(port: Int, _ body: (RawTestConnection) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            let connection = RawTestConnection(iterator: inbound.makeAsyncIterator(), writer: outbound)
            try await body(connection)
        }
    }

    private func readMore() async throws {
        guard var chunk = try await self.iterator.next() else { throw EOFError() }
        self.buffer.writeBuffer(&chunk)
    }

    /// Whether the server closes the connection (reads until EOF, discarding data).
    func waitForClose() async throws -> Bool {
        while true {
            do {
                try await self.readMore()
            } catch is EOFError {
                return true
            }
        }
    }

    func sendRequest(
        _ method: String,
        _ target: String,
        body: String? = nil,
        headers: [(String, String)] = []
    ) async throws {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n"
        var bytes = ByteBuffer(string: text)
        if let body { bytes.writeString(body) }
        try await self.writer.write(bytes)
    }

    func readResponse() async throws -> Response {
        while true {
            let view = self.buffer.readableBytesView
            if let end = view.firstRange(of: Array("\r\n\r\n".utf8)) {
                let headText = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
                let lines = headText.components(separatedBy: "\r\n")
                let status = Int(lines[0].split(separator: " ")[1])!
                let headers = lines.dropFirst().map { line -> (String, String) in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
                }
                let length = Int(headers.first { $0.0.lowercased() == "content-length" }?.1 ?? "0") ?? 0
                let headLength = end.upperBound - view.startIndex
                while self.buffer.readableBytes < headLength + length { try await self.readMore() }
                self.buffer.moveReaderIndex(forwardBy: headLength)
                let body = self.buffer.readSlice(length: length)!
                return Response(status: status, headers: headers, body: body)
            }
            try await self.readMore()
        }
    }

    func request(
        _ method: String,
        _ target: String,
        body: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> Response {
        try await self.sendRequest(method, target, body: body, headers: headers)
        return try await self.readResponse()
    }

    /// Performs the WebSocket opening handshake; returns the HTTP status (101 on success).
    func upgradeToWebSocket(_ target: String, extraHeaders: [(String, String)] = []) async throws -> Response {
        try await self.sendRequest(
            "GET",
            target,
            headers: [
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
            ] + extraHeaders
        )
        return try await self.readResponse()
    }

    /// Sends one masked frame, FIN set; `rsv1` marks it compressed (permessage-deflate).
    func sendFrame(opcode: UInt8, payload: ByteBuffer, rsv1: Bool = false) async throws {
        var frame = ByteBuffer()
        frame.writeInteger(0x80 | (rsv1 ? 0x40 : 0) | opcode)
        let length = payload.readableBytes
        if length < 126 {
            frame.writeInteger(UInt8(0x80 | length))
        } else if length <= 0xFFFF {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(length))
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame.writeBytes(mask)
        for (index, byte) in payload.readableBytesView.enumerated() { frame.writeInteger(byte ^ mask[index % 4]) }
        try await self.writer.write(frame)
    }

    /// Writes bytes as they are (e.g. a hand-made, broken WebSocket frame).
    func writeRaw(_ bytes: ByteBuffer) async throws {
        try await self.writer.write(bytes)
    }

    func sendText(_ text: String) async throws {
        try await self.sendFrame(opcode: 0x1, payload: ByteBuffer(string: text))
    }

    /// Reads one server frame (unmasked); nil when the connection ends.
    func readFrame() async throws -> (opcode: UInt8, payload: ByteBuffer)? {
        try await self.readFrameWithFlags().map { ($0.first & 0x0F, $0.payload) }
    }

    /// Reads one server frame (unmasked) with its first byte (FIN, RSV1-3, opcode); nil when the connection ends.
    func readFrameWithFlags() async throws -> (first: UInt8, payload: ByteBuffer)? {
        while true {
            if self.buffer.readableBytes >= 2 {
                let first = self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt8.self)!
                let second = self.buffer.getInteger(at: self.buffer.readerIndex + 1, as: UInt8.self)!
                var headerLength = 2
                var length = Int(second & 0x7F)
                if length == 126 {
                    headerLength = 4
                    if self.buffer.readableBytes >= 4 {
                        length = Int(self.buffer.getInteger(at: self.buffer.readerIndex + 2, as: UInt16.self)!)
                    } else {
                        length = Int.max / 2
                    }
                } else if length == 127 {
                    headerLength = 10
                    if self.buffer.readableBytes >= 10 {
                        length = Int(self.buffer.getInteger(at: self.buffer.readerIndex + 2, as: UInt64.self)!)
                    } else {
                        length = Int.max / 2
                    }
                }
                if self.buffer.readableBytes >= headerLength + length {
                    self.buffer.moveReaderIndex(forwardBy: headerLength)
                    return (first, self.buffer.readSlice(length: length)!)
                }
            }
            do {
                try await self.readMore()
            } catch is EOFError {
                return nil
            }
        }
    }

    /// Reads frames until a text or binary one arrives (skipping nothing else: control frames are returned too).
    func readText() async throws -> String? {
        guard let frame = try await self.readFrame() else { return nil }
        return frame.opcode == 0x1 ? String(buffer: frame.payload) : "<opcode \(frame.opcode)>"
    }
}
