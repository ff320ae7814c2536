/// A JSON value as the payload validator sees it (the core has no JSON library of its own; callers convert).
public indirect enum PayloadValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// An integer.
    case int(Int64)
    /// A number with a fraction or exponent.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([PayloadValue])
    /// An object, keys in order.
    case object([(key: String, value: PayloadValue)])

    /// Structural equality (object keys compared in order).
    public static func == (lhs: PayloadValue, rhs: PayloadValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Hashes the structure.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .int(let value): hasher.combine(value)
        case .double(let value): hasher.combine(value)
        case .string(let value): hasher.combine(value)
        case .array(let values): hasher.combine(values)
        case .object(let pairs):
            for pair in pairs {
                hasher.combine(pair.key)
                hasher.combine(pair.value)
            }
        }
    }

    fileprivate var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Why a payload does not match its event in the catalog.
public struct PayloadValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The event name.
    public var event: String
    /// Where in the payload, as a JSON path (`$`, `$.stage`, `$.warnings[2].row`); empty for event-level problems.
    public var path: String
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(event: String, path: String, message: String) {
        self.event = event
        self.path = path
        self.message = message
    }

    /// `event: path: message`.
    public var description: String {
        self.path.isEmpty ? "\(self.event): \(self.message)" : "\(self.event): \(self.path): \(self.message)"
    }
}

extension Catalog {
    /// Checks that `payload` is a valid payload of `eventName` (what the generated Swift type would accept, and
    /// no unknown keys), emitted in `namespace`.
    /// - Parameters:
    ///   - eventName: The wire name, e.g. `sheet:sync:progress`.
    ///   - payload: The event's one argument.
    ///   - namespace: The namespace it is emitted in; `nil` skips that check.
    /// - Throws: The first ``PayloadValidationError`` found.
    public func validate(
        event eventName: String,
        payload: PayloadValue,
        namespace: String? = nil
    ) throws(PayloadValidationError) {
        if let first = self.problems(event: eventName, payload: payload, namespace: namespace).first { throw first }
    }

    /// Every way `payload` fails to be a valid payload of `eventName` in `namespace`, in payload order; empty
    /// when it is valid (see ``validate(event:payload:namespace:)``).
    /// - Parameters:
    ///   - eventName: The wire name, e.g. `sheet:sync:progress`.
    ///   - payload: The event's one argument.
    ///   - namespace: The namespace it is emitted in; `nil` skips that check.
    /// - Returns: One ``PayloadValidationError`` per mismatch (an unknown event is one problem).
    public func problems(
        event eventName: String,
        payload: PayloadValue,
        namespace: String? = nil
    ) -> [PayloadValidationError] {
        guard let event = self.events.first(where: { $0.name == eventName }) else {
            let known = self.events.map(\.name).joined(separator: ", ")
            return [
                PayloadValidationError(
                    event: eventName,
                    path: "",
                    message: "not in catalog \(self.name) (known: \(known))"
                )
            ]
        }
        var validator = PayloadValidator(catalog: self, event: eventName)
        if let namespace, namespace != event.namespace {
            validator.report("", "belongs to namespace \(event.namespace), not \(namespace)")
        }
        validator.object(payload, fields: event.payload, path: "$")
        return validator.problems
    }
}

private struct PayloadValidator {
    let catalog: Catalog
    let event: String
    var depth = 0
    /// What was found so far, in payload order.
    var problems: [PayloadValidationError] = []

    mutating func report(_ path: String, _ message: String) {
        self.problems.append(PayloadValidationError(event: self.event, path: path, message: message))
    }

    mutating func object(_ value: PayloadValue, fields: [Field], path: String) {
        guard case .object(let pairs) = value else {
            return self.report(path, "expected an object, got \(value.kind)")
        }
        let known = Set(fields.map(\.wireName))
        for unknown in pairs where !known.contains(unknown.key) {
            self.report(
                path,
                "unknown field '\(unknown.key)' (expected: \(fields.map(\.wireName).joined(separator: ", ")))"
            )
        }
        for field in fields {
            let fieldPath = "\(path).\(field.wireName)"
            guard let item = pairs.last(where: { $0.key == field.wireName })?.value else {
                if !field.type.isOptional { self.report(fieldPath, "missing (required \(Self.describe(field.type)))") }
                continue
            }
            self.value(item, type: field.type, path: fieldPath)
        }
    }

    mutating func value(_ value: PayloadValue, type: FieldType, path: String) {
        self.depth += 1
        defer { self.depth -= 1 }
        guard self.depth < 64 else { return self.report(path, "nested too deeply") }
        switch type {
        case .optional(let wrapped):
            if case .null = value { return }
            self.value(value, type: wrapped, path: path)
        case .string:
            guard case .string = value else { return self.mismatch(value, type, path) }
        case .int:
            switch value {
            case .int: return
            case .double(let number) where number.rounded() == number && abs(number) < 9.007_199_254_740_992e15: return
            default: return self.mismatch(value, type, path)
            }
        case .double:
            switch value {
            case .int, .double: return
            default: return self.mismatch(value, type, path)
            }
        case .bool:
            guard case .bool = value else { return self.mismatch(value, type, path) }
        case .datetime:
            guard case .string(let text) = value else { return self.mismatch(value, type, path) }
            guard Self.isISO8601(text) else {
                return self.report(path, "expected an ISO 8601 timestamp (e.g. 2026-01-31T12:00:00Z), got \"\(text)\"")
            }
        case .uuid:
            guard case .string(let text) = value else { return self.mismatch(value, type, path) }
            guard Self.isUUID(text) else { return self.report(path, "expected a UUID, got \"\(text)\"") }
        case .array(let element):
            guard case .array(let items) = value else { return self.mismatch(value, type, path) }
            for (index, item) in items.enumerated() {
                self.value(item, type: element, path: "\(path)[\(index)]")
            }
        case .named(let name):
            guard let named = self.catalog.type(named: name) else { return self.report(path, "unknown type \(name)") }
            self.definition(value, named.definition, path: path)
        case .inline(let inline):
            self.definition(value, inline.definition, path: path)
        }
    }

    mutating func definition(
        _ value: PayloadValue,
        _ definition: TypeDefinition,
        path: String
    ) {
        switch definition {
        case .object(let fields):
            self.object(value, fields: fields, path: path)
        case .enumeration(let cases):
            let values = cases.map(\.value)
            guard case .string(let text) = value, values.contains(text) else {
                let got: String
                if case .string(let text) = value { got = "\"\(text)\"" } else { got = value.kind }
                return self.report(path, "expected one of \(values.joined(separator: ", ")), got \(got)")
            }
        }
    }

    mutating func mismatch(_ value: PayloadValue, _ type: FieldType, _ path: String) {
        self.report(path, "expected \(Self.describe(type)), got \(value.kind)")
    }

    static func describe(_ type: FieldType) -> String {
        switch type {
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .datetime: "an ISO 8601 timestamp string"
        case .uuid: "a UUID string"
        case .optional(let wrapped): "\(describe(wrapped)) or null"
        case .array(let element): "an array of \(describe(element))"
        case .named(let name): name
        case .inline(let inline): inline.name
        }
    }

    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                let isHex =
                    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
                guard isHex else { return false }
            }
        }
        return true
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    static func isISO8601(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Bool {
            range.upperBound <= bytes.count
                && range.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[$0]) }
        }
        func byte(_ index: Int, _ expected: Character) -> Bool {
            index < bytes.count && bytes[index] == expected.asciiValue
        }
        guard digits(0..<4), byte(4, "-"), digits(5..<7), byte(7, "-"), digits(8..<10), byte(10, "T") || byte(10, "t"),
            digits(11..<13), byte(13, ":"), digits(14..<16), byte(16, ":"), digits(17..<19)
        else { return false }
        var index = 19
        if byte(index, ".") {
            index += 1
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > start else { return false }
        }
        if byte(index, "Z") || byte(index, "z") { return index + 1 == bytes.count }
        guard byte(index, "+") || byte(index, "-"), digits((index + 1)..<(index + 3)), byte(index + 3, ":"),
            digits((index + 4)..<(index + 6))
        else { return false }
        return index + 6 == bytes.count
    }
}

extension Catalog {
    /// `payload` as the generated Swift type of `eventName` writes it: every `uuid` value in lowercase (the
    /// generated decoder reads a UUID in either case, its encoder writes lowercase, and so do JavaScript and
    /// Python). Everything else is returned as it is.
    ///
    /// Call it on a payload that ``validate(event:payload:namespace:)`` accepted; parts that do not match the
    /// catalog, and an unknown event, are left unchanged.
    /// - Parameters:
    ///   - eventName: The wire name, e.g. `sheet:sync:progress`.
    ///   - payload: The event's one argument.
    /// - Returns: The payload with its UUIDs lowercased.
    public func canonicalPayload(event eventName: String, payload: PayloadValue) -> PayloadValue {
        guard let event = self.events.first(where: { $0.name == eventName }) else { return payload }
        return self.canonical(payload, fields: event.payload)
    }

    private func canonical(_ value: PayloadValue, fields: [Field]) -> PayloadValue {
        guard case .object(let pairs) = value else { return value }
        return .object(
            pairs.map { pair in
                guard let field = fields.first(where: { $0.wireName == pair.key }) else { return pair }
                return (key: pair.key, value: self.canonical(pair.value, type: field.type))
            }
        )
    }

    // Recursion is bounded by the payload, which the validator accepted (nested at most 64 deep).
    private func canonical(_ value: PayloadValue, type: FieldType) -> PayloadValue {
        switch (type, value) {
        case (.optional(let wrapped), _):
            return self.canonical(value, type: wrapped)
        case (.uuid, .string(let text)):
            return .string(text.lowercased())
        case (.array(let element), .array(let items)):
            return .array(items.map { self.canonical($0, type: element) })
        case (.named(let name), _):
            guard let named = self.type(named: name), case .object(let fields) = named.definition else { return value }
            return self.canonical(value, fields: fields)
        case (.inline(let inline), _):
            guard case .object(let fields) = inline.definition else { return value }
            return self.canonical(value, fields: fields)
        default:
            return value
        }
    }
}
