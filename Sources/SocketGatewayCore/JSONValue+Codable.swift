import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JSONValue: Codable {
    /// Decodes any JSON value.
    ///
    /// The value is probed as null, boolean, integer, number, string, array, then object; object keys come in the
    /// order the decoder lists them (Foundation's `JSONDecoder` does not keep the document's order).
    /// - Parameter decoder: The decoder.
    /// - Throws: `DecodingError` when the input is none of these.
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer() {
            if container.decodeNil() {
                self = .null
                return
            }
            if let flag = try? container.decode(Bool.self) {
                self = .bool(flag)
                return
            }
            if let number = try? container.decode(Int64.self) {
                self = .int(number)
                return
            }
            if let number = try? container.decode(Double.self) {
                self = .double(number)
                return
            }
            if let text = try? container.decode(String.self) {
                self = .string(text)
                return
            }
        }
        if var container = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            if let count = container.count { elements.reserveCapacity(count) }
            while !container.isAtEnd {
                elements.append(try container.decode(JSONValue.self))
            }
            self = .array(elements)
            return
        }
        let container = try decoder.container(keyedBy: JSONCodingKey.self)
        var pairs: [(key: String, value: JSONValue)] = []
        pairs.reserveCapacity(container.allKeys.count)
        for key in container.allKeys {
            pairs.append((key: key.stringValue, value: try container.decode(JSONValue.self, forKey: key)))
        }
        self = .object(pairs)
    }

    /// Encodes this value as the matching JSON, with `.binary` as `Data` (base64 in `JSONEncoder`). Keys are handed
    /// over in order, but Foundation's `JSONEncoder` does not keep it (`.sortedKeys` makes its output stable).
    /// - Parameter encoder: The encoder.
    /// - Throws: What the encoder throws (e.g. `JSONEncoder` for NaN).
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let flag):
            var container = encoder.singleValueContainer()
            try container.encode(flag)
        case .int(let number):
            var container = encoder.singleValueContainer()
            try container.encode(number)
        case .double(let number):
            var container = encoder.singleValueContainer()
            try container.encode(number)
        case .string(let text):
            var container = encoder.singleValueContainer()
            try container.encode(text)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements {
                try container.encode(element)
            }
        case .object(let pairs):
            var container = encoder.container(keyedBy: JSONCodingKey.self)
            for pair in pairs {
                try container.encode(pair.value, forKey: JSONCodingKey(stringValue: pair.key))
            }
        case .binary(let bytes):
            var container = encoder.singleValueContainer()
            try container.encode(Data(bytes.readableBytesView))
        }
    }
}

/// A coding key for any object member.
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
