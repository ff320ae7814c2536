import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes `Encodable` values into a ``JSONValue`` tree, keeping object keys in the order they are encoded.
///
/// Like Foundation's `JSONEncoder`, but without text: `Date` becomes an ISO 8601 string in UTC with milliseconds
/// as JavaScript's `toISOString` writes it (`2026-11-29T19:13:03.120Z`), `UUID` a lowercase string, `URL` its
/// absolute string, `Data` a `.binary` attachment (so Socket.IO sends it as binary), `Decimal` a number, and a
/// `JSONValue` itself. `nil` optionals are left out of objects, as `JSONEncoder` does.
public struct JSONValueEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Encodes `value` into a JSON value.
    /// - Parameter value: The value to encode.
    /// - Returns: The JSON value.
    /// - Throws: `EncodingError` when the value encodes nothing or a date is out of range; the context carries
    ///   the coding path.
    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let special = try JSONEncodingNode.specialValue(value, codingPath: []) {
            return special
        }
        let node = JSONEncodingNode()
        try value.encode(to: JSONValueEncoderImpl(node: node, codingPath: []))
        guard let result = node.build() else {
            throw EncodingError.invalidValue(
                value,
                EncodingError.Context(codingPath: [], debugDescription: "\(T.self) did not encode any value.")
            )
        }
        return result
    }
}

/// A mutable node of the tree being encoded (containers keep references to the nodes they write into).
final class JSONEncodingNode {
    private enum Kind {
        case empty, value, array, object
    }

    private var kind: Kind = .empty
    private var scalar: JSONValue = .null
    private var elements: [JSONEncodingNode] = []
    private var keys: [String] = []
    private var children: [String: JSONEncodingNode] = [:]

    func set(_ value: JSONValue) {
        self.kind = .value
        self.scalar = value
        self.elements = []
        self.keys = []
        self.children = [:]
    }

    func becomeObject() {
        guard self.kind != .object else { return }
        self.kind = .object
        self.elements = []
    }

    func becomeArray() {
        guard self.kind != .array else { return }
        self.kind = .array
        self.keys = []
        self.children = [:]
    }

    /// The child for `key`, created (at the end of the key order) on first use.
    func child(forKey key: String) -> JSONEncodingNode {
        self.becomeObject()
        if let existing = self.children[key] {
            return existing
        }
        let node = JSONEncodingNode()
        self.keys.append(key)
        self.children[key] = node
        return node
    }

    func appendChild() -> JSONEncodingNode {
        self.becomeArray()
        let node = JSONEncodingNode()
        self.elements.append(node)
        return node
    }

    var count: Int {
        switch self.kind {
        case .array: return self.elements.count
        case .object: return self.keys.count
        default: return 0
        }
    }

    /// The finished value; nil when nothing was encoded here. Nested empty nodes become `{}`, as in JSONEncoder.
    func build() -> JSONValue? {
        switch self.kind {
        case .empty:
            return nil
        case .value:
            return self.scalar
        case .array:
            return .array(self.elements.map { $0.build() ?? .object([]) })
        case .object:
            return .object(self.keys.map { (key: $0, value: self.children[$0]!.build() ?? .object([])) })
        }
    }

    /// The JSON form of the types that get special treatment, or nil for everything else.
    static func specialValue(_ value: some Encodable, codingPath: [any CodingKey]) throws -> JSONValue? {
        switch value {
        case let json as JSONValue:
            return json
        case let date as Date:
            guard let text = JSONDateFormatting.string(from: date) else {
                throw EncodingError.invalidValue(
                    date,
                    EncodingError.Context(
                        codingPath: codingPath,
                        debugDescription: "The date \(date) is outside the range a JavaScript Date can hold."
                    )
                )
            }
            return .string(text)
        case let uuid as UUID:
            return .string(uuid.uuidString.lowercased())
        case let url as URL:
            return .string(url.absoluteString)
        case let data as Data:
            return .binary(ByteBuffer(bytes: data))
        case let decimal as Decimal:
            return try JSONValue.parse(decimal.description)
        default:
            return nil
        }
    }
}

struct JSONValueEncoderImpl: Encoder {
    let node: JSONEncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: JSONEncodingNode, codingPath: [any CodingKey]) {
        self.node = node
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        self.node.becomeObject()
        return KeyedEncodingContainer(JSONKeyedEncodingContainer<Key>(node: self.node, codingPath: self.codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        self.node.becomeArray()
        return JSONUnkeyedEncodingContainer(node: self.node, codingPath: self.codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        JSONSingleValueEncodingContainer(node: self.node, codingPath: self.codingPath)
    }
}

/// Shared conversions from Swift scalars to JSON values.
enum JSONScalarEncoding {
    static func value(_ value: Float) -> JSONValue {
        // Through the shortest decimal form, so Float(0.1) becomes 0.1 and not 0.10000000149011612.
        guard value.isFinite else { return .double(Double(value)) }
        return .double(Double(value.description) ?? Double(value))
    }

    static func value(_ value: UInt64) -> JSONValue {
        value <= UInt64(Int64.max) ? .int(Int64(value)) : .double(Double(value))
    }

    static func encode<T: Encodable>(_ value: T, into node: JSONEncodingNode, codingPath: [any CodingKey]) throws {
        if let special = try JSONEncodingNode.specialValue(value, codingPath: codingPath) {
            node.set(special)
            return
        }
        try value.encode(to: JSONValueEncoderImpl(node: node, codingPath: codingPath))
    }
}

struct JSONKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: JSONEncodingNode
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { self.node.child(forKey: key.stringValue).set(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.bool(value))
    }
    mutating func encode(_ value: String, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.string(value))
    }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.double(value))
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(JSONScalarEncoding.value(value))
    }
    mutating func encode(_ value: Int, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: Int8, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: Int16, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: Int32, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: Int64, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(value))
    }
    mutating func encode(_ value: UInt, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(JSONScalarEncoding.value(UInt64(value)))
    }
    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(.int(Int64(value)))
    }
    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        self.node.child(forKey: key.stringValue).set(JSONScalarEncoding.value(value))
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try JSONScalarEncoding.encode(
            value,
            into: self.node.child(forKey: key.stringValue),
            codingPath: self.codingPath + [key]
        )
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = self.node.child(forKey: key.stringValue)
        child.becomeObject()
        return KeyedEncodingContainer(
            JSONKeyedEncodingContainer<NestedKey>(node: child, codingPath: self.codingPath + [key])
        )
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = self.node.child(forKey: key.stringValue)
        child.becomeArray()
        return JSONUnkeyedEncodingContainer(node: child, codingPath: self.codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        let key = JSONCodingKey(stringValue: "super")
        return JSONValueEncoderImpl(node: self.node.child(forKey: key.stringValue), codingPath: self.codingPath + [key])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        JSONValueEncoderImpl(node: self.node.child(forKey: key.stringValue), codingPath: self.codingPath + [key])
    }
}

struct JSONUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let node: JSONEncodingNode
    let codingPath: [any CodingKey]
    var count: Int { self.node.count }

    private var nextKey: any CodingKey { JSONCodingKey(intValue: self.node.count) }

    mutating func encodeNil() throws { self.node.appendChild().set(.null) }
    mutating func encode(_ value: Bool) throws { self.node.appendChild().set(.bool(value)) }
    mutating func encode(_ value: String) throws { self.node.appendChild().set(.string(value)) }
    mutating func encode(_ value: Double) throws { self.node.appendChild().set(.double(value)) }
    mutating func encode(_ value: Float) throws { self.node.appendChild().set(JSONScalarEncoding.value(value)) }
    mutating func encode(_ value: Int) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { self.node.appendChild().set(.int(value)) }
    mutating func encode(_ value: UInt) throws { self.node.appendChild().set(JSONScalarEncoding.value(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { self.node.appendChild().set(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { self.node.appendChild().set(JSONScalarEncoding.value(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let key = self.nextKey
        try JSONScalarEncoding.encode(value, into: self.node.appendChild(), codingPath: self.codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let key = self.nextKey
        let child = self.node.appendChild()
        child.becomeObject()
        return KeyedEncodingContainer(
            JSONKeyedEncodingContainer<NestedKey>(node: child, codingPath: self.codingPath + [key])
        )
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let key = self.nextKey
        let child = self.node.appendChild()
        child.becomeArray()
        return JSONUnkeyedEncodingContainer(node: child, codingPath: self.codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        let key = self.nextKey
        return JSONValueEncoderImpl(node: self.node.appendChild(), codingPath: self.codingPath + [key])
    }
}

struct JSONSingleValueEncodingContainer: SingleValueEncodingContainer {
    let node: JSONEncodingNode
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { self.node.set(.null) }
    mutating func encode(_ value: Bool) throws { self.node.set(.bool(value)) }
    mutating func encode(_ value: String) throws { self.node.set(.string(value)) }
    mutating func encode(_ value: Double) throws { self.node.set(.double(value)) }
    mutating func encode(_ value: Float) throws { self.node.set(JSONScalarEncoding.value(value)) }
    mutating func encode(_ value: Int) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { self.node.set(.int(value)) }
    mutating func encode(_ value: UInt) throws { self.node.set(JSONScalarEncoding.value(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { self.node.set(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { self.node.set(JSONScalarEncoding.value(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try JSONScalarEncoding.encode(value, into: self.node, codingPath: self.codingPath)
    }
}

/// A coding key made from a string or an array index.
struct JSONCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
}

/// Renders a coding path for error messages: `items[2].name`.
enum JSONCodingPath {
    static func describe(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "the top level" }
        var text = ""
        for key in path {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == String(index) {
                text += "[\(index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text
    }
}
