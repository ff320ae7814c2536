import Foundation
import Logging
import SocketGatewayServer

#if canImport(Glibc)
import Glibc
#endif

/// A SocketServer on an ephemeral port with `clients` raw WebSocket clients (blocking POSIX sockets, set up one
/// by one) whose incoming bytes one thread drains with poll()/read() into a fixed buffer: it allocates nothing,
/// so the allocations a benchmark counts are the server's.
final class FanOutFixture: @unchecked Sendable {
    let server: SocketServer
    /// The room each client joined (`r<i>`), in client order.
    let rooms: [String]
    private let descriptors: [Int32]
    private let drained = DrainCounter()
    private let stopping = DrainCounter()
    private let thread: Thread

    private init(server: SocketServer, descriptors: [Int32], rooms: [String]) {
        self.server = server
        self.descriptors = descriptors
        self.rooms = rooms
        let drained = self.drained
        let stopping = self.stopping
        self.thread = Thread {
            var polls = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { buffer.deallocate() }
            while stopping.value == 0 {
                let ready = poll(&polls, nfds_t(polls.count), 50)
                if ready <= 0 { continue }
                for index in polls.indices where polls[index].revents != 0 {
                    let count = read(polls[index].fd, buffer, 1 << 16)
                    if count > 0 { drained.add(count) }
                }
            }
        }
        self.thread.start()
    }

    /// Starts the server and connects the clients (no authentication; each joins its own room).
    /// - Parameter compression: permessage-deflate on the server, offered by every client (nil: off, not offered).
    static func start(clients: Int, compression: SocketWebSocketCompression? = nil) async throws -> FanOutFixture {
        var logger = Logger(label: "bench-server")
        logger.logLevel = .error
        var configuration = SocketServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            pingInterval: .seconds(3600),
            pingTimeout: .seconds(3600),
            maxBufferedBytesPerConnection: 64 << 20
        )
        configuration.webSocketCompression = compression
        // The clients send no token (the server refuses to start without authentication unless told).
        configuration.allowAnonymous = true
        let server = SocketServer(configuration: configuration, logger: logger)
        try await server.start()
        guard let port = server.localPort else { throw FixtureError(message: "server has no port") }
        var descriptors: [Int32] = []
        var rooms: [String] = []
        for index in 0..<clients {
            let (descriptor, sid) = try RawSocketIOClient.connect(port: port, offerCompression: compression != nil)
            descriptors.append(descriptor)
            let room = "r\(index)"
            _ = await server.gateway.joinRoom(sid, room: room, namespace: "/")
            rooms.append(room)
        }
        return FanOutFixture(server: server, descriptors: descriptors, rooms: rooms)
    }

    /// Waits (up to 5 s) until the drain thread has seen no bytes for 20 ms.
    func waitForDrain() {
        var last = -1
        for _ in 0..<250 {
            let now = self.drained.value
            if now == last { return }
            last = now
            usleep(20_000)
        }
    }

    func stop() async throws {
        self.stopping.add(1)
        for descriptor in self.descriptors { close(descriptor) }
        try await self.server.shutdown()
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

/// A counter shared with the drain thread.
final class DrainCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    func add(_ count: Int) {
        self.lock.lock()
        self.total += count
        self.lock.unlock()
    }
    var value: Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.total
    }
}

/// The client side of the WebSocket handshake and Socket.IO CONNECT, with blocking sockets.
enum RawSocketIOClient {
    /// Connects, upgrades, connects to namespace `/`; returns the socket and the Socket.IO sid.
    /// `offerCompression`: the upgrade offers permessage-deflate (the drain thread never inflates: it counts bytes).
    static func connect(port: Int, offerCompression: Bool = false) throws -> (Int32, String) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw FixtureError(message: "socket() failed: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw FixtureError(message: "connect() failed: \(errno)") }
        var reader = FrameReader(descriptor: descriptor)
        try reader.send(
            Array(
                ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    + (offerCompression
                        ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "")
                    + "\r\n")
                    .utf8
            )
        )
        try reader.readHTTPHead()
        let open = try reader.readTextFrame()
        guard open.first == UInt8(ascii: "0") else { throw FixtureError(message: "expected an Engine.IO OPEN") }
        try reader.sendMaskedText(Array("40".utf8))
        while true {
            let frame = try reader.readTextFrame()
            let text = String(decoding: frame, as: UTF8.self)
            if text.hasPrefix("40") {
                guard let start = text.range(of: #""sid":""#), let end = text[start.upperBound...].firstIndex(of: "\"")
                else {
                    throw FixtureError(message: "CONNECT reply without sid: \(text)")
                }
                return (descriptor, String(text[start.upperBound..<end]))
            }
        }
    }

    struct FrameReader {
        let descriptor: Int32
        var pending: [UInt8] = []

        func send(_ bytes: [UInt8]) throws {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(self.descriptor, $0.baseAddress, $0.count) }
                guard written > 0 else { throw FixtureError(message: "write() failed: \(errno)") }
                offset += written
            }
        }

        func sendMaskedText(_ payload: [UInt8]) throws {
            precondition(payload.count < 126)
            let mask: [UInt8] = [1, 2, 3, 4]
            var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
            for (index, byte) in payload.enumerated() { frame.append(byte ^ mask[index % 4]) }
            try self.send(frame)
        }

        mutating func fill(_ count: Int) throws {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while self.pending.count < count {
                let read = chunk.withUnsafeMutableBytes { Glibc.read(self.descriptor, $0.baseAddress, $0.count) }
                guard read > 0 else { throw FixtureError(message: "connection closed during setup") }
                self.pending.append(contentsOf: chunk[0..<read])
            }
        }

        mutating func readHTTPHead() throws {
            let terminator: [UInt8] = [13, 10, 13, 10]
            while true {
                if let range = self.pending.firstRange(of: terminator) {
                    let head = String(decoding: self.pending[..<range.lowerBound], as: UTF8.self)
                    guard head.hasPrefix("HTTP/1.1 101") else {
                        throw FixtureError(message: "upgrade refused: \(head)")
                    }
                    self.pending.removeSubrange(..<range.upperBound)
                    return
                }
                try self.fill(self.pending.count + 1)
            }
        }

        mutating func readTextFrame() throws -> [UInt8] {
            try self.fill(2)
            var length = Int(self.pending[1] & 0x7f)
            var header = 2
            if length == 126 {
                try self.fill(4)
                length = Int(self.pending[2]) << 8 | Int(self.pending[3])
                header = 4
            }
            try self.fill(header + length)
            let payload = Array(self.pending[header..<(header + length)])
            self.pending.removeSubrange(..<(header + length))
            return payload
        }
    }
}
