import Foundation
public import SocketGatewayCore

/// The name and type of one value in a connection's ``SocketData``.
///
/// ```swift
/// enum Profile: SocketDataKey { typealias Value = UserProfile }   // UserProfile: Codable & Sendable
/// request.data[Profile.self] = UserProfile(name: "Ada")            // in a middleware
/// let profile = connection.data[Profile.self]                       // in any handler
/// ```
public protocol SocketDataKey: Sendable {
    /// The value's type: Codable, so the data travels as JSON (cluster-wide queries carry it).
    associatedtype Value: Codable & Sendable
    /// The value's key in the JSON form; the type's name unless the key says otherwise.
    static var name: String { get }
}

extension SocketDataKey {
    /// The type's name.
    public static var name: String { String(describing: Self.self) }
}

/// Per-socket data (socket.io's `socket.data`, python-socketio's `save_session`): typed values by
/// ``SocketDataKey``, set by a middleware or a handler, read in every handler of the connection.
///
/// A value type: a copy never changes under you. Its JSON form (``jsonValue()``) is an object of every value by
/// its key's name; ``init(json:)`` reads one back, each value decoded when first read by its key.
public struct SocketData: Sendable {
    /// A value as set (typed), or as read from JSON (decoded when read through its key).
    private enum Stored: Sendable {
        case typed(any Codable & Sendable)
        case json(JSONValue)
    }
    private var values: [String: Stored] = [:]

    /// No data.
    public init() {}

    /// Data read from its JSON form (an object of values by key name; anything else gives no data).
    public init(json: JSONValue) {
        guard case .object(let members) = json else { return }
        for (name, value) in members { self.values[name] = .json(value) }
    }

    /// The value of `key`, or nil when unset (or when its JSON does not decode as `Key.Value`).
    public subscript<Key: SocketDataKey>(key: Key.Type) -> Key.Value? {
        get {
            switch self.values[Key.name] {
            case .typed(let value)?: return value as? Key.Value
            case .json(let json)?: return try? Self.decode(Key.Value.self, from: json)
            case nil: return nil
            }
        }
        set {
            self.values[Key.name] = newValue.map { .typed($0) }
        }
    }

    /// Whether no value is set.
    public var isEmpty: Bool { self.values.isEmpty }

    /// The names of the keys set, sorted.
    public var names: [String] { self.values.keys.sorted() }

    /// The JSON form: an object of every value by its key's name, keys sorted.
    /// - Throws: `EncodingError` when a value's `encode(to:)` throws.
    public func jsonValue() throws -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        for name in self.names {
            switch self.values[name]! {
            case .json(let json): members.append((name, json))
            case .typed(let value): members.append((name, try Self.encode(value)))
            }
        }
        return .object(members)
    }

    /// `base` with every value of this data on top (a recovered session's data under what the middlewares set).
    func overlaying(_ base: SocketData) -> SocketData {
        var merged = base
        merged.values.merge(self.values) { _, mine in mine }
        return merged
    }

    /// Encodes with Foundation, keys sorted, and parses with `JSONValue.parse` (which keeps that order), so the JSON
    /// form is the same every time.
    private static func encode(_ value: any Encodable) throws -> JSONValue {
        if let json = value as? JSONValue { return json }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try JSONValue.parse(Array(encoder.encode(value)))
    }

    private static func decode<Value: Decodable>(_ type: Value.Type, from json: JSONValue) throws -> Value {
        if let value = json as? Value { return value }
        return try JSONDecoder().decode(type, from: Data(json.jsonString.utf8))
    }
}
