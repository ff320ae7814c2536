package import Logging
import NIOConcurrencyHelpers

/// One kind of warning shared by every connection of a server: logged at once, then at most once per interval,
/// each line carrying how many were suppressed since the last one (so a flood gives a bounded number of lines).
package final class RateLimitedWarning: Sendable {
    private let limiter: NIOLockedValueBox<LogRateLimiter>

    /// Creates a warning logged at most once per `interval`.
    package init(interval: Duration = .seconds(10)) {
        self.limiter = NIOLockedValueBox(LogRateLimiter(interval: interval))
    }

    /// Logs `message` at warning level unless one was logged less than the interval ago.
    package func log(
        _ logger: Logger,
        _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata = [:]
    ) {
        let now = ContinuousClock.now
        guard let suppressed = self.limiter.withLockedValue({ $0.admit(at: now) }) else { return }
        var metadata = metadata()
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.warning(message(), metadata: metadata)
    }
}
