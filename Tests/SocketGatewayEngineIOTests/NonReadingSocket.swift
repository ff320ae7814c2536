import NIOCore

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

// The C functions under names the class's own methods do not shadow.
private func posixClose(_ fd: Int32) { _ = close(fd) }
private func posixSend(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
    send(fd, bytes, count, flags)
}

/// A blocking-free POSIX TCP client that can stop reading: a small receive buffer and no reads after the handshake,
/// so the server sees a peer that takes nothing, as an attacker's client would. Every wait is bounded.
final class NonReadingSocket {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    enum SendResult: Equatable {
        /// Every byte was handed to the kernel.
        case sent
        /// The kernel took nothing more within the bounded wait (the server stopped reading).
        case blocked
        /// The connection was closed or reset by the server.
        case closed
    }

    private let fd: Int32
    private var closed = false

    /// Connects to 127.0.0.1:`port` with SO_RCVBUF set to `receiveBuffer` before the connection is made (so the
    /// window the server sees stays small).
    init(port: Int, receiveBuffer: Int32 = 4096) throws {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        self.fd = fd
        var size = receiveBuffer
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            posixClose(fd)
            throw Failure(description: "connect() failed: errno \(errno)")
        }
    }

    deinit {
        if !self.closed { posixClose(self.fd) }
    }

    /// Sends the WebSocket upgrade request and reads exactly the response head (byte by byte, so no frame after it
    /// is taken from the kernel); returns the status line.
    func upgrade(_ target: String) throws -> String {
        let request =
            "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard try self.send(Array(request.utf8)) == .sent else {
            throw Failure(description: "could not send the upgrade")
        }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        for _ in 0..<8192 {
            // 15 s: the server answers in milliseconds, unless the machine is loaded.
            guard self.waitReadable(milliseconds: 15_000) else { throw Failure(description: "no upgrade response") }
            guard recv(self.fd, &byte, 1, 0) == 1 else {
                throw Failure(description: "connection closed during upgrade")
            }
            head.append(byte)
            if head.count >= 4, head.suffix(4) == [13, 10, 13, 10] { break }
        }
        let text = String(decoding: head, as: UTF8.self)
        return String(text.prefix { $0 != "\r" })
    }

    /// Writes all of `bytes`, waiting (bounded: `patience` polls of 10 ms without progress; 0.5 s by default)
    /// while the kernel's send buffer is full. `.blocked` may leave part of `bytes` unsent.
    func send(_ bytes: [UInt8], patience: Int = 50) throws -> SendResult {
        var offset = 0
        var idlePolls = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                posixSend(self.fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                offset += written
                idlePolls = 0
                continue
            }
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK {
                idlePolls += 1
                if idlePolls > patience { return .blocked }
                var descriptor = pollfd(fd: self.fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, 10)
                continue
            }
            if error == EINTR { continue }
            if error == EPIPE || error == ECONNRESET { return .closed }
            throw Failure(description: "send() failed: errno \(error)")
        }
        return .sent
    }

    /// Whether the server has closed or reset the connection, without reading anything (POLLRDHUP: the peer's FIN
    /// or RST arrived, whatever is still unread in the receive buffer).
    func peerHasClosed() -> Bool {
        let pollRDHUP: Int16 = 0x2000  // POLLRDHUP, not exported by Glibc's module
        var descriptor = pollfd(fd: self.fd, events: pollRDHUP, revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        return descriptor.revents & Int16(0x2000 | POLLHUP | POLLERR) != 0
    }

    /// Waits (bounded: `attempts` × 20 ms) until the server has closed or reset the connection.
    func waitUntilPeerCloses(attempts: Int = 1_500) async throws -> Bool {
        for _ in 0..<attempts {
            if self.peerHasClosed() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return self.peerHasClosed()
    }

    private func waitReadable(milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, milliseconds) > 0
    }

    /// A masked client frame.
    static func frame(opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
        precondition(payload.count < 126)
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode, 0x80 | UInt8(payload.count)]
        bytes += mask
        for (index, byte) in payload.enumerated() { bytes.append(byte ^ mask[index % 4]) }
        return bytes
    }
}
