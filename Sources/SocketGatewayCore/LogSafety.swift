/// Text from the network made safe to put in a log line: at most `limit` bytes, control characters, invalid UTF-8
/// and terminal escapes written as visible escapes (`\n`, `\u{1B}`, `\x80`), and a trailing `…` when cut.
///
/// Every byte a client or a Redis publisher sent goes through this before it reaches a logger, so a log line stays
/// one line and a hostile peer cannot move the operator's cursor or forge log lines.
package enum LogSafe {
    /// The default number of bytes kept from a client's or publisher's input.
    package static let defaultLimit = 64

    /// An escaped excerpt of `bytes`.
    /// - Parameters:
    ///   - bytes: what the peer sent.
    ///   - limit: how many bytes to keep before cutting with `…`.
    package static func excerpt(_ bytes: some Collection<UInt8>, limit: Int = Self.defaultLimit) -> String {
        var output = ""
        output.reserveCapacity(min(bytes.count, limit) + 8)
        var iterator = bytes.prefix(limit).makeIterator()
        var pending: [UInt8] = []
        pending.reserveCapacity(4)
        // Decode UTF-8 scalar by scalar; a byte that does not start or continue a valid sequence is printed as \xNN.
        while let byte = pending.isEmpty ? iterator.next() : pending.removeFirst() {
            let length: Int
            switch byte {
            case 0x00..<0x80: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: length = 0
            }
            if length == 0 {
                Self.appendHex(byte, to: &output)
                continue
            }
            var sequence = [byte]
            while sequence.count < length, let next = pending.isEmpty ? iterator.next() : pending.removeFirst() {
                guard next & 0xC0 == 0x80 else {
                    pending.insert(next, at: 0)
                    break
                }
                sequence.append(next)
            }
            guard sequence.count == length,
                let scalar = String(validating: sequence, as: UTF8.self)?.unicodeScalars.first
            else {
                for invalid in sequence { Self.appendHex(invalid, to: &output) }
                continue
            }
            Self.append(scalar, to: &output)
        }
        if bytes.count > limit { output += "…" }
        return output
    }

    /// An escaped excerpt of a string (an event name, a room, a namespace).
    package static func text(_ text: String, limit: Int = 200) -> String {
        Self.excerpt(text.utf8, limit: limit)
    }

    private static func append(_ scalar: Unicode.Scalar, to output: inout String) {
        switch scalar {
        case "\n": output += "\\n"
        case "\r": output += "\\r"
        case "\t": output += "\\t"
        case "\\": output += "\\\\"
        default:
            if Self.isUnsafeOnTerminal(scalar) {
                output += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                output.unicodeScalars.append(scalar)
            }
        }
    }

    /// Whether a terminal would act on `scalar` instead of showing it: C0 and C1 controls, DEL, the line and
    /// paragraph separators, and the bidirectional overrides that reorder what a terminal shows.
    package static func isUnsafeOnTerminal(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return value < 0x20 || (0x7F...0x9F).contains(value) || (0x202A...0x202E).contains(value)
            || (0x2066...0x2069).contains(value) || value == 0x2028 || value == 0x2029
    }

    private static func appendHex(_ byte: UInt8, to output: inout String) {
        let digits = Array("0123456789ABCDEF".utf8)
        output += "\\x"
        output.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
        output.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0x0F)]))
    }
}

/// Limits how often one kind of warning is logged: the first at once, then at most one per `interval`, each
/// carrying how many were suppressed since the previous one. Time is passed in.
package struct LogRateLimiter: Sendable {
    /// The shortest time between two logged lines.
    package let interval: Duration
    private var lastLogged: ContinuousClock.Instant?
    private var suppressed = 0

    /// Creates a limiter that logs at most once per `interval`.
    package init(interval: Duration) {
        self.interval = interval
    }

    /// Whether to log an occurrence seen at `now`; when so, how many were suppressed since the last line.
    package mutating func admit(at now: ContinuousClock.Instant) -> Int? {
        if let lastLogged, now - lastLogged < self.interval {
            self.suppressed += 1
            return nil
        }
        self.lastLogged = now
        defer { self.suppressed = 0 }
        return self.suppressed
    }
}
