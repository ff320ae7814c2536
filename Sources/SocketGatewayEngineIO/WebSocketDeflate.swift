import CZlib
import NIOConcurrencyHelpers
import NIOCore

/// The only file that touches zlib's pointers: raw DEFLATE as permessage-deflate uses it (RFC 7692 §7.2), and the
/// gzip and zlib formats of HTTP's `Content-Encoding: gzip` / `deflate` (RFC 9110 §8.4.1) for polling responses.

/// The zlib `windowBits` of each format, all with a 15-bit window.
enum ZlibFormat: Int32, Sendable {
    /// Raw DEFLATE blocks, no header (permessage-deflate).
    case raw = -15
    /// The zlib format (RFC 1950), HTTP's `deflate`.
    case zlib = 15
    /// The gzip format (RFC 1952), HTTP's `gzip`.
    case gzip = 31
}

/// Compresses one message at a time, with no context kept between messages (`server_no_context_takeover`).
///
/// Not Sendable: one thread uses it at a time (``WebSocketDeflaterPool`` hands it out). A deflater with a 15-bit
/// window holds about 256 KiB, so there are a few per process, not one per connection.
final class WebSocketDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    /// - Parameter format: Raw DEFLATE (permessage-deflate, the default), or zlib/gzip for whole HTTP bodies.
    /// - Returns: nil when zlib cannot allocate its state.
    init?(format: ZlibFormat = .raw) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        // 15-bit window, zlib's default level and memory.
        guard socketgateway_deflateInit2(self.stream, Z_DEFAULT_COMPRESSION, format.rawValue, 8) == Z_OK else {
            self.stream.deinitialize(count: 1)
            self.stream.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// Appends the compressed form of `input` to `output`: DEFLATE blocks ended by an empty stored block whose
    /// `00 00 FF FF` tail is removed (§7.2.1), as the payload of a frame with RSV1 set.
    func compress(_ input: ByteBufferView, into output: inout ByteBuffer) {
        deflateReset(self.stream)
        input.withUnsafeBytes { inputBytes in
            let base = inputBytes.baseAddress.map {
                UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self))
            }
            self.stream.pointee.next_in = base
            self.stream.pointee.avail_in = UInt32(inputBytes.count)
            var capacity = Int(deflateBound(self.stream, UInt(inputBytes.count))) + 16
            while true {
                let written = output.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { outputBytes in
                    self.stream.pointee.next_out = outputBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    self.stream.pointee.avail_out = UInt32(outputBytes.count)
                    _ = deflate(self.stream, Z_SYNC_FLUSH)
                    return outputBytes.count - Int(self.stream.pointee.avail_out)
                }
                // Done when all input is consumed and zlib did not fill the space it was given.
                if written == 0 || (self.stream.pointee.avail_in == 0 && self.stream.pointee.avail_out != 0) { break }
                capacity = 4096
            }
            self.stream.pointee.next_in = nil
            self.stream.pointee.next_out = nil
        }
        // Z_SYNC_FLUSH ends with an empty stored block, 00 00 FF FF: the receiver appends it back.
        output.moveWriterIndex(to: output.writerIndex - 4)
    }

    /// Appends the whole compressed stream of `input` (header, blocks, trailer: Z_FINISH) to `output`, in the
    /// format the deflater was made with. `output` grows by at most zlib's bound for the input's size.
    func compressWhole(_ input: ByteBufferView, into output: inout ByteBuffer) {
        deflateReset(self.stream)
        input.withUnsafeBytes { inputBytes in
            self.stream.pointee.next_in = inputBytes.baseAddress.map {
                UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self))
            }
            self.stream.pointee.avail_in = UInt32(inputBytes.count)
            // deflateBound is enough for Z_FINISH in one call (zlib's guarantee).
            let capacity = Int(deflateBound(self.stream, UInt(inputBytes.count)))
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { outputBytes in
                self.stream.pointee.next_out = outputBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                self.stream.pointee.avail_out = UInt32(capacity)
                _ = deflate(self.stream, Z_FINISH)
                return capacity - Int(self.stream.pointee.avail_out)
            }
            self.stream.pointee.next_in = nil
            self.stream.pointee.next_out = nil
        }
    }
}

/// A few deflaters shared by every connection of the process: a message is compressed by whichever event loop
/// needs it first, with a deflater taken from here and given back.
final class WebSocketDeflaterPool: @unchecked Sendable {
    // @unchecked: `idle` is only touched under `lock`; a deflater is used by one thread between take and give.
    private let lock = NIOLock()
    private var idle: [WebSocketDeflater] = []
    private let maxIdle: Int

    private let format: ZlibFormat

    /// The pool every endpoint uses for permessage-deflate.
    static let shared = WebSocketDeflaterPool(maxIdle: System.coreCount)
    /// The pool of polling responses sent with `Content-Encoding: gzip`.
    static let gzip = WebSocketDeflaterPool(maxIdle: System.coreCount, format: .gzip)
    /// The pool of polling responses sent with `Content-Encoding: deflate`.
    static let zlib = WebSocketDeflaterPool(maxIdle: System.coreCount, format: .zlib)

    init(maxIdle: Int, format: ZlibFormat = .raw) {
        self.maxIdle = max(maxIdle, 1)
        self.format = format
    }

    /// Runs `body` with a deflater (nil only when zlib cannot allocate one).
    func withDeflater<Result>(_ body: (WebSocketDeflater?) -> Result) -> Result {
        let deflater = self.lock.withLock { self.idle.popLast() } ?? WebSocketDeflater(format: self.format)
        defer {
            if let deflater {
                self.lock.withLock {
                    if self.idle.count < self.maxIdle { self.idle.append(deflater) }
                }
            }
        }
        return body(deflater)
    }
}

/// Inflates a client's compressed messages (RFC 7692 §7.2.2) with a hard cap on the inflated size.
///
/// Event-loop confined: the WebSocket handler creates it on the first compressed message and frees it in
/// `handlerRemoved`. The client agreed to `client_no_context_takeover`, so the stream is reset after each message.
final class WebSocketInflater {
    /// Why a compressed message could not be inflated.
    enum Failure: Error, Equatable {
        /// The message inflates to more than the limit (a zip bomb, or just too large): 1009.
        case tooLarge(limit: Int)
        /// The bytes are not valid DEFLATE data: 1007.
        case corrupt
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let format: ZlibFormat

    /// - Parameter format: Raw DEFLATE (permessage-deflate, the default); zlib or gzip read whole streams (tests
    ///   read the server's compressed polling responses with it).
    /// - Returns: nil when zlib cannot allocate its state.
    init?(format: ZlibFormat = .raw) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        self.format = format
        guard socketgateway_inflateInit2(self.stream, format.rawValue) == Z_OK else {
            self.stream.deinitialize(count: 1)
            self.stream.deallocate()
            return nil
        }
    }

    deinit {
        inflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// The inflated message, or why not. Stops as soon as the output passes `limit` bytes, so a bomb costs at
    /// most `limit` bytes of memory and the CPU to produce them.
    func inflate(_ compressed: ByteBuffer, limit: Int) -> Result<ByteBuffer, Failure> {
        defer { inflateReset(self.stream) }
        var input = compressed
        // A raw message lost its sync-flush tail (§7.2.2); a whole stream has its own end.
        let tail = self.format == .raw ? 4 : 0
        if tail > 0 { input.writeBytes([0x00, 0x00, 0xFF, 0xFF]) }
        var output = ByteBuffer()
        output.reserveCapacity(min(max(compressed.readableBytes * 4, 256), limit + 1))
        return input.withUnsafeReadableBytes { inputBytes -> Result<ByteBuffer, Failure> in
            self.stream.pointee.next_in = UnsafeMutablePointer(
                mutating: inputBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
            self.stream.pointee.avail_in = UInt32(inputBytes.count)
            defer {
                self.stream.pointee.next_in = nil
                self.stream.pointee.next_out = nil
            }
            while true {
                if output.readableBytes > limit { return .failure(.tooLarge(limit: limit)) }
                // Never room past one byte over the limit: reaching it is the answer.
                let room = min(1 << 16, limit + 1 - output.readableBytes)
                var status: Int32 = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { outputBytes in
                    self.stream.pointee.next_out = outputBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    self.stream.pointee.avail_out = UInt32(room)
                    status = CZlib.inflate(self.stream, Z_SYNC_FLUSH)
                    return room - Int(self.stream.pointee.avail_out)
                }
                let inputLeft = self.stream.pointee.avail_in
                let outputFull = self.stream.pointee.avail_out == 0
                switch status {
                case Z_STREAM_END:
                    // The client ended the stream (BFINAL) before the tail we appended: nothing else may follow.
                    return inputLeft <= tail ? .success(output) : .failure(.corrupt)
                case Z_OK where inputLeft == 0 && !outputFull:
                    // A whole stream must reach its end: one that stops short is truncated.
                    return tail > 0 ? .success(output) : .failure(.corrupt)
                case Z_OK:
                    continue
                case Z_BUF_ERROR where inputLeft == 0:
                    // No progress possible and nothing left to read: all of it is out.
                    return tail > 0 ? .success(output) : .failure(.corrupt)
                default:
                    return .failure(.corrupt)
                }
            }
        }
    }
}
/// Rewrites the server's own frames (unmasked, FIN set, as ``WebSocketFrameBytes`` builds them) for a client that
/// agreed to permessage-deflate: every text or binary frame whose payload reaches the threshold is compressed
/// (RSV1 set) when that makes it smaller; the others are kept as they are (RSV1 clear, allowed by §6).
enum WebSocketDeflateFrames {
    static func compress(
        _ frames: ByteBuffer,
        threshold: Int,
        pool: WebSocketDeflaterPool = .shared
    ) -> ByteBuffer {
        guard frames.readableBytes >= threshold + 2 else { return frames }
        // Parse first: nothing to compress means no copy at all.
        var spans: [(headerStart: Int, payloadStart: Int, payloadLength: Int)] = []
        var index = frames.readerIndex
        var anyLarge = false
        while index < frames.writerIndex, let first = frames.getInteger(at: index, as: UInt8.self),
            let second = frames.getInteger(at: index + 1, as: UInt8.self)
        {
            let length7 = Int(second & 0x7F)
            let (payloadStart, payloadLength): (Int, Int)
            switch length7 {
            case 126:
                (payloadStart, payloadLength) = (index + 4, Int(frames.getInteger(at: index + 2, as: UInt16.self) ?? 0))
            case 127:
                (payloadStart, payloadLength) = (
                    index + 10, Int(frames.getInteger(at: index + 2, as: UInt64.self) ?? 0)
                )
            default: (payloadStart, payloadLength) = (index + 2, length7)
            }
            let opcode = first & 0x0F
            if (opcode == 0x1 || opcode == 0x2) && payloadLength >= threshold { anyLarge = true }
            spans.append((index, payloadStart, payloadLength))
            index = payloadStart + payloadLength
        }
        guard anyLarge else { return frames }
        return pool.withDeflater { deflater in
            guard let deflater else { return frames }
            var output = ByteBuffer()
            output.reserveCapacity(frames.readableBytes)
            var compressed = ByteBuffer()
            for span in spans {
                let first = frames.getInteger(at: span.headerStart, as: UInt8.self)!
                let opcode = first & 0x0F
                if (opcode == 0x1 || opcode == 0x2) && span.payloadLength >= threshold {
                    compressed.clear()
                    deflater.compress(
                        frames.viewBytes(at: span.payloadStart, length: span.payloadLength)!,
                        into: &compressed
                    )
                    if compressed.readableBytes < span.payloadLength {
                        let frameOpcode: WebSocketFrameBytes.Opcode = opcode == 0x1 ? .text : .binary
                        WebSocketFrameBytes.writeHeader(
                            opcode: frameOpcode,
                            payloadLength: compressed.readableBytes,
                            into: &output
                        )
                        // RSV1 marks a compressed message (§6).
                        let headerStart =
                            output.writerIndex
                            - WebSocketFrameBytes.headerLength(
                                payloadLength: compressed.readableBytes
                            )
                        output.setInteger(first | 0x40, at: headerStart)
                        output.writeBuffer(&compressed)
                        continue
                    }
                }
                var frame = frames.getSlice(
                    at: span.headerStart,
                    length: span.payloadStart + span.payloadLength - span.headerStart
                )!
                output.writeBuffer(&frame)
            }
            return output
        }
    }
}
