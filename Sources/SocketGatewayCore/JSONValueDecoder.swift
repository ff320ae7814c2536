import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes `Decodable` values from a ``JSONValue`` tree; the counterpart of ``JSONValueEncoder``.
///
/// `Date` is read from an ISO 8601 string with or without fractional seconds, in UTC (`Z`) or with an offset
/// (`+02:00`); `UUID` from a string in either case; `URL` from a string; `Data` from `.binary` or a base64 string;
/// a `JSONValue` as is. Integers are read from `.int` or from a `.double` that holds an integer exactly; they must
/// fit the requested type. Errors are `DecodingError`s whose message names the coding path (`items[2].name`).
public struct JSONValueDecoder: Sendable {
    /// Creates a decoder.
    public init() {}

    /// Decodes a value of `type` from `value`.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - value: The JSON value.
    /// - Returns: The decoded value.
    /// - Throws: `DecodingError` naming the coding path and what was expected there.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try JSONValueDecoderImpl(value: value, codingPath: []).decodeValue(type)
    }
}

/// Shared pieces of the decoding containers.
enum JSONScalarDecoding {
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return "the boolean \(flag)"
        case .int(let number): return "the number \(number)"
        case .double(let number): return "the number \(number)"
        case .string(let text): return "the string \"\(text.count > 40 ? String(text.prefix(40)) + "…" : text)\""
        case .array(let elements): return "an array of \(elements.count) element(s)"
        case .object: return "an object"
        case .binary(let bytes): return "binary data (\(bytes.readableBytes) bytes)"
        }
    }

    static func mismatch(
        _ type: Any.Type,
        _ expectation: String,
        _ value: JSONValue,
        _ path: [any CodingKey]
    ) -> DecodingError {
        DecodingError.typeMismatch(
            type,
            DecodingError.Context(
                codingPath: path,
                debugDescription:
                    "At \(JSONCodingPath.describe(path)): expected \(expectation), found \(Self.describe(value))."
            )
        )
    }

    static func corrupted(_ message: String, _ path: [any CodingKey]) -> DecodingError {
        DecodingError.dataCorrupted(
            DecodingError.Context(codingPath: path, debugDescription: "At \(JSONCodingPath.describe(path)): \(message)")
        )
    }

    static func bool(_ value: JSONValue, _ path: [any CodingKey]) throws -> Bool {
        guard case .bool(let flag) = value else { throw Self.mismatch(Bool.self, "a boolean", value, path) }
        return flag
    }

    static func string(_ value: JSONValue, _ path: [any CodingKey]) throws -> String {
        guard case .string(let text) = value else { throw Self.mismatch(String.self, "a string", value, path) }
        return text
    }

    static func double(_ value: JSONValue, _ path: [any CodingKey]) throws -> Double {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number): return number
        default: throw Self.mismatch(Double.self, "a number", value, path)
        }
    }

    static func float(_ value: JSONValue, _ path: [any CodingKey]) throws -> Float {
        let number = try Self.double(value, path)
        let result = Float(number)
        if number.isFinite && !result.isFinite {
            throw Self.corrupted("the number \(number) does not fit in Float.", path)
        }
        return result
    }

    static func integer<T: FixedWidthInteger>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> T {
        switch value {
        case .int(let number):
            guard let result = T(exactly: number) else {
                throw Self.corrupted("the number \(number) does not fit in \(T.self).", path)
            }
            return result
        case .double(let number):
            guard let result = T(exactly: number) else {
                throw Self.corrupted("the number \(number) is not an integer that fits in \(T.self).", path)
            }
            return result
        default:
            throw Self.mismatch(T.self, "an integer", value, path)
        }
    }

    /// Decodes the types that get special treatment; nil for everything else.
    static func special<T: Decodable>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> T? {
        if type == JSONValue.self {
            return value as? T
        }
        if type == Date.self {
            let text = try Self.string(value, path)
            guard let date = JSONDateFormatting.date(from: text) else {
                throw Self.corrupted(
                    "expected an ISO 8601 date such as 2026-11-29T19:13:03.120Z, found \"\(text)\".",
                    path
                )
            }
            return date as? T
        }
        if type == UUID.self {
            let text = try Self.string(value, path)
            guard let uuid = UUID(uuidString: text) else {
                throw Self.corrupted("expected a UUID string, found \"\(text)\".", path)
            }
            return uuid as? T
        }
        if type == URL.self {
            let text = try Self.string(value, path)
            guard let url = URL(string: text) else {
                throw Self.corrupted("expected a URL, found \"\(text)\".", path)
            }
            return url as? T
        }
        if type == Data.self {
            switch value {
            case .binary(let bytes):
                return Data(bytes.readableBytesView) as? T
            case .string(let text):
                guard let data = Data(base64Encoded: text) else {
                    throw Self.corrupted(
                        "expected binary data or a base64 string, found a string that is not base64.",
                        path
                    )
                }
                return data as? T
            default:
                throw Self.mismatch(Data.self, "binary data or a base64 string", value, path)
            }
        }
        if type == Decimal.self {
            switch value {
            case .int(let number):
                return Decimal(number) as? T
            case .double(let number):
                guard number.isFinite, let decimal = Decimal(string: JSONValue.double(number).jsonString) else {
                    throw Self.corrupted("the number \(number) cannot be a Decimal.", path)
                }
                return decimal as? T
            default:
                throw Self.mismatch(Decimal.self, "a number", value, path)
            }
        }
        return nil
    }
}

struct JSONValueDecoderImpl: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if let special = try JSONScalarDecoding.special(type, self.value, self.codingPath) {
            return special
        }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let pairs) = self.value else {
            throw JSONScalarDecoding.mismatch([String: JSONValue].self, "an object", self.value, self.codingPath)
        }
        return KeyedDecodingContainer(JSONKeyedDecodingContainer<Key>(pairs: pairs, codingPath: self.codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = self.value else {
            throw JSONScalarDecoding.mismatch([JSONValue].self, "an array", self.value, self.codingPath)
        }
        return JSONUnkeyedDecodingContainer(elements: elements, codingPath: self.codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        JSONSingleValueDecodingContainer(value: self.value, codingPath: self.codingPath)
    }
}

struct JSONKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let codingPath: [any CodingKey]
    private let values: [String: JSONValue]
    let allKeys: [Key]

    init(pairs: [(key: String, value: JSONValue)], codingPath: [any CodingKey]) {
        var values: [String: JSONValue] = [:]
        values.reserveCapacity(pairs.count)
        var keys: [Key] = []
        for pair in pairs {
            // The last of duplicate keys wins, as in JSON.parse, json.loads and JSONValue's subscript; the key keeps
            // the position of its first occurrence.
            if values.updateValue(pair.value, forKey: pair.key) == nil, let key = Key(stringValue: pair.key) {
                keys.append(key)
            }
        }
        self.values = values
        self.allKeys = keys
        self.codingPath = codingPath
    }

    func contains(_ key: Key) -> Bool {
        self.values[key.stringValue] != nil
    }

    private func value(for key: Key) throws -> JSONValue {
        guard let value = self.values[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: self.codingPath,
                    debugDescription:
                        "At \(JSONCodingPath.describe(self.codingPath)): no value for the key \"\(key.stringValue)\"."
                )
            )
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try self.value(for: key).isNull
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try JSONScalarDecoding.bool(self.value(for: key), self.codingPath + [key])
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try JSONScalarDecoding.string(self.value(for: key), self.codingPath + [key])
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        try JSONScalarDecoding.double(self.value(for: key), self.codingPath + [key])
    }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        try JSONScalarDecoding.float(self.value(for: key), self.codingPath + [key])
    }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try self.integer(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try self.integer(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try self.integer(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try self.integer(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try self.integer(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try self.integer(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try self.integer(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try self.integer(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try self.integer(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try self.integer(type, key) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type, _ key: Key) throws -> T {
        try JSONScalarDecoding.integer(type, self.value(for: key), self.codingPath + [key])
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try JSONValueDecoderImpl(value: self.value(for: key), codingPath: self.codingPath + [key]).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try JSONValueDecoderImpl(value: self.value(for: key), codingPath: self.codingPath + [key]).container(
            keyedBy: type
        )
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try JSONValueDecoderImpl(value: self.value(for: key), codingPath: self.codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        let key = JSONCodingKey(stringValue: "super")
        return JSONValueDecoderImpl(value: self.values[key.stringValue] ?? .null, codingPath: self.codingPath + [key])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        JSONValueDecoderImpl(value: self.values[key.stringValue] ?? .null, codingPath: self.codingPath + [key])
    }
}

struct JSONUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex: Int = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { self.elements.count }
    var isAtEnd: Bool { self.currentIndex >= self.elements.count }

    private var currentPath: [any CodingKey] { self.codingPath + [JSONCodingKey(intValue: self.currentIndex)] }

    private mutating func next(_ type: Any.Type) throws -> JSONValue {
        guard !self.isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                DecodingError.Context(
                    codingPath: self.currentPath,
                    debugDescription:
                        "At \(JSONCodingPath.describe(self.codingPath)): the array has only \(self.elements.count) element(s)."
                )
            )
        }
        defer { self.currentIndex += 1 }
        return self.elements[self.currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !self.isAtEnd else { return false }
        if self.elements[self.currentIndex].isNull {
            self.currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool {
        let path = self.currentPath
        return try JSONScalarDecoding.bool(self.next(type), path)
    }
    mutating func decode(_ type: String.Type) throws -> String {
        let path = self.currentPath
        return try JSONScalarDecoding.string(self.next(type), path)
    }
    mutating func decode(_ type: Double.Type) throws -> Double {
        let path = self.currentPath
        return try JSONScalarDecoding.double(self.next(type), path)
    }
    mutating func decode(_ type: Float.Type) throws -> Float {
        let path = self.currentPath
        return try JSONScalarDecoding.float(self.next(type), path)
    }
    mutating func decode(_ type: Int.Type) throws -> Int { try self.integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try self.integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try self.integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try self.integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try self.integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try self.integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try self.integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try self.integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try self.integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try self.integer(type) }

    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let path = self.currentPath
        return try JSONScalarDecoding.integer(type, self.next(type), path)
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let path = self.currentPath
        return try JSONValueDecoderImpl(value: self.next(type), codingPath: path).decodeValue(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let path = self.currentPath
        return try JSONValueDecoderImpl(value: self.next(JSONValue.self), codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let path = self.currentPath
        return try JSONValueDecoderImpl(value: self.next(JSONValue.self), codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let path = self.currentPath
        return JSONValueDecoderImpl(value: try self.next(JSONValue.self), codingPath: path)
    }
}

struct JSONSingleValueDecodingContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { self.value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try JSONScalarDecoding.bool(self.value, self.codingPath) }
    func decode(_ type: String.Type) throws -> String { try JSONScalarDecoding.string(self.value, self.codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try JSONScalarDecoding.double(self.value, self.codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try JSONScalarDecoding.float(self.value, self.codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try JSONScalarDecoding.integer(type, self.value, self.codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try JSONScalarDecoding.integer(type, self.value, self.codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: Int32.Type) throws -> Int32 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: Int64.Type) throws -> Int64 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: UInt.Type) throws -> UInt { try JSONScalarDecoding.integer(type, self.value, self.codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: UInt16.Type) throws -> UInt16 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: UInt32.Type) throws -> UInt32 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }
    func decode(_ type: UInt64.Type) throws -> UInt64 {
        try JSONScalarDecoding.integer(type, self.value, self.codingPath)
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONValueDecoderImpl(value: self.value, codingPath: self.codingPath).decodeValue(type)
    }
}
