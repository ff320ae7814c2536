/// A whole event catalog as one type: the `<Catalog>Event` enum that `socket-gateway-codegen` generates
/// conforms, so code can check an event received from elsewhere (a Redis message from a Python or Node
/// publisher) against the catalog with the same decoder that typed Swift code uses:
///
/// ```swift
/// if let problem = SheetSyncEvent.validate(event: "sheet:sync:progress", namespace: "/", arguments: args) {
///     print(problem)  // sheet:sync:progress: wrong type at $.rows: expected an integer, found a string
/// }
/// ```
public protocol SocketEventCatalog: Sendable {
    /// Decodes a received event into its typed payload.
    /// - Throws: `SocketEventDecodingError` for an unknown event, a missing field or a value of the wrong type.
    init(event: String, arguments: [JSONValue]) throws

    /// The decoded payload; its type gives the event's name and namespace.
    var payload: any SocketEvent { get }

    /// Why `event` with `arguments`, emitted in `namespace`, is not an event of this catalog; `nil` when it is.
    ///
    /// The default implementation decodes with ``init(event:arguments:)`` and then checks the namespace.
    static func validate(event: String, namespace: String, arguments: [JSONValue]) -> SocketEventDecodingError?
}

extension SocketEventCatalog {
    /// Decodes with ``init(event:arguments:)``, then checks that the event belongs to `namespace`.
    public static func validate(
        event: String,
        namespace: String,
        arguments: [JSONValue]
    ) -> SocketEventDecodingError? {
        let decoded: Self
        do {
            decoded = try Self(event: event, arguments: arguments)
        } catch let error as SocketEventDecodingError {
            return error
        } catch {
            return SocketEventDecodingError(code: .invalidValue, event: event, message: "\(error)")
        }
        let expected = type(of: decoded.payload).namespace
        guard expected == namespace else {
            return SocketEventDecodingError(
                code: .wrongNamespace,
                event: event,
                message: "belongs to namespace \(expected), not \(namespace)"
            )
        }
        return nil
    }
}
