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

    /// A handler for every event (``onAny(_:)``): the connection, the event name, its arguments, and the ack.
    public typealias AnyEventHandler = @Sendable (SocketConnection, String, [JSONValue], SocketAck?) async -> Void
    /// A listener for every event a connection is sent (``onAnyOutgoing(_:)``): the connection, the event name,
    /// its arguments.
    public typealias OutgoingListener = @Sendable (SocketConnection, String, [JSONValue]) -> Void

    struct Handlers {
        var onConnect: [@Sendable (SocketConnection) async -> Void] = []
        var onDisconnect: [@Sendable (SocketConnection, SocketDisconnectReason) async -> Void] = []
        var events: [String: [EventHandler]] = [:]
        var middlewares: [SocketMiddleware] = []
        var onAny: [AnyEventHandler] = []
        var onAnyOutgoing: [OutgoingListener] = []
        /// Connections with ``SocketConnection/onAnyOutgoing(_:)`` listeners of their own.
        var socketsWithOutgoingListeners = 0
    }

    /// The namespace name, starting with `/` (for a dynamic namespace's parent, the name it was given).
    public let name: String
    /// Shared by a dynamic namespace's children (the box is a reference).
    private let handlers: NIOLockedValueBox<Handlers>
    /// Open connections in this namespace (a dynamic namespace's children count in their parent's).
    let connectionsMeter: Meter
    /// The dynamic namespace this is a child of.
    let parent: SocketNamespace?
    /// Events clients sent here that a handler takes.
    let eventsCounter: Counter

    init(name: String, metrics: SocketServerMetrics) {
        self.name = name
        self.handlers = NIOLockedValueBox(Handlers())
        self.connectionsMeter = metrics.connections(namespace: name)
        self.eventsCounter = metrics.clientEvents(namespace: name)
        self.parent = nil
    }

    /// A child of the dynamic namespace `parent`: named `name`, with the parent's handlers and middlewares (the
    /// same ones: what is added to either applies to both) and its connection count.
    init(child name: String, of parent: SocketNamespace) {
        self.name = name
        self.handlers = parent.handlers
        self.connectionsMeter = parent.connectionsMeter
        self.eventsCounter = parent.eventsCounter
        self.parent = parent
    }

    /// Adds a middleware run before a client's CONNECT to this namespace is accepted, after the server's
    /// middlewares and this namespace's earlier ones (socket.io's `namespace.use`).
    /// - Parameter middleware: Reads the request, may set its user and data, refuses by throwing
    ///   ``SocketConnectRefusal``.
    public func use(_ middleware: @escaping SocketMiddleware.Body) {
        self.use(SocketMiddleware(middleware))
    }

    /// Adds a middleware (see the closure form of `use`).
    public func use(_ middleware: SocketMiddleware) {
        self.handlers.withLockedValue { $0.middlewares.append(middleware) }
    }

    /// Runs `handler` for every event a client sends, before the event's own handlers (socket.io's
    /// `socket.onAny`). With one registered, every event is handed to the handlers, also those nobody else handles.
    /// - Parameter handler: Gets the connection, the event name, the arguments, and the ack when one was asked for.
    public func onAny(_ handler: @escaping AnyEventHandler) {
        self.handlers.withLockedValue { $0.onAny.append(handler) }
    }

    /// Calls `listener` for every event a connection of this namespace is sent by this server (socket.io's
    /// `socket.onAnyOutgoing`): its own `emit`s and `emitWithAck`s and the gateway's emits that reach it. Not
    /// for emits from other servers or workers (they are copied through without being decoded).
    ///
    /// It runs on the connection's event loop as the event is sent: keep it short and never block.
    public func onAnyOutgoing(_ listener: @escaping OutgoingListener) {
        self.handlers.withLockedValue { $0.onAnyOutgoing.append(listener) }
    }

    var middlewares: [SocketMiddleware] {
        self.handlers.withLockedValue { $0.middlewares }
    }

    var anyEventHandlers: [AnyEventHandler] {
        self.handlers.withLockedValue { $0.onAny }
    }

    var outgoingListeners: [OutgoingListener] {
        self.handlers.withLockedValue { $0.onAnyOutgoing }
    }

    /// The ``onAnyOutgoing(_:)`` listeners, and whether some connection has its own: the gateway's fan-out
    /// notifies connections only when either is so.
    var outgoingNotification: (listeners: [OutgoingListener], socketListeners: Bool) {
        self.handlers.withLockedValue { ($0.onAnyOutgoing, $0.socketsWithOutgoingListeners > 0) }
    }

    /// A connection got its first own outgoing listener (`added`), or lost its last.
    func socketOutgoingListeners(added: Bool) {
        self.handlers.withLockedValue { $0.socketsWithOutgoingListeners += added ? 1 : -1 }
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

    /// Whether some handler is registered for `event` (an ``onAny(_:)`` handler handles every event).
    func handlesEvent(_ event: String) -> Bool {
        self.handlers.withLockedValue { $0.events[event] != nil || !$0.onAny.isEmpty }
    }
}

/// The namespaces of a server, by name. `/` always exists.
final class NamespaceRegistry: Sendable {
    private let namespaces: NIOLockedValueBox<[String: SocketNamespace]>
    private let metrics: SocketServerMetrics
    /// The server's middlewares (`SocketServer.use`), run before every namespace's own.
    private let serverMiddlewares = NIOLockedValueBox<[SocketMiddleware]>([])
    private let dynamic = NIOLockedValueBox(DynamicNamespaces())

    /// Dynamic namespaces: the parents with what names they accept, and the children that have connections.
    private struct DynamicNamespaces {
        var parents: [(accepts: @Sendable (String) -> Bool, parent: SocketNamespace)] = []
        /// The children with open (or accepted) connections; a child goes when its last connection ends, so
        /// clients that try many names keep nothing.
        var children: [String: (namespace: SocketNamespace, connections: Int)] = [:]
    }

    init(metrics: SocketServerMetrics) {
        self.metrics = metrics
        self.namespaces = NIOLockedValueBox(["/": SocketNamespace(name: "/", metrics: metrics)])
        metrics.namespaces.increment()
    }

    /// Adds a server middleware.
    func use(_ middleware: SocketMiddleware) {
        self.serverMiddlewares.withLockedValue { $0.append(middleware) }
    }

    /// The middlewares a CONNECT to `namespace` runs: the server's, then the namespace's.
    func middlewares(for namespace: SocketNamespace) -> [SocketMiddleware] {
        self.serverMiddlewares.withLockedValue { $0 } + namespace.middlewares
    }

    /// Adds a dynamic namespace: the parent of every namespace whose name `accepts` (and that is not a
    /// registered one); earlier parents are asked first.
    func dynamicNamespace(label: String, accepts: @escaping @Sendable (String) -> Bool) -> SocketNamespace {
        let parent = SocketNamespace(name: label, metrics: self.metrics)
        self.dynamic.withLockedValue { $0.parents.append((accepts, parent)) }
        return parent
    }

    /// A connection to `namespace` was accepted: a dynamic child is kept until `release`.
    func retain(_ namespace: SocketNamespace) {
        self.dynamic.withLockedValue { dynamic in
            guard namespace.parent != nil else { return }
            dynamic.children[namespace.name, default: (namespace, 0)].connections += 1
        }
    }

    /// A connection to the namespace `name` ended.
    func release(_ name: String) {
        self.dynamic.withLockedValue { dynamic in
            guard var child = dynamic.children[name] else { return }
            child.connections -= 1
            dynamic.children[name] = child.connections > 0 ? child : nil
        }
    }

    /// The names of the dynamic children of `parent` that have connections on this server, sorted.
    func children(of parent: SocketNamespace) -> [String] {
        self.dynamic.withLockedValue { dynamic in
            dynamic.children.filter { $0.value.namespace.parent === parent }.keys.sorted()
        }
    }

    /// Returns the namespace `name`, creating it if needed.
    func namespace(_ name: String) -> SocketNamespace {
        let name = Self.normalize(name)
        return self.namespaces.withLockedValue { namespaces in
            if let existing = namespaces[name] { return existing }
            let created = SocketNamespace(name: name, metrics: self.metrics)
            namespaces[name] = created
            self.metrics.namespaces.increment()
            return created
        }
    }

    /// The namespace `name`, if registered, or a child of the first dynamic namespace that accepts the name.
    func existing(_ name: String) -> SocketNamespace? {
        if let registered = self.namespaces.withLockedValue({ $0[name] }) { return registered }
        let (child, parents) = self.dynamic.withLockedValue { ($0.children[name]?.namespace, $0.parents) }
        if let child { return child }
        // The app's closures run outside the lock.
        guard let parent = parents.first(where: { $0.accepts(name) })?.parent else { return nil }
        return SocketNamespace(child: name, of: parent)
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
