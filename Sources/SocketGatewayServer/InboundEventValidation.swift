public import SocketGatewayCore

/// Checks an event that another host published on the Redis channel before this server delivers it.
///
/// Swift publishers are checked at compile time by the typed API; this seam catches a Python or Node
/// publisher whose payload drifted from the catalog. Conformers must be cheap and thread-safe: the check runs
/// once per remote emit, before fan-out.
public protocol InboundEventValidator: Sendable {
    /// Why the event does not match; `nil` when it does.
    /// - Parameters:
    ///   - event: The event name.
    ///   - namespace: The namespace it was emitted in.
    ///   - arguments: The event's arguments (a catalog event has one, its payload).
    func rejection(event: String, namespace: String, arguments: [JSONValue]) -> InboundEventRejection?
}

/// Why a remote event was rejected.
public struct InboundEventRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// A low-cardinality category, used as the `reason` dimension of `socketgateway_inbound_rejected_total`.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        /// The event is not in the catalog.
        case unknownEvent = "unknown_event"
        /// The event is in the catalog but was emitted in another namespace.
        case wrongNamespace = "wrong_namespace"
        /// The payload does not match the event's type (wrong type, missing field, bad value, argument count).
        case invalidPayload = "invalid_payload"
    }

    /// The category.
    public var reason: Reason
    /// What is wrong, for the log, e.g. `sheet:sync:progress: wrong type at $.rows: expected an integer, …`.
    public var message: String

    /// Creates a rejection.
    public init(reason: Reason, message: String) {
        self.reason = reason
        self.message = message
    }

    /// The text shown when this value is printed or logged.
    public var description: String { self.message }
}

/// Validation of the events other hosts publish, set on `SocketServerConfiguration.inboundValidation`.
///
/// Applies only to clustered servers, to every `emit` message from another host (python-socketio,
/// `socket-gateway emit`, Swift workers alike: the wire format carries nothing that tells them apart).
/// Room changes, disconnects and callbacks are not events and are not checked.
public struct InboundEventValidation: Sendable {
    /// What happens to an event that does not match.
    public enum Policy: Sendable, Hashable {
        /// Strict: the event is dropped, logged and counted.
        case drop
        /// The event is delivered anyway, but logged and counted (to roll strict mode out safely).
        case logOnly
    }

    /// The check.
    public var validator: any InboundEventValidator
    /// What happens on a mismatch.
    public var policy: Policy
    /// At most one rejection warning is logged per interval; the next one says how many were suppressed.
    public var logInterval: Duration

    /// Creates a validation.
    public init(validator: any InboundEventValidator, policy: Policy, logInterval: Duration = .seconds(10)) {
        self.validator = validator
        self.policy = policy
        self.logInterval = logInterval
    }

    /// Drops remote events that `validator` rejects.
    public static func strict(_ validator: any InboundEventValidator) -> InboundEventValidation {
        InboundEventValidation(validator: validator, policy: .drop)
    }

    /// Drops remote events that are not valid events of the generated catalog `catalog`, e.g.
    /// `configuration.inboundValidation = .strict(SheetSyncEvent.self)`.
    public static func strict<Catalog: SocketEventCatalog>(_ catalog: Catalog.Type) -> InboundEventValidation {
        .strict(CatalogInboundEventValidator<Catalog>())
    }

    /// Delivers every remote event but logs and counts those `validator` rejects.
    public static func logOnly(_ validator: any InboundEventValidator) -> InboundEventValidation {
        InboundEventValidation(validator: validator, policy: .logOnly)
    }

    /// Delivers every remote event but logs and counts those that are not valid events of `catalog`.
    public static func logOnly<Catalog: SocketEventCatalog>(_ catalog: Catalog.Type) -> InboundEventValidation {
        .logOnly(CatalogInboundEventValidator<Catalog>())
    }
}

/// Validates with a generated catalog's typed decoder (`<Catalog>Event.validate(event:namespace:arguments:)`).
public struct CatalogInboundEventValidator<Catalog: SocketEventCatalog>: InboundEventValidator {
    /// Creates the validator.
    public init() {}

    /// Refuses an event that is not in the catalog or whose payload does not match its schema.
    public func rejection(event: String, namespace: String, arguments: [JSONValue]) -> InboundEventRejection? {
        guard let error = Catalog.validate(event: event, namespace: namespace, arguments: arguments) else {
            return nil
        }
        let reason: InboundEventRejection.Reason
        switch error.code {
        case .unknownEvent: reason = .unknownEvent
        case .wrongNamespace: reason = .wrongNamespace
        default: reason = .invalidPayload
        }
        return InboundEventRejection(reason: reason, message: error.description)
    }
}
