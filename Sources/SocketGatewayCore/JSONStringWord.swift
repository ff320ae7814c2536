/// Eight bytes of a JSON string's characters at a time: whether a word holds a byte that a string scan must look
/// at, so that the scans of ``JSONParser`` and ``PubSubEmitTarget`` step over the words that hold none.
enum JSONStringWord {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Whether one of `word`'s bytes is a quote or a backslash.
    @inline(__always)
    static func holdsQuoteOrBackslash(_ word: UInt64) -> Bool {
        Self.holdsZeroByte(word ^ (Self.ones &* UInt64(UInt8(ascii: "\""))))
            || Self.holdsZeroByte(word ^ (Self.ones &* UInt64(UInt8(ascii: "\\"))))
    }

    /// Whether each of `word`'s bytes is in 0x20...0x7F and none is a quote or a backslash: characters that need
    /// no look (no escape, no end, no control character, no UTF-8 to validate).
    @inline(__always)
    static func isPlainASCII(_ word: UInt64) -> Bool {
        // With no high bit set, `(x - 0x20…) & ~x & 0x80…` is not zero exactly when `x` has a byte below 0x20.
        word & Self.highs == 0 && (word &- Self.ones &* 0x20) & ~word & Self.highs == 0
            && !Self.holdsQuoteOrBackslash(word)
    }

    /// Whether one of `word`'s bytes is zero: `(x - 0x01…) & ~x & 0x80…` is not zero exactly when one is (it may
    /// mark bytes above a zero byte too, never a word without one).
    @inline(__always)
    private static func holdsZeroByte(_ word: UInt64) -> Bool {
        (word &- Self.ones) & ~word & Self.highs != 0
    }
}
