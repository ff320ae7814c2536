/// A catalog value read from the JSON a peer sent: a client event's payload, or the answer a client acknowledges
/// an event with. The structs `socket-gateway-codegen` generates conform.
public protocol SocketPayloadDecodable: Sendable {
    /// Reads the value from its JSON form.
    /// - Throws: `SocketEventDecodingError` naming the path of a missing or mistyped value.
    init(jsonValue: JSONValue) throws
}

/// A catalog value written as JSON: the answer the server acknowledges a client event with. The structs
/// `socket-gateway-codegen` generates conform.
public protocol SocketPayloadEncodable: Sendable {
    /// The JSON form, sent as the ack's single argument.
    var jsonValue: JSONValue { get }
}

/// An event of a catalog that a client sends to the server (`client_events` in `events.yaml`).
///
/// `socket-gateway-codegen` generates one conforming struct per client event; the server registers a typed
/// handler for it, which gets the payload decoded and an ack that takes the catalog's reply type:
///
/// ```swift
/// server.namespace("/").on(SheetSyncRequest.self) { socket, request, ack in
///     ack(SheetSyncRequestAck(jobID: await jobs.start(request.sheetID)))
/// }
/// ```
public protocol SocketClientEvent: SocketPayloadDecodable {
    /// What the server acknowledges the event with (the event's `ack` in the catalog); ``SocketNoAck`` when the
    /// catalog declares none.
    associatedtype Ack: SocketPayloadEncodable = SocketNoAck
    /// The wire name, e.g. `sheet:sync:request`.
    static var eventName: String { get }
    /// The Socket.IO namespace the client sends the event in, e.g. `/`.
    static var namespace: String { get }
}

/// An event the server emits that the client acknowledges with a typed answer (an event with an `ack` in
/// `events.yaml`): `emitWithAck` on a connection or the gateway returns the answer decoded as ``Ack``.
public protocol SocketAcknowledgedEvent: SocketEvent {
    /// What the client acknowledges the event with.
    associatedtype Ack: SocketPayloadDecodable
}

/// The ack type of a client event the catalog declares without an `ack`: it has no values, so a handler of such
/// an event cannot answer.
public enum SocketNoAck: SocketPayloadEncodable, Hashable {
    /// Never called: there is no value to write.
    public var jsonValue: JSONValue {
        switch self {}
    }
}
