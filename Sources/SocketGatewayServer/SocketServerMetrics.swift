import CoreMetrics
import Metrics

/// The server's metrics (swift-metrics); labels start with `socketgateway_`.
struct SocketServerMetrics: Sendable {
    /// Where the metrics go: the bootstrapped `MetricsSystem.factory` unless a test passes its own.
    let factory: any MetricsFactory
    /// Every `SocketGateway.emit` call.
    let emits: Counter
    /// Packets written to local clients by emits (one per recipient).
    let deliveries: Counter
    /// Emits from other hosts dropped on arrival: no member of their rooms (or namespace) is connected here.
    let remoteEmitsSkipped: Counter
    /// Rooms with a member on this server, each connection's own (sid) room included.
    let rooms: Gauge
    /// Namespaces registered on the server (`/` included).
    let namespaces: Meter
    /// From sending an event with an ack id to a client (`emitWithAck`) to its answer; timeouts are not recorded.
    let ackRoundTrip: Timer
    /// Volatile emits dropped for a client that could not take them at once (one per recipient).
    let volatileDropped: Counter

    /// Metrics made by `factory`.
    init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        self.emits = Counter(label: "socketgateway_emits_total", factory: factory)
        self.deliveries = Counter(label: "socketgateway_emit_deliveries_total", factory: factory)
        self.remoteEmitsSkipped = Counter(label: "socketgateway_remote_emits_skipped_total", factory: factory)
        self.namespaces = Meter(label: "socketgateway_namespaces", factory: factory)
        self.rooms = Gauge(label: "socketgateway_rooms", factory: factory)
        self.ackRoundTrip = Timer(label: "socketgateway_ack_round_trip_seconds", factory: factory)
        self.volatileDropped = Counter(label: "socketgateway_volatile_dropped_total", factory: factory)
    }

    /// Open Socket.IO connections in `namespace` (one per client per namespace).
    func connections(namespace: String) -> Meter {
        Meter(label: "socketgateway_socket_connections", dimensions: [("namespace", namespace)], factory: self.factory)
    }

    /// A client answered an `emitWithAck` `roundTrip` after it was sent.
    func ackAnswered(after roundTrip: Duration) {
        let (seconds, attoseconds) = roundTrip.components
        self.ackRoundTrip.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Events clients sent to `namespace` that a handler takes (those without a handler are not counted).
    func clientEvents(namespace: String) -> Counter {
        Counter(
            label: "socketgateway_client_events_total",
            dimensions: [("namespace", namespace)],
            factory: self.factory
        )
    }

    /// A remote event failed `inboundValidation`; `event` is `_unknown` for names outside the catalog, so the
    /// dimensions stay bounded by the catalog.
    func inboundRejected(reason: InboundEventRejection.Reason, event: String) {
        Counter(
            label: "socketgateway_inbound_rejected_total",
            dimensions: [("reason", reason.rawValue), ("event", reason == .unknownEvent ? "_unknown" : event)],
            factory: self.factory
        ).increment()
    }

    /// A client event handled by a typed handler was refused: its payload did not match the catalog. `event` is
    /// a typed handler's event, so the dimensions stay bounded by the catalog.
    func clientEventRefused(event: String, namespace: String) {
        Counter(
            label: "socketgateway_client_events_refused_total",
            dimensions: [("namespace", namespace), ("event", event)],
            factory: self.factory
        ).increment()
    }

    /// A client's CONNECT was refused. Refusals by the authenticator or another middleware count in
    /// `socketgateway_auth_failures_total` (a dynamic namespace's under its parent's name); unknown namespaces are
    /// not counted (their names would make the dimension unbounded).
    func connectRefused(_ refusal: SocketIOSessionStateMachine.ConnectRefusal, namespace: String) {
        switch refusal {
        case .unauthorized, .refused:
            Counter(
                label: "socketgateway_auth_failures_total",
                dimensions: [("namespace", namespace)],
                factory: self.factory
            ).increment()
        case .invalidNamespace:
            break
        }
    }

    /// Connection state recovery: a session recovered (`recovered`), refused (the reason: `expired`,
    /// `unknown session`, `packets dropped`, …) or not kept (`not kept: too many rooms`, …). Bounded dimensions.
    func recoveries(outcome: String) -> Counter {
        Counter(label: "socketgateway_recoveries_total", dimensions: [("outcome", outcome)], factory: self.factory)
    }

    /// A client exceeded one of the server's limits (`error.code`, e.g. `event queue full`) and was disconnected.
    func clientLimitExceeded(_ error: SocketIOSessionError) {
        Counter(
            label: "socketgateway_client_limit_exceeded_total",
            dimensions: [("limit", error.code.description)],
            factory: self.factory
        ).increment()
    }

    /// A client broke the Socket.IO protocol and was disconnected.
    func protocolError(_ error: SocketIOSessionError) {
        Counter(
            label: "socketgateway_protocol_errors_total",
            dimensions: [("code", error.underlying?.code.description ?? error.code.description)],
            factory: self.factory
        ).increment()
    }
}
