import NIOCore

/// A token bucket: holds up to `burst` tokens, gains one every `interval`, and each admitted event takes one.
///
/// Pure and exact: time comes in as `now`, and the bucket counts its credit in whole nanoseconds (one token is
/// `interval` nanoseconds of credit), so tests at synthetic times see no rounding.
struct TokenBucket: Hashable {
    /// Nanoseconds of credit one token costs (1 s / rate).
    let interval: Int64
    /// The most credit the bucket holds: `burst` tokens.
    let capacity: Int64
    /// Credit at `updatedAt`, in nanoseconds.
    private var credit: Int64
    private var updatedAt: NIODeadline

    /// A full bucket at `now`.
    /// - Parameters:
    ///   - burst: Events admitted at once from a full bucket (at least 1).
    ///   - interval: The time that earns one token back (at least 1 ns).
    ///   - now: The current time.
    init(burst: Int, interval: TimeAmount, now: NIODeadline) {
        self.interval = max(1, interval.nanoseconds)
        let (capacity, overflow) = Int64(max(1, burst)).multipliedReportingOverflow(by: self.interval)
        self.capacity = overflow ? Int64.max / 2 : capacity
        self.credit = self.capacity
        self.updatedAt = now
    }

    /// A full bucket for `limit` at `now`.
    init(limit: SocketEventRateLimit, now: NIODeadline) {
        let perSecond = max(limit.eventsPerSecond, 1e-6)
        self.init(burst: limit.burst, interval: .nanoseconds(Int64((1e9 / perSecond).rounded())), now: now)
    }

    /// Whole tokens available now (for tests and logs).
    var tokens: Int64 { self.credit / self.interval }

    /// Takes one token if there is one at `now`.
    /// - Returns: Whether the event is admitted.
    mutating func take(at now: NIODeadline) -> Bool {
        if now > self.updatedAt {
            let elapsed = (now - self.updatedAt).nanoseconds
            self.credit = elapsed >= self.capacity - self.credit ? self.capacity : self.credit + elapsed
            self.updatedAt = now
        }
        guard self.credit >= self.interval else { return false }
        self.credit -= self.interval
        return true
    }
}
