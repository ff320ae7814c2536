/// An event catalog: the typed description of what a server emits and what its clients send, read from
/// `events.yaml`.
///
/// Events, client events and named types are kept sorted by name, so everything rendered from a catalog is
/// deterministic; fields and enum cases keep the order the catalog gives them (that order is the key order on the
/// wire).
public struct Catalog: Sendable, Hashable {
    /// The catalog format version (always 1 today).
    public var version: Int
    /// The catalog's name, UpperCamelCase: the prefix of the generated `<Name>Event` and `<Name>EventName`.
    public var name: String
    /// An optional description of the whole catalog.
    public var summary: String?
    /// The file name the catalog was read from (last path component), for generated headers.
    public var sourceFileName: String
    /// Reusable types declared under `types`, sorted by name.
    public var types: [NamedType]
    /// The events the server emits to clients (`events:`), sorted by wire name.
    public var events: [Event]
    /// The events clients send to the server (`client_events:`), sorted by wire name; empty when the catalog has
    /// no `client_events` section.
    public var clientEvents: [Event] = []

    /// The namespaces the events of either direction use, sorted.
    public var namespaces: [String] {
        Array(Set(self.events.map(\.namespace) + self.clientEvents.map(\.namespace))).sorted()
    }

    /// The named type called `name`, if any.
    public func type(named name: String) -> NamedType? {
        self.types.first { $0.name == name }
    }
}

/// One event: emitted by the server (``Catalog/events``) or sent by a client (``Catalog/clientEvents``).
public struct Event: Sendable, Hashable {
    /// The wire name, Socket.IO style: `sheet:sync:completed`.
    public var name: String
    /// A one-line description.
    public var summary: String
    /// The Socket.IO namespace the event is emitted in, `/` by default.
    public var namespace: String
    /// The generated payload struct's name, e.g. `SheetSyncCompleted`.
    ///
    /// It is the wire name in UpperCamelCase. A client event whose wire name is also a server event's (one name
    /// used both ways, e.g. `chat:message`) takes the suffix `FromClient` (`ChatMessageFromClient`); the server
    /// event keeps the plain name, so adding a client event never renames an existing type.
    public var typeName: String
    /// The generated enum case name, e.g. `sheetSyncCompleted` (`chatMessageFromClient` with the suffix).
    public var caseName: String
    /// The payload's fields, in wire order.
    public var payload: [Field]
    /// The fields of the object the receiver answers with (the ack), in wire order; `nil` when the event declares
    /// no `ack`. A server event's ack is what the client answers to the server's `emitWithAck`; a client event's
    /// ack is what the server answers to the client's `emitWithAck`.
    public var ack: [Field]? = nil

    /// The generated ack struct's name: ``typeName`` + `Ack`, e.g. `SheetSyncRequestAck`.
    public var ackTypeName: String { self.typeName + "Ack" }
}

/// One field of an object: a JSON key and its type.
public struct Field: Sendable, Hashable {
    /// The JSON key on the wire, exactly as written in the catalog.
    public var wireName: String
    /// The Swift property name (lowerCamelCase, see ``SwiftNaming``).
    public var swiftName: String
    /// An optional description.
    public var summary: String?
    /// The field's type.
    public var type: FieldType
}

/// A field's type.
public indirect enum FieldType: Sendable, Hashable {
    /// A JSON string.
    case string
    /// A JSON integer (Swift `Int`).
    case int
    /// A JSON number (Swift `Double`).
    case double
    /// A JSON boolean.
    case bool
    /// An ISO 8601 timestamp string on the wire (Swift `Date`), written like JavaScript's `toISOString()`.
    case datetime
    /// A UUID string on the wire, lowercase (Swift `UUID`).
    case uuid
    /// The value may be absent or `null` (Swift `T?`); absent keys are not written.
    case optional(FieldType)
    /// A JSON array (Swift `[T]`).
    case array(FieldType)
    /// A type declared under `types`.
    case named(String)
    /// An object or enum declared in place; generated as a nested type of the enclosing struct.
    case inline(InlineType)

    /// The type without any `optional` wrapper.
    var unwrapped: FieldType {
        if case .optional(let wrapped) = self { return wrapped.unwrapped }
        return self
    }

    /// `true` when the type is `optional`.
    var isOptional: Bool {
        if case .optional = self { return true }
        return false
    }
}

/// An object or enum declared inside a field.
public struct InlineType: Sendable, Hashable {
    /// The nested Swift type's name.
    public var name: String
    /// What it is.
    public var definition: TypeDefinition
}

/// A reusable type declared under `types`.
public struct NamedType: Sendable, Hashable {
    /// The type's name, UpperCamelCase, used verbatim in Swift and TypeScript.
    public var name: String
    /// An optional description.
    public var summary: String?
    /// What it is.
    public var definition: TypeDefinition
}

/// An object with fields, or an enumeration of strings.
public enum TypeDefinition: Sendable, Hashable {
    /// A JSON object with these fields, in wire order.
    case object([Field])
    /// A string taking one of these values, in catalog order.
    case enumeration([EnumCase])
}

/// One value of a string enum.
public struct EnumCase: Sendable, Hashable {
    /// The string on the wire.
    public var value: String
    /// The Swift case name.
    public var swiftName: String
}
