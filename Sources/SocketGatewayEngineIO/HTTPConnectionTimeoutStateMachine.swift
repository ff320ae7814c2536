import NIOCore

/// The time limits of one HTTP/1.1 connection, before it is upgraded to a WebSocket.
struct HTTPConnectionTimeouts: Equatable, Sendable {
    /// How long a connection may wait for the first byte of a request (fresh, or kept alive after a response).
    var idle: TimeAmount
    /// How long a request head may take from its first byte to its last.
    var header: TimeAmount
    /// How long a request body may take from the end of the head to its last byte.
    var body: TimeAmount
}

/// Which HTTP connection time limit ran out.
enum HTTPConnectionTimeoutKind: String, Equatable, Sendable {
    case idle
    case header
    case body
}

/// Decides when an HTTP connection has waited too long for its client (slowloris defence).
///
/// Phases: waiting for a request (idle timeout), a head started but not complete (header timeout), a body being
/// received (body timeout, counted from the end of the head, so a trickling body cannot keep it alive), and
/// requests being answered (no timeout of its own: a long-polling GET is held by its session for up to
/// pingInterval, and the session answers it). Pure: time comes in as `now`; the handler runs the actions.
///
/// The handler keeps one timer. The machine knows when it is armed and asks for a new one only when the deadline
/// moves earlier; a timer that fires early is re-armed to the current deadline by `timerFired`.
struct HTTPConnectionTimeoutStateMachine {
    enum Action: Equatable {
        case none
        /// Cancel the timer (if any) and arm it for this deadline.
        case scheduleTimer(NIODeadline)
        /// Close the connection; answer `408 Request Timeout` first when `respond` is set.
        case close(HTTPConnectionTimeoutKind, respond: Bool)
    }

    private enum Incoming: Equatable {
        /// No request is being received; since when.
        case none(since: NIODeadline)
        /// Bytes of a head arrived, but not the whole head.
        case head(startedAt: NIODeadline)
        /// The head arrived; its body is not complete.
        case body(headAt: NIODeadline)
    }

    let timeouts: HTTPConnectionTimeouts
    private var incoming: Incoming
    /// Requests received in full and not yet answered.
    private var unanswered = 0
    /// Whether a request part arrived since the last read completed (a read without one started a head).
    private var partsInCurrentRead = false
    /// The deadline the timer is armed for.
    private var armedAt: NIODeadline?
    /// Upgraded, closed, or timed out: nothing more to watch.
    private var stopped = false

    init(timeouts: HTTPConnectionTimeouts, now: NIODeadline) {
        self.timeouts = timeouts
        self.incoming = .none(since: now)
    }

    /// The connection is open; arms the idle timeout.
    mutating func connectionOpened() -> Action {
        self.armIfNeeded()
    }

    /// A request head was decoded.
    mutating func headReceived(now: NIODeadline) {
        self.partsInCurrentRead = true
        self.incoming = .body(headAt: now)
    }

    /// A chunk of a request body was decoded (the body limit counts from the head, so this changes no deadline).
    mutating func bodyReceived() {
        self.partsInCurrentRead = true
    }

    /// A request ended: it is now being answered.
    mutating func endReceived(now: NIODeadline) {
        self.partsInCurrentRead = true
        self.incoming = .none(since: now)
        self.unanswered += 1
    }

    /// A read from the socket completed. A read that produced no request part, while nothing is being answered,
    /// carried the beginning of a head.
    mutating func readCompleted(now: NIODeadline) -> Action {
        defer { self.partsInCurrentRead = false }
        if !self.partsInCurrentRead, self.unanswered == 0, case .none = self.incoming {
            self.incoming = .head(startedAt: now)
        }
        return self.armIfNeeded()
    }

    /// A response was written in full on a connection that stays open.
    mutating func responseSent(now: NIODeadline) -> Action {
        self.unanswered = max(self.unanswered - 1, 0)
        if self.unanswered == 0, case .none = self.incoming {
            self.incoming = .none(since: now)
        }
        return self.armIfNeeded()
    }

    /// The connection became a WebSocket or is closing: no more HTTP time limits (the Engine.IO heartbeat covers
    /// a WebSocket).
    mutating func stop() {
        self.stopped = true
        self.armedAt = nil
    }

    /// The timer fired.
    mutating func timerFired(now: NIODeadline) -> Action {
        self.armedAt = nil
        guard let (deadline, kind) = self.deadline else { return .none }
        guard now >= deadline else { return self.armIfNeeded() }
        self.stopped = true
        // A 408 only when no response is owed: one written now would answer the wrong request.
        return .close(kind, respond: kind != .idle && self.unanswered == 0)
    }

    /// The current deadline and the limit it enforces, if any.
    private var deadline: (NIODeadline, HTTPConnectionTimeoutKind)? {
        guard !self.stopped else { return nil }
        switch self.incoming {
        case .head(let startedAt):
            return (startedAt + self.timeouts.header, .header)
        case .body(let headAt):
            return (headAt + self.timeouts.body, .body)
        case .none(let since):
            // Answering: the request's own handler (e.g. a parked long-poll) decides how long that takes.
            guard self.unanswered == 0 else { return nil }
            return (since + self.timeouts.idle, .idle)
        }
    }

    private mutating func armIfNeeded() -> Action {
        guard let (deadline, _) = self.deadline else { return .none }
        if let armedAt = self.armedAt, armedAt <= deadline { return .none }
        self.armedAt = deadline
        return .scheduleTimer(deadline)
    }
}
