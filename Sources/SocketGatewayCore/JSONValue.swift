public import NIOCore

/// An arbitrary JSON value as it travels in Socket.IO arguments and pub/sub messages.
///
/// Objects keep their keys in insertion order, so a value decoded and encoded again comes out byte for byte
/// as it went in (compact form). `binary` is not JSON: it stands for a binary attachment inside Socket.IO
/// arguments, which the Socket.IO codec replaces by `{"_placeholder":true,"num":N}` on the wire.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits in 64 bits.
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Key/value pairs in the order they were written or parsed.
    case object([(key: String, value: JSONValue)])
    /// A binary attachment (Socket.IO only).
    case binary(ByteBuffer)
}

// MARK: - Equatable and Hashable

extension JSONValue {
    /// Structural equality: same case, same payload, object keys compared in order.
    ///
    /// `.int(1)` and `.double(1)` are different values (they are written differently by Python), and two objects
    /// with the same pairs in a different order are different. Doubles compare by value, except that NaN equals
    /// NaN so that equality stays reflexive.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null):
            return true
        case (.bool(let a), .bool(let b)):
            return a == b
        case (.int(let a), .int(let b)):
            return a == b
        case (.double(let a), .double(let b)):
            return a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)):
            return a == b
        case (.array(let a), .array(let b)):
            return a == b
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for index in a.indices where a[index].key != b[index].key || a[index].value != b[index].value {
                return false
            }
            return true
        case (.binary(let a), .binary(let b)):
            return a == b
        default:
            return false
        }
    }

    /// Hashes the value consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0 as UInt8)
        case .bool(let value):
            hasher.combine(1 as UInt8)
            hasher.combine(value)
        case .int(let value):
            hasher.combine(2 as UInt8)
            hasher.combine(value)
        case .double(let value):
            hasher.combine(3 as UInt8)
            if value.isNaN {
                hasher.combine(Double.nan.bitPattern)
            } else {
                hasher.combine(value)  // Double's hash already treats 0.0 and -0.0 alike.
            }
        case .string(let value):
            hasher.combine(4 as UInt8)
            hasher.combine(value)
        case .array(let values):
            hasher.combine(5 as UInt8)
            hasher.combine(values)
        case .object(let pairs):
            hasher.combine(6 as UInt8)
            hasher.combine(pairs.count)
            for pair in pairs {
                hasher.combine(pair.key)
                hasher.combine(pair.value)
            }
        case .binary(let bytes):
            hasher.combine(7 as UInt8)
            hasher.combine(bytes)
        }
    }
}
