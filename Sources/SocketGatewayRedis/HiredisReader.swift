import CHiredis
import NIOCore

/// Turns bytes from Redis into `RESPValue`s: pub/sub pushes (arrays of bulk strings) with ``RESPPushParser``, as
/// slices of the received bytes, and every other reply with hiredis's reply reader.
///
/// This is the only file that touches hiredis pointers. The reader is created in `handlerAdded` and freed in
/// `handlerRemoved`; the handler is confined to its channel's event loop, so the pointer never crosses threads.
/// A protocol error (bytes that are not RESP) is fired as a `RedisError` with code `.protocolError` and closes
/// the connection, since the stream cannot be resynchronised.
final class RESPReplyDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = RESPValue

    private var reader: UnsafeMutablePointer<redisReader>?
    private var failed = false
    /// The start of a push that ``RESPPushParser`` found incomplete (hiredis holds nothing meanwhile); read again
    /// with the next bytes.
    private var carried: ByteBuffer?

    init() {}

    func handlerAdded(context: ChannelHandlerContext) {
        self.reader = redisReaderCreate()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let reader = self.reader {
            redisReaderFree(reader)
        }
        self.reader = nil
        self.carried = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let reader = self.reader, !self.failed else { return }
        var bytes = Self.unwrapInboundIn(data)
        // While hiredis is between replies, the pushes at the front are cut out of the bytes as they are.
        if reader.pointee.ridx == -1 && reader.pointee.pos == reader.pointee.len {
            if var carried = self.carried {
                self.carried = nil
                carried.writeBuffer(&bytes)
                bytes = carried
            }
            pushes: while bytes.readableBytes > 0 {
                switch RESPPushParser.parse(&bytes) {
                case .push(let values):
                    context.fireChannelRead(Self.wrapInboundOut(.array(values)))
                    if self.reader == nil || self.failed { return }  // removed while delivering
                case .incomplete:
                    self.carried = bytes
                    return
                case .other:
                    break pushes
                }
            }
            if bytes.readableBytes == 0 { return }
        }
        let fed = bytes.withUnsafeReadableBytes { raw -> Int32 in
            guard let base = raw.baseAddress, raw.count > 0 else { return REDIS_OK }
            return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        guard fed == REDIS_OK else {
            self.fail(context: context, reader: reader)
            return
        }
        while true {
            var reply: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
                self.fail(context: context, reader: reader)
                return
            }
            guard let reply else { break }
            let value = Self.convert(
                reply.assumingMemoryBound(to: redisReply.self),
                allocator: context.channel.allocator
            )
            freeReplyObject(reply)
            context.fireChannelRead(Self.wrapInboundOut(value))
            if self.reader == nil { return }  // removed while delivering
        }
    }

    private func fail(context: ChannelHandlerContext, reader: UnsafeMutablePointer<redisReader>) {
        self.failed = true
        let message = withUnsafeBytes(of: &reader.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        context.fireErrorCaught(RedisError(code: .protocolError, message: "unreadable reply from Redis: \(message)"))
        context.close(promise: nil)
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>, allocator: ByteBufferAllocator) -> RESPValue
    {
        let pointee = reply.pointee
        switch pointee.type {
        case REDIS_REPLY_STATUS:
            return .simpleString(Self.string(pointee))
        case REDIS_REPLY_ERROR:
            return .error(Self.string(pointee))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(pointee.integer))
        case REDIS_REPLY_STRING:
            var buffer = allocator.buffer(capacity: pointee.len)
            if let str = pointee.str, pointee.len > 0 {
                buffer.writeBytes(UnsafeRawBufferPointer(start: str, count: pointee.len))
            }
            return .bulkString(buffer)
        case REDIS_REPLY_ARRAY:
            var values: [RESPValue] = []
            values.reserveCapacity(pointee.elements)
            if let elements = pointee.element {
                for index in 0..<pointee.elements {
                    if let element = elements[index] {
                        values.append(Self.convert(element, allocator: allocator))
                    } else {
                        values.append(.null)
                    }
                }
            }
            return .array(values)
        default:
            return .null
        }
    }

    private static func string(_ reply: redisReply) -> String {
        guard let str = reply.str, reply.len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
    }
}
