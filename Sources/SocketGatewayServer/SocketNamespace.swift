import CoreMetrics
import NIOConcurrencyHelpers
public import SocketGatewayCore
package import SocketGatewayEngineIO

/// A Socket.IO namespace (`/`, `/admin`, …): the handlers its connections run.
///
/// Register handlers before clients connect; handlers added later apply to events that arrive after.
public final class SocketNamespace: Sendable {
    /// A handler for one event: the connection, the event's arguments, and the ack when the client asked for one.
    public typealias EventHandler = @Sendable (SocketConnection, [JSONValue], SocketAck?) async -> Void

    struct Handlers {
        var onConnect: [@Sendable (SocketConnection) async -> Void] = []
        var onDisconnect: [@Sendable (SocketConnection, SocketDisconnectReason) async -> Void] = []
        var events: [String: [EventHandler]] = [:]
    }

    /// The namespace name, starting with `/`.
    public let name: String
    private let handlers = NIOLockedValueBox(Handlers())
    /// Open connections in this namespace.
    let connectionsMeter: Meter

    init(name: String, metrics: SocketServerMetrics) {
        self.name = name
        self.connectionsMeter = metrics.connections(namespace: name)
    }

    /// Runs `handler` for every client that connects (after the CONNECT reply was sent, before its events).
    public func onConnect(_ handler: @escaping @Sendable (SocketConnection) async -> Void) {
        self.handlers.withLockedValue { $0.onConnect.append(handler) }
    }

    /// Runs `handler` when a client's connection to this namespace ends, for whatever reason.
    public func onDisconnect(_ handler: @escaping @Sendable (SocketConnection, SocketDisconnectReason) async -> Void) {
        self.handlers.withLockedValue { $0.onDisconnect.append(handler) }
    }

    /// Runs `handler` for every `event` a client sends. A connection's handlers run one at a time, in arrival order.
    /// - Parameters:
    ///   - event: The event name.
    ///   - handler: Gets the connection, the arguments, and an ack to answer with when the client asked for one.
    public func on(_ event: String, _ handler: @escaping EventHandler) {
        self.handlers.withLockedValue { $0.events[event, default: []].append(handler) }
    }

    var connectHandlers: [@Sendable (SocketConnection) async -> Void] {
        self.handlers.withLockedValue { $0.onConnect }
    }

    var disconnectHandlers: [@Sendable (SocketConnection, SocketDisconnectReason) async -> Void] {
        self.handlers.withLockedValue { $0.onDisconnect }
    }

    func eventHandlers(_ event: String) -> [EventHandler] {
        self.handlers.withLockedValue { $0.events[event] ?? [] }
    }

    /// Whether some handler is registered for `event`.
    func handlesEvent(_ event: String) -> Bool {
        self.handlers.withLockedValue { $0.events[event] != nil }
    }
}

/// The namespaces of a server, by name. `/` always exists.
final class NamespaceRegistry: Sendable {
    private let namespaces: NIOLockedValueBox<[String: SocketNamespace]>
    private let metrics: SocketServerMetrics

    init(metrics: SocketServerMetrics) {
        self.metrics = metrics
        self.namespaces = NIOLockedValueBox(["/": SocketNamespace(name: "/", metrics: metrics)])
    }

    /// Returns the namespace `name`, creating it if needed.
    func namespace(_ name: String) -> SocketNamespace {
        let name = Self.normalize(name)
        return self.namespaces.withLockedValue { namespaces in
            if let existing = namespaces[name] { return existing }
            let created = SocketNamespace(name: name, metrics: self.metrics)
            namespaces[name] = created
            return created
        }
    }

    /// The namespace `name`, if registered.
    func existing(_ name: String) -> SocketNamespace? {
        self.namespaces.withLockedValue { $0[name] }
    }

    static func normalize(_ name: String) -> String {
        name.hasPrefix("/") ? name : "/" + name
    }
}

/// Why a connection to a namespace ended.
public struct SocketDisconnectReason: Sendable, Hashable, CustomStringConvertible {
    private enum Base: Hashable, Sendable {
        case clientNamespaceDisconnect
        case serverNamespaceDisconnect
        case transport(String)
        case protocolError
        case limitExceeded(String)
    }
    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The client sent DISCONNECT for this namespace.
    public static let clientNamespaceDisconnect = Self(.clientNamespaceDisconnect)
    /// The server called `disconnect()`.
    public static let serverNamespaceDisconnect = Self(.serverNamespaceDisconnect)
    /// The client broke the protocol; its Engine.IO session was closed.
    public static let protocolError = Self(.protocolError)
    /// The client sent events faster than its handlers ran: more than `maxQueuedEventsPerConnection` (or
    /// `maxQueuedEventBytesPerConnection`) waited. Its Engine.IO session was closed and the waiting events dropped.
    public static let eventQueueFull = Self(.limitExceeded("event queue full"))
    /// The client asked for more acks that no handler answered yet than `maxPendingAcksPerConnection`; its
    /// Engine.IO session was closed.
    public static let tooManyPendingAcks = Self(.limitExceeded("too many pending acks"))
    /// The client sent events faster than `eventRateLimit`; its Engine.IO session was closed.
    public static let eventRateExceeded = Self(.limitExceeded("event rate exceeded"))
    /// The Engine.IO session ended (ping timeout, transport close, server shutdown, …).
    package static func transport(_ reason: EngineIOCloseReason) -> Self { Self(.transport(reason.description)) }

    /// The text shown when this value is printed or logged.
    public var description: String {
        switch self.base {
        case .clientNamespaceDisconnect: return "client namespace disconnect"
        case .serverNamespaceDisconnect: return "server namespace disconnect"
        case .protocolError: return "protocol error"
        case .transport(let reason): return reason
        case .limitExceeded(let limit): return limit
        }
    }

    /// Whether a session that ended this way is kept for connection state recovery: the transport was lost (ping
    /// timeout, closed or failed transport, server shutdown), not left on purpose nor closed for the client's fault.
    var isRecoverable: Bool {
        guard case .transport(let reason) = self.base else { return false }
        return reason != EngineIOCloseReason.parseError.description
            && reason != EngineIOCloseReason.payloadTooLarge.description
    }

    /// Why the connections of a session the server closed for `error` ended.
    init(closing error: SocketIOSessionError) {
        switch error.code {
        case .eventQueueFull: self = .eventQueueFull
        case .tooManyPendingAcks: self = .tooManyPendingAcks
        case .eventRateExceeded: self = .eventRateExceeded
        default: self = .protocolError
        }
    }
}

/// Why `emitWithAck` gave no answer.
public struct SocketAckError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case timeout, disconnected, notConnected, wrongNamespace, invalidAnswer
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The client did not answer within the timeout.
        public static let timeout = Code(.timeout)
        /// The connection ended before the client answered.
        public static let disconnected = Code(.disconnected)
        /// The connection had already ended when the event was to be sent.
        public static let notConnected = Code(.notConnected)
        /// A typed event was to be sent on a connection of another namespace than the event's.
        public static let wrongNamespace = Code(.wrongNamespace)
        /// The client answered, but not with the event's typed ack; ``SocketAckError/answerError`` says where.
        public static let invalidAnswer = Code(.invalidAnswer)
        /// The text shown when this value is printed or logged.
        public var description: String { "\(self.base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// The event that was sent.
    public var event: String
    /// The connection's session id.
    public var sid: String
    /// The namespace.
    public var namespace: String
    /// For `invalidAnswer`: what in the client's answer did not match the event's ack type.
    public var answerError: SocketEventDecodingError?

    /// The text shown when this value is printed or logged.
    public var description: String {
        let base = "no ack for event \(self.event) from \(self.sid) in \(self.namespace): \(self.code)"
        guard let answerError = self.answerError else { return base }
        return "\(base): \(answerError)"
    }
}
