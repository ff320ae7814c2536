package import NIOCore

/// Decides when to PING a subscribed connection and when to give it up; a pure value driven by `now`.
///
/// Any bytes from Redis count as a sign of life. When nothing has arrived for `interval`, the connection is
/// pinged (RESP2 allows PING in subscribed mode; the reply is `["pong", ""]`). When the ping's reply does not
/// come within `timeout`, the connection is declared dead. Detection takes at most `interval + timeout`.
package struct LivenessMonitor: Sendable, Hashable {
    /// What the connection should do after a `tick`.
    package enum Action: Sendable, Hashable {
        /// Nothing to do.
        case none
        /// Write a PING now.
        case sendPing
        /// The connection is dead: drop it and reconnect.
        case declareDead
    }

    /// How long the connection may be silent before it is pinged.
    package var interval: TimeAmount
    /// How long a ping may wait for its reply.
    package var timeout: TimeAmount
    private var lastActivity: NIODeadline
    private var pingSentAt: NIODeadline?

    /// Creates a monitor for a connection that became ready at `now`.
    package init(interval: TimeAmount = .seconds(1), timeout: TimeAmount = .seconds(2), now: NIODeadline) {
        self.interval = interval
        self.timeout = timeout
        self.lastActivity = now
        self.pingSentAt = nil
    }

    /// Records that bytes (a message, a pong, anything) arrived at `now`.
    package mutating func activity(at now: NIODeadline) {
        self.lastActivity = now
        self.pingSentAt = nil
    }

    /// Advances to `now` and says what to do.
    package mutating func tick(now: NIODeadline) -> Action {
        if let sentAt = self.pingSentAt {
            return now - sentAt >= self.timeout ? .declareDead : .none
        }
        if now - self.lastActivity >= self.interval {
            self.pingSentAt = now
            return .sendPing
        }
        return .none
    }

    /// Whether a ping is waiting for its reply.
    package var isAwaitingPong: Bool { self.pingSentAt != nil }
}
