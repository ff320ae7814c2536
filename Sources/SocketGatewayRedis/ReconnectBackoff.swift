/// How long a Redis client waits between reconnect attempts: exponential backoff with jitter.
///
/// Set it in `RedisSubscriberConfiguration` or `RedisPublisherConfiguration`; the clients keep the count.
/// Attempt `n` (from 0) waits a random delay in `[base/2, base]` where `base = min(maximum, initial × 2ⁿ)`.
/// With the defaults the first retry comes after 50–100 ms and later ones are capped at 5 s.
public struct ReconnectBackoff: Sendable, Hashable {
    /// The base delay of the first retry.
    public var initial: Duration
    /// The largest base delay.
    public var maximum: Duration
    /// Failed attempts since the last success.
    package private(set) var attempts: Int = 0

    /// Creates a backoff.
    /// - Parameters:
    ///   - initial: The base delay of the first retry (the actual delay is 50–100 % of it).
    ///   - maximum: The cap on the base delay.
    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        precondition(initial > .zero && maximum >= initial, "backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    package mutating func nextDelay(using generator: inout some RandomNumberGenerator) -> Duration {
        let base = self.baseDelay(forAttempt: self.attempts)
        self.attempts += 1
        let halfNanos = Self.nanoseconds(base) / 2
        let jitter = halfNanos > 0 ? Int64.random(in: 0...halfNanos, using: &generator) : 0
        return .nanoseconds(halfNanos + jitter)
    }

    /// Records a failed attempt using the system random number generator.
    package mutating func nextDelay() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return self.nextDelay(using: &generator)
    }

    /// Starts over after a successful connection.
    package mutating func reset() {
        self.attempts = 0
    }

    /// The base delay (before jitter) of attempt `attempt` (from 0).
    package func baseDelay(forAttempt attempt: Int) -> Duration {
        var delay = self.initial
        var remaining = attempt
        while remaining > 0 && delay < self.maximum {
            delay *= 2
            remaining -= 1
        }
        return min(delay, self.maximum)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
