package import SocketGatewayCore

/// What became of one publish. Delivered exactly once per publish, on the publisher's event loop.
public enum PublishProgress: Sendable {
    /// Redis accepted the PUBLISH; this many subscribers received it.
    case published(subscribers: Int)
    /// Redis is unreachable and the message waits in the outbox (outbox mode only); it is sent on reconnect
    /// and nothing more is reported about it.
    case queued(reason: String)
    /// The message was not (or may not have been) published.
    case failed(RedisError)
}

/// What became of a publish made with a deadline: its progress, or that the deadline passed first.
package enum PublishOutcome: Sendable {
    /// What `PublishProgress` says, reported before the deadline.
    case progress(PublishProgress)
    /// No answer (nor failure, nor queuing) before the deadline; nothing more is reported. The message may still
    /// be published.
    case timedOut
}

extension EmitResult {
    /// What an emit published with a deadline came to, as both gateways report it.
    /// - Parameters:
    ///   - outcome: The publish's outcome.
    ///   - timeout: The deadline's distance (named in the reason).
    ///   - outboxOn: Whether a timed-out message stays queued (outbox) or may be lost.
    ///   - localDeliveries: Clients reached on this host.
    package init(_ outcome: PublishOutcome, timeout: Duration, outboxOn: Bool, localDeliveries: Int = 0) {
        switch outcome {
        case .progress(.published(let subscribers)):
            self.init(outcome: .published, localDeliveries: localDeliveries, redisSubscribers: subscribers)
        case .progress(.queued(let reason)):
            self.init(
                outcome: .queued,
                localDeliveries: localDeliveries,
                reason: "Redis unreachable, held in the outbox: \(reason)"
            )
        case .progress(.failed(let error)):
            self.init(outcome: .failed, localDeliveries: localDeliveries, reason: error.description)
        case .timedOut:
            self.init(
                outcome: outboxOn ? .queued : .failed,
                localDeliveries: localDeliveries,
                reason: "Redis did not answer within \(timeout)"
                    + (outboxOn ? "; the message stays queued" : "; it may still be published")
            )
        }
    }
}

/// Whom a publisher tells what became of a publish (the outbox's `Completion`).
enum PublishCallback {
    /// Told the progress; never `.timedOut` (it has no deadline).
    case progress(@Sendable (PublishProgress) -> Void)
    /// Told the progress, or `.timedOut` at its deadline (then nothing more).
    case timed(@Sendable (PublishOutcome) -> Void)

    func report(_ outcome: PublishOutcome) {
        switch self {
        case .progress(let completion):
            if case .progress(let progress) = outcome { completion(progress) }
        case .timed(let completion):
            completion(outcome)
        }
    }
}
