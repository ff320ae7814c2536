/// Renders a catalog as an AsyncAPI 3.0 document: one channel per Socket.IO namespace; a `send` operation per
/// server event and a `receive` operation per client event, each with its message; a `reply` naming the ack message
/// for events that declare an ack; JSON Schemas for payloads, acks and named types.
struct AsyncAPIRenderer {
    let catalog: Catalog

    /// One event of either direction, with the names the document gives it.
    private struct Entry {
        var event: Event
        /// `send` for a server event, `receive` for a client event (the server's point of view).
        var action: String
        /// The operation id's prefix: `emit` or `receive`.
        var verb: String
        /// Who sends the ack back: the other side.
        var answerer: String
    }

    private var entries: [Entry] {
        self.catalog.events.map { Entry(event: $0, action: "send", verb: "emit", answerer: "client") }
            + self.catalog.clientEvents.map { Entry(event: $0, action: "receive", verb: "receive", answerer: "server") }
    }

    func document() -> DocumentNode {
        var channels: [(String, DocumentNode)] = []
        var operations: [(String, DocumentNode)] = []
        for namespace in self.catalog.namespaces {
            let channelID = Self.channelID(namespace)
            let entries = self.entries.filter { $0.event.namespace == namespace }
            var channelMessages: [(String, DocumentNode)] = []
            for entry in entries {
                channelMessages.append(Self.messageReference(entry.event.caseName))
                if entry.event.ack != nil { channelMessages.append(Self.messageReference(Self.ackID(entry.event))) }
            }
            channels.append(
                (
                    channelID,
                    .object([
                        ("address", .string(namespace)),
                        ("title", .string("Socket.IO namespace \(namespace)")),
                        ("messages", .object(channelMessages)),
                    ])
                )
            )
            for entry in entries {
                let event = entry.event
                let channel = DocumentNode.object([("$ref", .string("#/channels/\(channelID)"))])
                var operation: [(String, DocumentNode)] = [
                    ("action", .string(entry.action)),
                    ("channel", channel),
                    ("summary", .string(event.summary.oneLine)),
                    (
                        "messages",
                        .array([.object([("$ref", .string("#/channels/\(channelID)/messages/\(event.caseName)"))])])
                    ),
                ]
                if event.ack != nil {
                    let ackReference = "#/channels/\(channelID)/messages/\(Self.ackID(event))"
                    operation.append(
                        (
                            "reply",
                            .object([
                                ("channel", channel),
                                ("messages", .array([.object([("$ref", .string(ackReference))])])),
                            ])
                        )
                    )
                }
                operations.append(("\(entry.verb)\(event.typeName)", .object(operation)))
            }
        }
        operations.sort { $0.0 < $1.0 }

        var messages: [(String, DocumentNode)] = []
        var schemas: [(String, DocumentNode)] = []
        for entry in self.entries {
            let event = entry.event
            messages.append(
                (
                    event.caseName,
                    .object([
                        ("name", .string(event.name)),
                        ("title", .string(event.typeName)),
                        ("summary", .string(event.summary.oneLine)),
                        ("payload", .object([("$ref", .string("#/components/schemas/\(event.typeName)"))])),
                    ])
                )
            )
            schemas.append((event.typeName, self.objectSchema(event.payload, description: event.summary)))
            guard let ack = event.ack else { continue }
            let description =
                "The \(entry.answerer)'s answer to `\(event.name)`, sent as its Socket.IO acknowledgement."
            messages.append(
                (
                    Self.ackID(event),
                    .object([
                        ("title", .string(event.ackTypeName)),
                        ("summary", .string(description)),
                        ("payload", .object([("$ref", .string("#/components/schemas/\(event.ackTypeName)"))])),
                    ])
                )
            )
            schemas.append((event.ackTypeName, self.objectSchema(ack, description: description)))
        }
        for type in self.catalog.types {
            switch type.definition {
            case .object(let fields): schemas.append((type.name, self.objectSchema(fields, description: type.summary)))
            case .enumeration(let cases): schemas.append((type.name, Self.enumSchema(cases, description: type.summary)))
            }
        }
        schemas.sort { $0.0 < $1.0 }

        var info: [(String, DocumentNode)] = [
            ("title", .string("\(self.catalog.name) events")),
            ("version", .string("\(self.catalog.version)")),
        ]
        if let summary = self.catalog.summary { info.append(("description", .string(summary))) }
        return .object([
            ("asyncapi", .string("3.0.0")),
            ("info", .object(info)),
            ("defaultContentType", .string("application/json")),
            ("channels", .object(channels)),
            ("operations", .object(operations)),
            ("components", .object([("messages", .object(messages)), ("schemas", .object(schemas))])),
        ])
    }

    /// The message id of an event's ack: its case name + `Ack`.
    private static func ackID(_ event: Event) -> String { event.caseName + "Ack" }

    private static func messageReference(_ id: String) -> (String, DocumentNode) {
        (id, .object([("$ref", .string("#/components/messages/\(id)"))]))
    }

    private static func channelID(_ namespace: String) -> String {
        let name = SwiftNaming.lowerCamelCase(namespace)
        return name.isEmpty ? "root" : name
    }

    private func objectSchema(_ fields: [Field], description: String?) -> DocumentNode {
        var schema: [(String, DocumentNode)] = [("type", .string("object"))]
        if let description { schema.append(("description", .string(description))) }
        schema.append(
            (
                "properties",
                .object(
                    fields.map { field in
                        var property = self.schema(field.type.isOptional ? field.type.unwrapped : field.type)
                        if let summary = field.summary, case .object(var members) = property {
                            members.append(("description", .string(summary)))
                            property = .object(members)
                        }
                        return (field.wireName, property)
                    }
                )
            )
        )
        let required = fields.filter { !$0.type.isOptional }.map { DocumentNode.string($0.wireName) }
        if !required.isEmpty { schema.append(("required", .array(required))) }
        return .object(schema)
    }

    private static func enumSchema(_ cases: [EnumCase], description: String?) -> DocumentNode {
        var schema: [(String, DocumentNode)] = [("type", .string("string"))]
        if let description { schema.append(("description", .string(description))) }
        schema.append(("enum", .array(cases.map { .string($0.value) })))
        return .object(schema)
    }

    private func schema(_ type: FieldType) -> DocumentNode {
        switch type {
        case .string: return .object([("type", .string("string"))])
        case .int: return .object([("type", .string("integer"))])
        case .double: return .object([("type", .string("number"))])
        case .bool: return .object([("type", .string("boolean"))])
        case .datetime: return .object([("type", .string("string")), ("format", .string("date-time"))])
        case .uuid: return .object([("type", .string("string")), ("format", .string("uuid"))])
        case .optional(let wrapped):
            return .object([("oneOf", .array([self.schema(wrapped), .object([("type", .string("null"))])]))])
        case .array(let element): return .object([("type", .string("array")), ("items", self.schema(element))])
        case .named(let name): return .object([("$ref", .string("#/components/schemas/\(name)"))])
        case .inline(let inline):
            switch inline.definition {
            case .object(let fields): return self.objectSchema(fields, description: nil)
            case .enumeration(let cases): return Self.enumSchema(cases, description: nil)
            }
        }
    }
}

/// A JSON-shaped document with ordered keys, rendered as YAML or JSON.
enum DocumentNode: Sendable, Hashable {
    case string(String)
    case array([DocumentNode])
    case object([(String, DocumentNode)])

    static func == (lhs: DocumentNode, rhs: DocumentNode) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    func hash(into hasher: inout Hasher) {
        switch self {
        case .string(let string): hasher.combine(string)
        case .array(let items): hasher.combine(items)
        case .object(let members):
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }

    /// Pretty JSON, two-space indentation, keys in order, trailing newline.
    func json() -> String {
        var output = ""
        self.writeJSON(indent: 0, to: &output)
        return output + "\n"
    }

    private func writeJSON(indent: Int, to output: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch self {
        case .string(let string):
            output += string.quotedLiteral
        case .array(let items):
            if items.isEmpty {
                output += "[]"
                return
            }
            output += "[\n"
            for (index, item) in items.enumerated() {
                output += pad
                item.writeJSON(indent: indent + 1, to: &output)
                output += index == items.count - 1 ? "\n" : ",\n"
            }
            output += closePad + "]"
        case .object(let members):
            if members.isEmpty {
                output += "{}"
                return
            }
            output += "{\n"
            for (index, (key, value)) in members.enumerated() {
                output += pad + key.quotedLiteral + ": "
                value.writeJSON(indent: indent + 1, to: &output)
                output += index == members.count - 1 ? "\n" : ",\n"
            }
            output += closePad + "}"
        }
    }

    /// Block-style YAML, strings double-quoted (so no YAML 1.1 surprises), keys in order.
    func yaml() -> String {
        var output = ""
        switch self {
        case .object(let members) where !members.isEmpty:
            Self.writeYAMLMembers(members, indent: 0, to: &output)
        default:
            output += self.inlineYAML + "\n"
        }
        return output
    }

    private var inlineYAML: String {
        switch self {
        case .string(let string): string.quotedLiteral
        case .array: "[]"
        case .object: "{}"
        }
    }

    private var isEmptyOrScalar: Bool {
        switch self {
        case .string: true
        case .array(let items): items.isEmpty
        case .object(let members): members.isEmpty
        }
    }

    private static func yamlKey(_ key: String) -> String {
        let plain = key.unicodeScalars.allSatisfy {
            $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || $0 == "_" || $0 == "$" || $0 == "-"
        }
        let special: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]
        if plain, let first = key.unicodeScalars.first, first != "-", !special.contains(key.lowercased()) { return key }
        return key.quotedLiteral
    }

    private static func writeYAMLMembers(_ members: [(String, DocumentNode)], indent: Int, to output: inout String) {
        let pad = String(repeating: "  ", count: indent)
        for (key, value) in members {
            output += pad + Self.yamlKey(key) + ":"
            if value.isEmptyOrScalar {
                output += " " + value.inlineYAML + "\n"
            } else {
                output += "\n"
                value.writeYAMLBlock(indent: indent + 1, to: &output)
            }
        }
    }

    private func writeYAMLBlock(indent: Int, to output: inout String) {
        switch self {
        case .object(let members):
            Self.writeYAMLMembers(members, indent: indent, to: &output)
        case .array(let items):
            let pad = String(repeating: "  ", count: indent)
            for item in items {
                if item.isEmptyOrScalar {
                    output += pad + "- " + item.inlineYAML + "\n"
                } else {
                    // Write the item one level deeper, then put the dash where its first line's indentation starts.
                    var nested = ""
                    item.writeYAMLBlock(indent: indent + 1, to: &nested)
                    let replaced = pad + "- " + nested.dropFirst(pad.count + 2)
                    output += replaced
                }
            }
        case .string:
            output += String(repeating: "  ", count: indent) + self.inlineYAML + "\n"
        }
    }
}
