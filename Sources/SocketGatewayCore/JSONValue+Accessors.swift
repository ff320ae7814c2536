public import NIOCore

extension JSONValue {
    /// The string, if this is `.string`.
    @inlinable
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, if this is `.int`, or a `.double` that holds an integer exactly representable in 64 bits.
    @inlinable
    public var intValue: Int64? {
        switch self {
        case .int(let value):
            return value
        case .double(let value):
            return Int64(exactly: value)
        default:
            return nil
        }
    }

    /// The number as a `Double`, if this is `.int` or `.double`.
    @inlinable
    public var doubleValue: Double? {
        switch self {
        case .int(let value):
            return Double(value)
        case .double(let value):
            return value
        default:
            return nil
        }
    }

    /// The boolean, if this is `.bool`.
    @inlinable
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements, if this is `.array`.
    @inlinable
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The key/value pairs in order, if this is `.object`.
    @inlinable
    public var objectValue: [(key: String, value: JSONValue)]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The bytes, if this is `.binary`.
    @inlinable
    public var binaryValue: ByteBuffer? {
        if case .binary(let value) = self { return value }
        return nil
    }

    /// Whether this is `.null`.
    @inlinable
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value of the last pair named `key`, if this is an object that has one.
    ///
    /// Of duplicate keys the last wins, as in `JSON.parse` and Python's `json.loads`: what a browser or a Python
    /// peer reads from the same text.
    @inlinable
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        for pair in pairs.reversed() where pair.key == key {
            return pair.value
        }
        return nil
    }

    /// The element at `index`, if this is an array and `index` is in range.
    @inlinable
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}
