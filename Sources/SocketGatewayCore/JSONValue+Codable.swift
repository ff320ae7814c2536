import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JSONValue: Codable {
    /// Decodes any JSON value.
    ///
    /// Through ``JSONValueDecoder`` the value is taken as is (object key order and binary kept). Through other
    /// decoders such as Foundation's `JSONDecoder`, the value is probed as null, boolean, integer, number, string,
    /// array, then object; object keys then come in the order that decoder lists them (Foundation does not keep
    /// the document's order).
    /// - Parameter decoder: The decoder.
    /// - Throws: `DecodingError` when the input is none of these.
    public init(from decoder: any Decoder) throws {
        if let decoder = decoder as? JSONValueDecoderImpl {
            self = decoder.value
            return
        }
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

    /// Encodes this value: through ``JSONValueEncoder`` as is; through other encoders (Foundation's
    /// `JSONEncoder`) as the matching JSON, with `.binary` as `Data` (base64 in `JSONEncoder`). Keys are handed
    /// over in order, but Foundation's `JSONEncoder` does not promise to keep it.
    /// - Parameter encoder: The encoder.
    /// - Throws: What the encoder throws (e.g. `JSONEncoder` for NaN).
    public func encode(to encoder: any Encoder) throws {
        if let encoder = encoder as? JSONValueEncoderImpl {
            encoder.node.set(self)
            return
        }
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
