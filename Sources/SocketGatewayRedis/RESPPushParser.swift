import NIOCore

/// Cuts the replies that make up nearly all of a subscribed connection's traffic — a RESP array of one to four
/// bulk strings (`message`, `smessage`, `pmessage`, `pong`) — straight out of the received bytes, as slices that
/// share the read buffer's storage: one array per push, and no copy or allocation per string (hiredis makes a
/// reply object and a copy of every string, and turning that into a ``RESPValue`` made another copy).
///
/// It only recognises what is certainly such an array and leaves everything else (status, error and integer
/// replies, nulls, nested arrays, a length Redis would not write) to hiredis's reader, which reads every reply
/// type and reports protocol errors. What it accepts, hiredis decodes to the same ``RESPValue``.
enum RESPPushParser {
    /// What the bytes at the reader index hold.
    enum Step: Equatable {
        /// One array of bulk strings (each a slice of the bytes); the reader index moved past it.
        case push([RESPValue])
        /// The start of such an array, not complete yet: wait for more bytes (nothing was read).
        case incomplete
        /// Not such an array, or not one this parser takes: hand the bytes to the general reader (nothing was
        /// read).
        case other
    }

    /// The most elements of an array this parser takes (`pmessage` has four).
    static let maximumElements = 4
    /// The longest bulk string it takes: Redis's own limit (`proto-max-bulk-len`, 512 MB).
    static let maximumBulkLength = 512 * 1024 * 1024

    /// Reads one array of bulk strings at `buffer`'s reader index.
    static func parse(_ buffer: inout ByteBuffer) -> Step {
        var elements = ElementRanges()
        let scanned = buffer.withUnsafeReadableBytes { bytes in Self.scan(bytes, into: &elements) }
        guard case .complete(let length) = scanned else {
            return scanned == .incomplete ? .incomplete : .other
        }
        var values: [RESPValue] = []
        values.reserveCapacity(elements.count)
        let base = buffer.readerIndex
        for index in 0..<elements.count {
            let range = elements[index]
            values.append(.bulkString(buffer.getSlice(at: base + range.lowerBound, length: range.count)!))
        }
        buffer.moveReaderIndex(forwardBy: length)
        return .push(values)
    }

    private enum Scan: Equatable {
        case complete(length: Int)
        case incomplete
        case other
    }

    /// Where each bulk string's bytes are, as offsets from the reader index (at most ``maximumElements``).
    private struct ElementRanges {
        private var ranges: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
        private(set) var count = 0

        subscript(index: Int) -> Range<Int> {
            switch index {
            case 0: return self.ranges.0
            case 1: return self.ranges.1
            case 2: return self.ranges.2
            default: return self.ranges.3
            }
        }

        mutating func append(_ range: Range<Int>) {
            switch self.count {
            case 0: self.ranges.0 = range
            case 1: self.ranges.1 = range
            case 2: self.ranges.2 = range
            default: self.ranges.3 = range
            }
            self.count += 1
        }
    }

    private static func scan(_ bytes: UnsafeRawBufferPointer, into elements: inout ElementRanges) -> Scan {
        var index = 0
        let count: Int
        switch Self.header(UInt8(ascii: "*"), in: bytes, at: &index) {
        case .value(let value) where (1...Self.maximumElements).contains(value): count = value
        case .incomplete: return .incomplete
        default: return .other
        }
        for _ in 0..<count {
            let length: Int
            switch Self.header(UInt8(ascii: "$"), in: bytes, at: &index) {
            case .value(let value) where value <= Self.maximumBulkLength: length = value
            case .incomplete: return .incomplete
            default: return .other
            }
            guard bytes.count - index >= length + 2 else { return .incomplete }
            guard bytes[index + length] == UInt8(ascii: "\r"), bytes[index + length + 1] == UInt8(ascii: "\n") else {
                return .other
            }
            elements.append(index..<(index + length))
            index += length + 2
        }
        return .complete(length: index)
    }

    private enum Header: Equatable {
        case value(Int)
        case incomplete
        case other
    }

    /// Reads `<type><decimal>\r\n` at `index` (a non-negative decimal as Redis writes it: no sign, no leading
    /// zero, at most 10 digits) and moves `index` past it.
    private static func header(_ type: UInt8, in bytes: UnsafeRawBufferPointer, at index: inout Int) -> Header {
        var position = index
        guard position < bytes.count else { return .incomplete }
        guard bytes[position] == type else { return .other }
        position += 1
        var value = 0
        var digits = 0
        while true {
            guard position < bytes.count else { return .incomplete }
            let byte = bytes[position]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            if digits == 1 && value == 0 { return .other }  // a leading zero
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 10 else { return .other }
            position += 1
        }
        guard digits > 0, bytes[position] == UInt8(ascii: "\r") else { return .other }
        guard position + 1 < bytes.count else { return .incomplete }
        guard bytes[position + 1] == UInt8(ascii: "\n") else { return .other }
        index = position + 2
        return .value(value)
    }
}
