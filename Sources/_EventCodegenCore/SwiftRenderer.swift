/// Renders a catalog as Swift: payload structs conforming to `SocketEvent` (`SocketAcknowledgedEvent` with an ack),
/// client event structs conforming to `SocketClientEvent`, one struct per ack, the event-name enum and the typed
/// decoder enum. Pure: the same catalog always gives the same bytes.
struct SwiftRenderer {
    let catalog: Catalog
    /// The command named in the header line.
    let generator: String

    private static let decoding = "_GeneratedDecoding"
    private static let encoding = "_GeneratedEncoding"

    func render() -> String {
        var writer = CodeWriter()
        writer.line(
            "// " + GeneratorPipeline.header(self.catalog, generator: self.generator)
        )
        writer.line()
        if self.usesFoundation {
            writer.line("#if canImport(FoundationEssentials)")
            writer.line("public import FoundationEssentials")
            writer.line("#else")
            writer.line("public import Foundation")
            writer.line("#endif")
        }
        writer.line("@_spi(Generated) public import SocketGatewayCore")
        writer.line()
        writer.line("private typealias \(Self.decoding) = SocketGatewayCore.GeneratedEventDecoding")
        if self.usesEncodingHelpers {
            writer.line("private typealias \(Self.encoding) = SocketGatewayCore.GeneratedEventEncoding")
        }
        writer.line()
        self.renderNameEnum(&writer)
        self.renderDecoderEnum(&writer)
        for event in self.catalog.events {
            writer.line()
            writer.doc(event.summary)
            writer.line("///")
            writer.line("/// Event `\(event.name)` in namespace `\(event.namespace)`.")
            let conformance = event.ack == nil ? "SocketEvent" : "SocketAcknowledgedEvent"
            writer.block("public struct \(event.typeName): \(conformance), Codable, Sendable, Hashable {") { writer in
                self.renderEventHeader(event, direction: .toClient, &writer)
                self.renderObjectBody(event.payload, typeName: event.typeName, &writer)
            }
            self.renderAck(of: event, direction: .toClient, &writer)
        }
        for event in self.catalog.clientEvents {
            writer.line()
            writer.doc(event.summary)
            writer.line("///")
            writer.line(
                "/// Client event `\(event.name)` in namespace `\(event.namespace)`: a client sends it to the server."
            )
            writer.block("public struct \(event.typeName): SocketClientEvent, Codable, Sendable, Hashable {") {
                writer in
                self.renderEventHeader(event, direction: .toServer, &writer)
                self.renderObjectBody(event.payload, typeName: event.typeName, &writer)
            }
            self.renderAck(of: event, direction: .toServer, &writer)
        }
        for type in self.catalog.types {
            writer.line()
            self.renderNamedType(type.name, summary: type.summary, type.definition, &writer)
        }
        return writer.text
    }

    // MARK: Catalog-level enums

    private func renderNameEnum(_ writer: inout CodeWriter) {
        writer.line("/// The names of the events in the \(self.catalog.name) catalog; raw values are the wire names.")
        writer.block("public enum \(self.catalog.name)EventName: String, Codable, Sendable, Hashable, CaseIterable {") {
            writer in
            for event in self.catalog.events {
                writer.doc(event.summary.oneLine)
                writer.line("case \(SwiftNaming.escaped(event.caseName)) = \(event.name.quotedLiteral)")
            }
            writer.line()
            writer.line("/// The Socket.IO namespace the event is emitted in.")
            writer.block("public var namespace: String {") { writer in
                writer.switchBlock("switch self {") { writer in
                    for event in self.catalog.events {
                        writer.line("case .\(event.caseName): \(event.typeName).namespace")
                    }
                }
            }
        }
        writer.line()
    }

    private func renderDecoderEnum(_ writer: inout CodeWriter) {
        let name = "\(self.catalog.name)Event"
        writer.line("/// An event of the \(self.catalog.name) catalog, decoded from what a Socket.IO client received.")
        if let summary = self.catalog.summary {
            writer.line("///")
            writer.doc(summary)
        }
        writer.block("public enum \(name): SocketEventCatalog, Sendable, Hashable {") { writer in
            for event in self.catalog.events {
                writer.doc(event.summary.oneLine)
                writer.line("case \(SwiftNaming.escaped(event.caseName))(\(event.typeName))")
            }
            writer.line()
            writer.line("/// Decodes a received event into its typed payload.")
            writer.line("/// - Parameters:")
            writer.line("///   - event: The event name as received.")
            writer.line("///   - arguments: The event's arguments; a catalog event has exactly one, its payload.")
            writer.line(
                "/// - Throws: `SocketEventDecodingError` for an unknown event, a missing field or a value of the wrong type,"
            )
            writer.line("///   with the path of the offending value.")
            writer.block("public init(event: String, arguments: [JSONValue]) throws {") { writer in
                writer.switchBlock("switch event {") { writer in
                    for event in self.catalog.events {
                        writer.line("case \(event.typeName).eventName:")
                        writer.line(
                            "    self = .\(event.caseName)(try \(Self.decoding).payload(event, arguments, \(event.typeName).init(jsonValue:)))"
                        )
                    }
                    writer.line("default:")
                    writer.line(
                        "    throw \(Self.decoding).unknownEvent(event, catalog: \(self.catalog.name.quotedLiteral))"
                    )
                }
            }
            writer.line()
            writer.line("/// The event's name.")
            writer.block("public var name: \(self.catalog.name)EventName {") { writer in
                writer.switchBlock("switch self {") { writer in
                    for event in self.catalog.events {
                        writer.line("case .\(event.caseName): .\(event.caseName)")
                    }
                }
            }
            writer.line()
            writer.line("/// The payload, to emit again or inspect without switching.")
            writer.block("public var payload: any SocketEvent {") { writer in
                writer.switchBlock("switch self {") { writer in
                    for event in self.catalog.events {
                        writer.line("case .\(event.caseName)(let payload): payload")
                    }
                }
            }
        }
    }

    // MARK: Events and acks

    /// Which way an event goes, for the words of its documentation.
    private enum Direction {
        /// A server event (`events`): the client answers its ack.
        case toClient
        /// A client event (`client_events`): the server answers its ack.
        case toServer

        var namespaceDoc: String {
            switch self {
            case .toClient: "The Socket.IO namespace the event is emitted in."
            case .toServer: "The Socket.IO namespace the client sends the event in."
            }
        }

        var receiver: String {
            switch self {
            case .toClient: "client"
            case .toServer: "server"
            }
        }
    }

    /// The wire name, the namespace and, when the event has an ack, its `Ack` type.
    private func renderEventHeader(_ event: Event, direction: Direction, _ writer: inout CodeWriter) {
        writer.line("/// The event's wire name.")
        writer.line("public static let eventName = \(event.name.quotedLiteral)")
        writer.line("/// \(direction.namespaceDoc)")
        writer.line("public static let namespace = \(event.namespace.quotedLiteral)")
        if event.ack != nil {
            writer.line("/// What the \(direction.receiver) answers the event with (its ack).")
            writer.line("public typealias Ack = \(event.ackTypeName)")
        }
        writer.line()
    }

    /// The struct of `event`'s ack, when it has one: read and written as JSON like a payload, so the server
    /// decodes a client's answer and encodes its own.
    private func renderAck(of event: Event, direction: Direction, _ writer: inout CodeWriter) {
        guard let fields = event.ack else { return }
        writer.line()
        writer.line("/// What the \(direction.receiver) answers `\(event.name)` with (its ack).")
        let conformances = "SocketPayloadDecodable, SocketPayloadEncodable, Codable, Sendable, Hashable"
        writer.block("public struct \(event.ackTypeName): \(conformances) {") { writer in
            self.renderObjectBody(fields, typeName: event.ackTypeName, &writer)
        }
    }

    // MARK: Types

    private func renderNamedType(
        _ name: String,
        summary: String?,
        _ definition: TypeDefinition,
        _ writer: inout CodeWriter
    ) {
        writer.doc(summary)
        switch definition {
        case .object(let fields):
            writer.block("public struct \(name): Codable, Sendable, Hashable {") { writer in
                self.renderObjectBody(fields, typeName: name, &writer)
            }
        case .enumeration(let cases):
            writer.block("public enum \(name): String, Codable, Sendable, Hashable, CaseIterable {") { writer in
                for enumCase in cases {
                    writer.line("/// The wire value `\(enumCase.value)`.")
                    writer.line("case \(SwiftNaming.escaped(enumCase.swiftName)) = \(enumCase.value.quotedLiteral)")
                }
            }
        }
    }

    private func renderObjectBody(_ fields: [Field], typeName: String, _ writer: inout CodeWriter) {
        for field in fields {
            writer.doc(field.summary ?? "The `\(field.wireName)` field.")
            writer.line("public var \(SwiftNaming.escaped(field.swiftName)): \(self.swiftType(field.type))")
        }
        if !fields.isEmpty { writer.line() }

        writer.line("/// Creates a value from its fields.")
        let parameters = fields.map { field in
            "\(field.swiftName): \(self.swiftType(field.type))\(field.type.isOptional ? " = nil" : "")"
        }
        writer.block("public init(\(parameters.joined(separator: ", "))) {") { writer in
            for field in fields {
                writer.line("self.\(SwiftNaming.escaped(field.swiftName)) = \(SwiftNaming.escaped(field.swiftName))")
            }
        }
        writer.line()

        writer.line("/// Reads a value from its JSON form.")
        writer.line("/// - Throws: `SocketEventDecodingError` naming the path of a missing or mistyped value.")
        writer.block("public init(jsonValue: JSONValue) throws {") { writer in
            if fields.isEmpty {
                writer.line("_ = try \(Self.decoding).object(jsonValue)")
            } else {
                writer.line("let members = try \(Self.decoding).object(jsonValue)")
            }
            for field in fields {
                let function: String
                let type: FieldType
                if case .optional(let wrapped) = field.type {
                    function = "optional"
                    type = wrapped
                } else {
                    function = "required"
                    type = field.type
                }
                writer.line(
                    "self.\(SwiftNaming.escaped(field.swiftName)) = try \(Self.decoding).\(function)(members, \(field.wireName.quotedLiteral)) { \(self.decodeExpression(type, "$0")) }"
                )
            }
        }
        writer.line()

        writer.line("/// The JSON form, keys in catalog order; absent optional values are left out.")
        writer.block("public var jsonValue: JSONValue {") { writer in
            if fields.contains(where: { $0.type.isOptional }) {
                writer.line("var members: [(key: String, value: JSONValue)] = []")
                writer.line("members.reserveCapacity(\(fields.count))")
                for field in fields {
                    let property = "self.\(SwiftNaming.escaped(field.swiftName))"
                    if case .optional(let wrapped) = field.type {
                        writer.block("if let value = \(property) {") { writer in
                            writer.line(
                                "members.append((key: \(field.wireName.quotedLiteral), value: \(self.encodeExpression(wrapped, "value"))))"
                            )
                        }
                    } else {
                        writer.line(
                            "members.append((key: \(field.wireName.quotedLiteral), value: \(self.encodeExpression(field.type, property))))"
                        )
                    }
                }
                writer.line("return .object(members)")
            } else if fields.isEmpty {
                writer.line(".object([])")
            } else {
                writer.block(".object([", closing: "])") { writer in
                    for field in fields {
                        let property = "self.\(SwiftNaming.escaped(field.swiftName))"
                        writer.line(
                            "(key: \(field.wireName.quotedLiteral), value: \(self.encodeExpression(field.type, property))),"
                        )
                    }
                }
            }
        }

        // Codable goes through the JSON form, so JSONEncoder writes what an emit sends (not Foundation's Date as a
        // number and UUID in uppercase), and JSONDecoder reads what a client receives.
        writer.line()
        writer.line(
            "/// Encodes the value exactly as an emit sends it (its `jsonValue`): timestamps as ISO 8601 strings with"
        )
        writer.line(
            "/// milliseconds, UUIDs in lowercase, absent optional values left out, keys handed over in catalog order."
        )
        writer.block("public func encode(to encoder: any Encoder) throws {") { writer in
            writer.line("try self.jsonValue.encode(to: encoder)")
        }
        writer.line()
        writer.line("/// Decodes the value as `init(jsonValue:)` reads a received payload.")
        writer.line(
            "/// - Throws: `DecodingError.dataCorrupted` wrapping the `SocketEventDecodingError` that names the path."
        )
        writer.block("public init(from decoder: any Decoder) throws {") { writer in
            writer.line("self = try \(Self.decoding).decode(from: decoder, Self.init(jsonValue:))")
        }

        for field in fields {
            if let inline = Self.inlineType(in: field.type) {
                writer.line()
                self.renderNamedType(
                    inline.name,
                    summary: "The type of `\(field.wireName)`.",
                    inline.definition,
                    &writer
                )
            }
        }
    }

    // MARK: Expressions

    private static func inlineType(in type: FieldType) -> InlineType? {
        switch type {
        case .optional(let wrapped), .array(let wrapped): return Self.inlineType(in: wrapped)
        case .inline(let inline): return inline
        default: return nil
        }
    }

    func swiftType(_ type: FieldType) -> String {
        switch type {
        case .string: "String"
        case .int: "Int"
        case .double: "Double"
        case .bool: "Bool"
        case .datetime: "Date"
        case .uuid: "UUID"
        case .optional(let wrapped): "\(self.swiftType(wrapped))?"
        case .array(let element): "[\(self.swiftType(element))]"
        case .named(let name): name
        case .inline(let inline): inline.name
        }
    }

    private func isEnum(_ type: FieldType) -> Bool {
        switch type {
        case .named(let name):
            if case .enumeration = self.catalog.type(named: name)?.definition { return true }
            return false
        case .inline(let inline):
            if case .enumeration = inline.definition { return true }
            return false
        default:
            return false
        }
    }

    private func decodeExpression(_ type: FieldType, _ value: String) -> String {
        let d = Self.decoding
        switch type {
        case .string: return "try \(d).string(\(value))"
        case .int: return "try \(d).int(\(value))"
        case .double: return "try \(d).double(\(value))"
        case .bool: return "try \(d).bool(\(value))"
        case .datetime: return "try \(d).date(\(value))"
        case .uuid: return "try \(d).uuid(\(value))"
        case .optional(let wrapped): return "try \(d).nullable(\(value)) { \(self.decodeExpression(wrapped, "$0")) }"
        case .array(let element): return "try \(d).array(\(value)) { \(self.decodeExpression(element, "$0")) }"
        case .named, .inline:
            if self.isEnum(type) { return "try \(d).enumeration(\(value), as: \(self.swiftType(type)).self)" }
            return "try \(self.swiftType(type))(jsonValue: \(value))"
        }
    }

    private func encodeExpression(_ type: FieldType, _ value: String) -> String {
        switch type {
        case .string: return "JSONValue.string(\(value))"
        case .int: return "JSONValue.int(Int64(\(value)))"
        case .double: return "JSONValue.double(\(value))"
        case .bool: return "JSONValue.bool(\(value))"
        case .datetime: return "JSONValue.string(\(Self.encoding).iso8601(\(value)))"
        case .uuid: return "JSONValue.string(\(Self.encoding).uuid(\(value)))"
        case .optional(let wrapped): return "\(value).map { \(self.encodeExpression(wrapped, "$0")) } ?? JSONValue.null"
        case .array(let element): return "JSONValue.array(\(value).map { \(self.encodeExpression(element, "$0")) })"
        case .named, .inline:
            if self.isEnum(type) { return "JSONValue.string(\(value).rawValue)" }
            return "\(value).jsonValue"
        }
    }

    // MARK: Imports

    private var allFieldTypes: [FieldType] {
        var result: [FieldType] = []
        func visit(_ fields: [Field]) {
            for field in fields { visitType(field.type) }
        }
        func visitType(_ type: FieldType) {
            result.append(type)
            switch type {
            case .optional(let wrapped), .array(let wrapped): visitType(wrapped)
            case .inline(let inline): if case .object(let fields) = inline.definition { visit(fields) }
            default: break
            }
        }
        for event in self.catalog.events + self.catalog.clientEvents {
            visit(event.payload)
            visit(event.ack ?? [])
        }
        for type in self.catalog.types { if case .object(let fields) = type.definition { visit(fields) } }
        return result
    }

    private var usesFoundation: Bool {
        self.allFieldTypes.contains { $0 == .datetime || $0 == .uuid }
    }

    private var usesEncodingHelpers: Bool { self.usesFoundation }
}
