import Testing

@testable import SocketGatewayCore

@Suite struct LogSafetyTests {
    @Test func printableTextIsKeptAsItIs() {
        #expect(LogSafe.excerpt(Array("sheet:sync:completed é 日本".utf8)) == "sheet:sync:completed é 日本")
    }

    @Test func controlsAndTerminalEscapesBecomeVisible() {
        #expect(LogSafe.text("a\nb\r\tc\\") == #"a\nb\r\tc\\"#)
        #expect(LogSafe.text("\u{1B}[31mred\u{7}") == #"\u{1B}[31mred\u{7}"#)
        #expect(LogSafe.text("x\u{202E}y\u{85}") == #"x\u{202E}y\u{85}"#)
    }

    @Test func invalidUTF8IsWrittenAsHexBytes() {
        #expect(LogSafe.excerpt([0x61, 0xFF, 0x62]) == #"a\xFFb"#)
        #expect(LogSafe.excerpt([0xC3]) == #"\xC3"#, "a truncated sequence")
        #expect(LogSafe.excerpt([0xE2, 0x82, 0x41]) == #"\xE2\x82A"#, "a sequence broken by an ASCII byte")
        #expect(LogSafe.excerpt([0xED, 0xA0, 0x80]) == #"\xED\xA0\x80"#, "a UTF-16 surrogate")
        #expect(LogSafe.excerpt([0xC0, 0xAF]) == #"\xC0\xAF"#, "an overlong encoding")
    }

    @Test func longInputIsCutAtTheLimit() {
        let long = Array(repeating: UInt8(ascii: "x"), count: 100)
        #expect(LogSafe.excerpt(long) == String(repeating: "x", count: 64) + "…")
        #expect(LogSafe.excerpt(long, limit: 100) == String(repeating: "x", count: 100))
    }

    @Test func rateLimiterLogsOncePerIntervalAndCountsTheRest() {
        var limiter = LogRateLimiter(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(limiter.admit(at: start) == 0)
        #expect(limiter.admit(at: start + .seconds(1)) == nil)
        #expect(limiter.admit(at: start + .seconds(9)) == nil)
        #expect(limiter.admit(at: start + .seconds(10)) == 2)
        #expect(limiter.admit(at: start + .seconds(11)) == nil)
        #expect(limiter.admit(at: start + .seconds(25)) == 1)
    }
}
