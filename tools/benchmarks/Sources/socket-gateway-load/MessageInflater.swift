import Atomics
import CZlibLoad
import NIOCore

/// Inflates permessage-deflate messages (RFC 7692) for the clients on one event loop. The server compresses every
/// message on its own (`server_no_context_takeover`), so the stream is reset before each one. Confined to its loop.
final class MessageInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let allocator = ByteBufferAllocator()

    init() {
        // zlib keeps a pointer back to the stream, so it lives at one address for the inflater's life.
        self.stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = socketgateway_load_inflateInit2(self.stream, -15)
        precondition(status == Z_OK, "inflateInit2 failed (\(status))")
    }

    deinit {
        inflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// The message `compressed` holds (one WebSocket message's payload, without the 00 00 FF FF tail), or nil when
    /// it is not valid DEFLATE data.
    func inflate(_ compressed: ByteBuffer) -> ByteBuffer? {
        guard inflateReset(self.stream) == Z_OK else { return nil }
        var input = Array(compressed.readableBytesView)
        input.append(contentsOf: [0x00, 0x00, 0xFF, 0xFF])
        var output = self.allocator.buffer(capacity: max(256, input.count * 4))
        let stream = self.stream
        let ok = input.withUnsafeMutableBufferPointer { bytes -> Bool in
            stream.pointee.next_in = bytes.baseAddress
            stream.pointee.avail_in = UInt32(bytes.count)
            while true {
                var status = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 4096) { space in
                    stream.pointee.next_out = space.baseAddress?.assumingMemoryBound(to: UInt8.self)
                    stream.pointee.avail_out = UInt32(space.count)
                    status = CZlibLoad.inflate(stream, Z_SYNC_FLUSH)
                    return space.count - Int(stream.pointee.avail_out)
                }
                if status == Z_STREAM_END { return true }
                guard status == Z_OK || status == Z_BUF_ERROR else { return false }
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { return true }
            }
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        return ok ? output : nil
    }
}

/// Counts the bytes each client reads off its socket (HTTP upgrade, frame headers and payloads, compressed or not),
/// into its loop's recorder. First in the pipeline.
final class WireByteCounter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let recorder: LoadRecorder

    init(recorder: LoadRecorder) { self.recorder = recorder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data).readableBytes
        self.recorder.wireBytes.wrappingIncrement(by: bytes, ordering: .relaxed)
        context.fireChannelRead(data)
    }
}
