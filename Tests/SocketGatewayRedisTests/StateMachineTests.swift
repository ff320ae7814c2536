import NIOCore
import SocketGatewayRedis
import Testing

/// A deterministic generator so jitter is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ReconnectBackoffTests {
    @Test func firstRetryIsFastThenDoublesUpToTheCap() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(5))
        var generator = SplitMix64(state: 1)
        let expectedBases: [Duration] = [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
            .milliseconds(3200), .seconds(5), .seconds(5), .seconds(5),
        ]
        for (attempt, base) in expectedBases.enumerated() {
            #expect(backoff.baseDelay(forAttempt: attempt) == base)
            let delay = backoff.nextDelay(using: &generator)
            #expect(delay >= base / 2 && delay <= base, "attempt \(attempt): \(delay)")
        }
        #expect(backoff.attempts == expectedBases.count)
        backoff.reset()
        let first = backoff.nextDelay(using: &generator)
        #expect(first >= .milliseconds(50) && first <= .milliseconds(100))
    }

    @Test func jitterSpreadsDelays() {
        var generator = SplitMix64(state: 42)
        var delays = Set<Duration>()
        for _ in 0..<20 {
            var backoff = ReconnectBackoff()
            delays.insert(backoff.nextDelay(using: &generator))
        }
        #expect(delays.count > 10)
    }
}

@Suite struct LivenessMonitorTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func pingsAfterSilenceAndDeclaresDeadWithoutPong() {
        var monitor = LivenessMonitor(interval: .seconds(1), timeout: .seconds(2), now: self.start)
        #expect(monitor.tick(now: self.start + .milliseconds(999)) == .none)
        #expect(monitor.tick(now: self.start + .seconds(1)) == .sendPing)
        #expect(monitor.isAwaitingPong)
        #expect(monitor.tick(now: self.start + .milliseconds(2999)) == .none)
        #expect(monitor.tick(now: self.start + .seconds(3)) == .declareDead)
    }

    @Test func anyActivityAnswersThePing() {
        var monitor = LivenessMonitor(interval: .seconds(1), timeout: .seconds(2), now: self.start)
        #expect(monitor.tick(now: self.start + .seconds(1)) == .sendPing)
        monitor.activity(at: self.start + .milliseconds(1500))
        #expect(!monitor.isAwaitingPong)
        #expect(monitor.tick(now: self.start + .seconds(2)) == .none)
        #expect(monitor.tick(now: self.start + .milliseconds(2500)) == .sendPing)
    }

    @Test func trafficKeepsItQuiet() {
        var monitor = LivenessMonitor(interval: .seconds(1), timeout: .seconds(2), now: self.start)
        for step in 1...50 {
            let now = self.start + .milliseconds(Int64(step) * 500)
            monitor.activity(at: now)
            #expect(monitor.tick(now: now + .milliseconds(400)) == .none)
        }
    }
}
