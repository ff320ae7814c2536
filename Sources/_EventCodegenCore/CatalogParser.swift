/// Turns a YAML tree into a ``Catalog``, reporting every problem it finds with its position.
struct CatalogParser {
    /// The Socket.IO event names a server cannot emit (they are reserved by the client and server libraries).
    static let reservedEventNames: Set<String> = [
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    ]
    /// The event SocketGateway sends a client whose typed client event it refused (`SocketEventRefusal`).
    static let refusalEventName = "socketgateway:error"
    /// Names a nested type must not take: it would hide the standard type inside the generated struct.
    static let shadowedNames: Set<String> = [
        "Any", "Array", "Bool", "Codable", "CodingKeys", "Data", "Date", "Decodable", "Dictionary", "Double",
        "Encodable",
        "Equatable", "Error", "Float", "Hashable", "Int", "JSONValue", "Optional", "Protocol", "Result", "Self",
        "Sendable",
        "Set", "SocketEvent", "String", "Type", "URL", "UUID",
    ]
    /// The only catalog format version this generator reads.
    static let supportedVersion = 1
    static let builtinTypes: [String: FieldType] = [
        "string": .string, "int": .int, "double": .double, "bool": .bool, "datetime": .datetime, "uuid": .uuid,
    ]

    var diagnostics: DiagnosticCollector
    let sourceFileName: String
    private var namedTypeNames: Set<String> = []

    init(path: String) {
        self.diagnostics = DiagnosticCollector(path: path)
        self.sourceFileName = path.split(separator: "/").last.map(String.init) ?? path
    }

    // MARK: Whole catalog

    mutating func parse(_ root: YAMLNode) -> Catalog? {
        guard case .mapping = root else {
            self.diagnostics.error(
                "a catalog is a mapping with 'version', 'name' and 'events' (found \(root.kindDescription))",
                at: root.location
            )
            return nil
        }
        let entries = self.entries(of: root, duplicate: { "duplicate key '\($0)'" })
        self.checkKeys(
            entries,
            allowed: ["version", "name", "summary", "namespace", "types", "events", "client_events"],
            in: "the catalog"
        )

        var version = Self.supportedVersion
        if let entry = entries.first(where: { $0.key == "version" }) {
            if case .scalar(let text, .plain, _) = entry.value, Int(text) == Self.supportedVersion {
                version = Self.supportedVersion
            } else {
                let shown = entry.value.scalarValue.map { "'\($0)'" } ?? entry.value.kindDescription
                self.diagnostics.error(
                    "unsupported catalog version \(shown); this generator reads 'version: \(Self.supportedVersion)'",
                    at: entry.value.location
                )
            }
        } else {
            self.diagnostics.error(
                "missing 'version'; start the catalog with 'version: \(Self.supportedVersion)'",
                at: root.location
            )
        }

        var name = ""
        if let entry = entries.first(where: { $0.key == "name" }) {
            if let text = self.string(entry.value, what: "'name'") {
                if Self.isTypeName(text) {
                    name = text
                } else {
                    self.diagnostics.error(
                        "invalid catalog name '\(text)'; use an UpperCamelCase Swift identifier such as 'SheetSync'",
                        at: entry.value.location
                    )
                }
            }
        } else {
            self.diagnostics.error(
                "missing 'name'; name the catalog in UpperCamelCase, e.g. 'name: SheetSync' (it prefixes the generated types)",
                at: root.location
            )
        }

        let summary = entries.first { $0.key == "summary" }.flatMap { self.string($0.value, what: "'summary'") }
        var defaultNamespace = "/"
        if let entry = entries.first(where: { $0.key == "namespace" }), let text = self.namespace(entry.value) {
            defaultNamespace = text
        }

        // Named types: collect the names first, so fields may refer to types declared later.
        var typeEntries: [Entry] = []
        if let entry = entries.first(where: { $0.key == "types" }) {
            typeEntries = self.entries(of: entry.value, duplicate: { "duplicate type '\($0)'" }, what: "'types'")
            for typeEntry in typeEntries {
                if Self.builtinTypes[typeEntry.key] != nil || typeEntry.key == "object" || typeEntry.key == "enum" {
                    self.diagnostics.error(
                        "type name '\(typeEntry.key)' is a built-in type; choose an UpperCamelCase name",
                        at: typeEntry.keyLocation
                    )
                } else if !Self.isTypeName(typeEntry.key) {
                    self.diagnostics.error(
                        "invalid type name '\(typeEntry.key)'; use an UpperCamelCase Swift identifier such as 'SyncStage'",
                        at: typeEntry.keyLocation
                    )
                } else {
                    self.namedTypeNames.insert(typeEntry.key)
                }
            }
        }
        var types: [NamedType] = []
        for typeEntry in typeEntries where self.namedTypeNames.contains(typeEntry.key) {
            if let type = self.namedType(typeEntry) { types.append(type) }
        }

        var events: [Event] = []
        var serverEventNames: Set<String> = []
        if let entry = entries.first(where: { $0.key == "events" }) {
            let eventEntries = self.entries(
                of: entry.value,
                duplicate: { "duplicate event '\($0)'" },
                what: "'events'"
            )
            serverEventNames = Set(eventEntries.map(\.key))
            for eventEntry in eventEntries {
                if let event = self.event(eventEntry, direction: .toClient, defaultNamespace: defaultNamespace) {
                    events.append(event)
                }
            }
            if events.isEmpty, !self.diagnostics.hasErrors {
                self.diagnostics.error(
                    "the catalog declares no events; add at least one under 'events:'",
                    at: entry.value.location
                )
            }
        } else {
            self.diagnostics.error(
                "missing 'events'; list the events the server emits under 'events:'",
                at: root.location
            )
        }

        var clientEvents: [Event] = []
        if let entry = entries.first(where: { $0.key == "client_events" }) {
            let eventEntries = self.entries(
                of: entry.value,
                duplicate: { "duplicate client event '\($0)'" },
                what: "'client_events'"
            )
            for eventEntry in eventEntries {
                // One wire name used both ways: the server event keeps the plain Swift name (see `Event.typeName`).
                let suffix = serverEventNames.contains(eventEntry.key) ? Self.clientTypeNameSuffix : ""
                if let event = self.event(
                    eventEntry,
                    direction: .toServer(typeNameSuffix: suffix),
                    defaultNamespace: defaultNamespace
                ) {
                    clientEvents.append(event)
                }
            }
        }

        self.checkGlobalNames(catalogName: name, types: typeEntries, events: events, clientEvents: clientEvents)
        self.checkRecursion(types, entries: typeEntries)

        guard !self.diagnostics.hasErrors else { return nil }
        return Catalog(
            version: version,
            name: name,
            summary: summary,
            sourceFileName: self.sourceFileName,
            types: types.sorted { $0.name < $1.name },
            events: events.sorted { $0.name < $1.name },
            clientEvents: clientEvents.sorted { $0.name < $1.name }
        )
    }

    // MARK: Events and types

    /// Which section an event is declared in.
    enum Direction {
        /// `events`: the server emits it to clients.
        case toClient
        /// `client_events`: clients send it to the server; the suffix goes after its Swift type and case names.
        case toServer(typeNameSuffix: String)

        /// How messages name an event of this section: `event 'x'` or `client event 'x'`.
        func describe(_ name: String) -> String {
            switch self {
            case .toClient: "event '\(name)'"
            case .toServer: "client event '\(name)'"
            }
        }
    }

    /// The suffix of a client event's Swift type and case names when a server event has the same wire name.
    static let clientTypeNameSuffix = "FromClient"

    private mutating func event(_ entry: Entry, direction: Direction, defaultNamespace: String) -> Event? {
        let name = entry.key
        let described = direction.describe(name)
        self.locations[described] = entry.keyLocation
        if Self.reservedEventNames.contains(name) {
            self.diagnostics.error(
                "event name '\(name)' is reserved by Socket.IO and cannot be emitted; choose another name",
                at: entry.keyLocation
            )
            return nil
        }
        if name == Self.refusalEventName {
            self.diagnostics.error(
                "event name '\(name)' is reserved by SocketGateway: it carries the refusal of a client event whose payload does not match the catalog; choose another name",
                at: entry.keyLocation
            )
            return nil
        }
        guard Self.isEventName(name) else {
            self.diagnostics.error(
                "invalid event name '\(name)'; use segments of letters, digits, '_' and '-' that start with a letter, separated by ':' or '.' (e.g. 'sheet:sync:completed')",
                at: entry.keyLocation
            )
            return nil
        }
        guard case .mapping = entry.value else {
            self.diagnostics.error(
                "\(described) must be a mapping with 'summary' and 'payload' (found \(entry.value.kindDescription))",
                at: entry.value.location
            )
            return nil
        }
        let entries = self.entries(of: entry.value, duplicate: { "duplicate key '\($0)' in \(described)" })
        self.checkKeys(entries, allowed: ["summary", "namespace", "payload", "ack"], in: described)
        var summary = ""
        if let summaryEntry = entries.first(where: { $0.key == "summary" }) {
            summary = self.string(summaryEntry.value, what: "'summary'") ?? ""
        } else {
            self.diagnostics.error("\(described) needs a one-line 'summary'", at: entry.keyLocation)
        }
        var namespace = defaultNamespace
        if let namespaceEntry = entries.first(where: { $0.key == "namespace" }),
            let text = self.namespace(namespaceEntry.value)
        {
            namespace = text
        }
        var payload: [Field] = []
        if let payloadEntry = entries.first(where: { $0.key == "payload" }) {
            payload = self.fields(payloadEntry.value, owner: described)
        }
        var ack: [Field]?
        if let ackEntry = entries.first(where: { $0.key == "ack" }) {
            let owner = "the ack of \(described)"
            self.locations[owner] = ackEntry.keyLocation
            ack = self.ackFields(ackEntry.value, owner: owner)
        }
        var suffix = ""
        if case .toServer(let typeNameSuffix) = direction { suffix = typeNameSuffix }
        return Event(
            name: name,
            summary: summary,
            namespace: namespace,
            typeName: SwiftNaming.upperCamelCase(name) + suffix,
            caseName: SwiftNaming.lowerCamelCase(name) + suffix,
            payload: payload,
            ack: ack
        )
    }

    /// The fields of an `ack`: a mapping of fields exactly like a payload (empty for an answer without fields).
    /// Anything else — a type name, a list — is refused: an ack is always an object, so it can grow compatibly.
    private mutating func ackFields(_ node: YAMLNode, owner: String) -> [Field]? {
        switch node {
        case .mapping:
            return self.fields(node, owner: owner)
        case .scalar(let text, .plain, _) where text.isEmpty || text == "{}":
            return []
        case .scalar(let text, _, let location):
            self.diagnostics.error(
                "\(owner) must be an object: a mapping of fields like 'payload' (found '\(text)'); to answer with one value, name it, e.g. 'ack: { result: \(text) }'",
                at: location
            )
            return nil
        case .sequence(_, let location):
            self.diagnostics.error(
                "\(owner) must be an object: a mapping of fields like 'payload' (found a list); to answer with a list, name it, e.g. 'ack: { items: [string] }'",
                at: location
            )
            return nil
        }
    }

    private mutating func namedType(_ entry: Entry) -> NamedType? {
        guard case .mapping = entry.value else {
            self.diagnostics.error(
                "type '\(entry.key)' must be a mapping with 'fields' or 'enum' (found \(entry.value.kindDescription))",
                at: entry.value.location
            )
            return nil
        }
        let entries = self.entries(of: entry.value, duplicate: { "duplicate key '\($0)' in type '\(entry.key)'" })
        self.checkKeys(entries, allowed: ["summary", "fields", "enum"], in: "type '\(entry.key)'")
        let summary = entries.first { $0.key == "summary" }.flatMap { self.string($0.value, what: "'summary'") }
        guard let definition = self.definition(entries, owner: "type '\(entry.key)'", at: entry.keyLocation) else {
            self.diagnostics.error(
                "type '\(entry.key)' needs either 'fields' (an object) or 'enum' (a list of strings)",
                at: entry.keyLocation
            )
            return nil
        }
        return NamedType(name: entry.key, summary: summary, definition: definition)
    }

    /// The object or enum defined by `fields` or `enum` among `entries`, if either is present.
    private mutating func definition(_ entries: [Entry], owner: String, at location: SourceLocation) -> TypeDefinition?
    {
        let fieldsEntry = entries.first { $0.key == "fields" }
        let enumEntry = entries.first { $0.key == "enum" }
        if let fieldsEntry, enumEntry != nil {
            self.diagnostics.error(
                "\(owner) has both 'fields' and 'enum'; an object has fields, an enum has values",
                at: fieldsEntry.keyLocation
            )
            return nil
        }
        if let fieldsEntry { return .object(self.fields(fieldsEntry.value, owner: owner)) }
        if let enumEntry { return .enumeration(self.enumCases(enumEntry.value, owner: owner)) }
        return nil
    }

    private mutating func fields(_ node: YAMLNode, owner: String) -> [Field] {
        if case .scalar(let text, .plain, _) = node, text.isEmpty || text == "{}" { return [] }
        let entries = self.entries(
            of: node,
            duplicate: { "duplicate field '\($0)' in \(owner)" },
            what: "the fields of \(owner)"
        )
        var fields: [Field] = []
        var swiftNames: [String: String] = [:]
        var nestedNames: [String: String] = [:]
        for entry in entries {
            guard Self.isFieldName(entry.key) else {
                self.diagnostics.error(
                    "invalid field name '\(entry.key)' in \(owner); use letters, digits and '_', starting with a letter",
                    at: entry.keyLocation
                )
                continue
            }
            guard let field = self.field(entry, owner: owner) else { continue }
            if let other = swiftNames[field.swiftName] {
                self.diagnostics.error(
                    "fields '\(other)' and '\(entry.key)' in \(owner) both become the Swift property '\(field.swiftName)'; rename one",
                    at: entry.keyLocation
                )
                continue
            }
            swiftNames[field.swiftName] = entry.key
            if let inline = Self.inlineType(in: field.type) {
                if let other = nestedNames[inline.name] {
                    self.diagnostics.error(
                        "fields '\(other)' and '\(entry.key)' in \(owner) both declare a nested type '\(inline.name)'; give one a 'name'",
                        at: entry.keyLocation
                    )
                    continue
                }
                nestedNames[inline.name] = entry.key
            }
            fields.append(field)
        }
        return fields
    }

    private static func inlineType(in type: FieldType) -> InlineType? {
        switch type {
        case .optional(let wrapped), .array(let wrapped): return Self.inlineType(in: wrapped)
        case .inline(let inline): return inline
        default: return nil
        }
    }

    private mutating func field(_ entry: Entry, owner: String) -> Field? {
        let swiftName = SwiftNaming.lowerCamelCase(entry.key)
        switch entry.value {
        case .scalar, .sequence:
            var used = false
            guard let type = self.typeExpression(entry.value, inline: nil, used: &used, field: entry.key, owner: owner)
            else { return nil }
            return Field(wireName: entry.key, swiftName: swiftName, summary: nil, type: type)
        case .mapping:
            let context = "field '\(entry.key)' of \(owner)"
            let entries = self.entries(of: entry.value, duplicate: { "duplicate key '\($0)' in \(context)" })
            self.checkKeys(entries, allowed: ["type", "summary", "fields", "enum", "name"], in: context)
            let summary = entries.first { $0.key == "summary" }.flatMap { self.string($0.value, what: "'summary'") }
            var inline: InlineType?
            let nameEntry = entries.first { $0.key == "name" }
            if let definition = self.definition(entries, owner: context, at: entry.keyLocation) {
                var name = SwiftNaming.upperCamelCase(entry.key)
                if let nameEntry, let text = self.string(nameEntry.value, what: "'name'") {
                    if Self.isTypeName(text) {
                        name = text
                    } else {
                        self.diagnostics.error(
                            "invalid type name '\(text)' for \(context); use an UpperCamelCase Swift identifier",
                            at: nameEntry.value.location
                        )
                    }
                }
                if Self.shadowedNames.contains(name) {
                    self.diagnostics.error(
                        "the nested type '\(name)' of \(context) would hide Swift's or SocketGateway's '\(name)'; give the field a 'name', e.g. 'name: \(SwiftNaming.upperCamelCase(owner.split(separator: "'").dropFirst().first.map(String.init) ?? ""))\(name)'",
                        at: nameEntry?.value.location ?? entry.keyLocation
                    )
                    return nil
                }
                inline = InlineType(name: name, definition: definition)
            } else if let nameEntry {
                self.diagnostics.error(
                    "'name' names a type declared in place; add 'fields' or 'enum' to \(context)",
                    at: nameEntry.keyLocation
                )
            }
            let type: FieldType?
            if let typeEntry = entries.first(where: { $0.key == "type" }) {
                var used = false
                type = self.typeExpression(typeEntry.value, inline: inline, used: &used, field: entry.key, owner: owner)
                if let inline, !used, type != nil {
                    let word = Self.placeholder(for: inline.definition)
                    self.diagnostics.error(
                        "\(context) declares '\(word == "object" ? "fields" : "enum")', so its 'type' must use '\(word)' (e.g. '\(word)', '\(word)?', '[\(word)]')",
                        at: typeEntry.value.location
                    )
                    return nil
                }
            } else if let inline {
                type = .inline(inline)
            } else {
                self.diagnostics.error("\(context) needs a 'type'", at: entry.keyLocation)
                return nil
            }
            guard let type else { return nil }
            return Field(wireName: entry.key, swiftName: swiftName, summary: summary, type: type)
        }
    }

    private static func placeholder(for definition: TypeDefinition) -> String {
        if case .object = definition { return "object" }
        return "enum"
    }

    /// Parses a type: a scalar expression (`int`, `string?`, `[uuid]`, `'[Warning]?'`) or a YAML flow list of one
    /// element type (`[string]`, which YAML reads as a list).
    private mutating func typeExpression(
        _ node: YAMLNode,
        inline: InlineType?,
        used: inout Bool,
        field: String,
        owner: String
    ) -> FieldType? {
        switch node {
        case .sequence(let items, let location):
            guard items.count == 1, let item = items.first else {
                self.diagnostics.error(
                    "a list type names exactly one element type, e.g. [string] (field '\(field)' of \(owner))",
                    at: location
                )
                return nil
            }
            return self.typeExpression(item, inline: inline, used: &used, field: field, owner: owner).map { .array($0) }
        case .mapping(_, let location):
            self.diagnostics.error(
                "the type of field '\(field)' of \(owner) must be a name such as 'string' or '[int]', not a mapping",
                at: location
            )
            return nil
        case .scalar(let text, _, let location):
            return self.typeExpression(
                Substring(text),
                inline: inline,
                used: &used,
                field: field,
                owner: owner,
                at: location
            )
        }
    }

    private mutating func typeExpression(
        _ text: Substring,
        inline: InlineType?,
        used: inout Bool,
        field: String,
        owner: String,
        at location: SourceLocation
    ) -> FieldType? {
        let trimmed = text.trimmingSpaces
        if trimmed.hasSuffix("?") {
            let inner = trimmed.dropLast().trimmingSpaces
            if inner.hasSuffix("?") {
                self.diagnostics.error(
                    "type '\(trimmed)' of field '\(field)' in \(owner) is optional twice; write one '?'",
                    at: location
                )
                return nil
            }
            return self.typeExpression(inner, inline: inline, used: &used, field: field, owner: owner, at: location).map
            { .optional($0) }
        }
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]"), trimmed.count >= 2 {
            let inner = trimmed.dropFirst().dropLast()
            return self.typeExpression(inner, inline: inline, used: &used, field: field, owner: owner, at: location).map
            { .array($0) }
        }
        let name = String(trimmed)
        if let builtin = Self.builtinTypes[name] { return builtin }
        if name == "object" || name == "enum" {
            if let inline, Self.placeholder(for: inline.definition) == name {
                if used {
                    self.diagnostics.error("type of field '\(field)' in \(owner) uses '\(name)' twice", at: location)
                    return nil
                }
                used = true
                return .inline(inline)
            }
            self.diagnostics.error(
                "field '\(field)' of \(owner) has type '\(name)' but no '\(name == "object" ? "fields" : "enum")'; declare them next to 'type', or use a named type",
                at: location
            )
            return nil
        }
        if self.namedTypeNames.contains(name) { return .named(name) }
        self.diagnostics.error(
            "unknown type '\(name)' for field '\(field)' in \(owner); \(self.knownTypesHint(for: name))",
            at: location
        )
        return nil
    }

    /// The built-in type names, in the order the messages list them.
    static let builtinTypeOrder = ["string", "int", "double", "bool", "datetime", "uuid"]

    /// What to write instead of an unknown type `name`: the nearest known name when one is close (a typo), then
    /// the built-in types and the types declared under `types`.
    private func knownTypesHint(for name: String) -> String {
        let declared = self.namedTypeNames.sorted()
        var types = "types: \(Self.builtinTypeOrder.joined(separator: ", ")) (built in); "
        types +=
            declared.isEmpty
            ? "declare your own under 'types'" : "\(declared.joined(separator: ", ")) (declared under 'types')"
        guard let nearest = Self.nearest(to: name, among: Self.builtinTypeOrder + declared) else {
            return "known " + types
        }
        return "did you mean '\(nearest)'? Known " + types
    }

    /// The candidate closest to `name` in edit distance (case ignored), if it is close enough to be a typo: at
    /// most 1 edit for names of up to 4 characters, 2 for longer ones. Ties go to the earlier candidate.
    static func nearest(to name: String, among candidates: [String]) -> String? {
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let distance = Self.editDistance(Array(name.lowercased()), Array(candidate.lowercased()))
            let allowed = max(name.count, candidate.count) <= 4 ? 1 : 2
            guard distance <= allowed, distance < (best?.distance ?? Int.max) else { continue }
            best = (candidate, distance)
        }
        return best?.name
    }

    /// The Levenshtein distance: how many characters must be inserted, deleted or replaced to turn `a` into `b`.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, left) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, right) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (left == right ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private mutating func enumCases(_ node: YAMLNode, owner: String) -> [EnumCase] {
        guard case .sequence(let items, let location) = node else {
            self.diagnostics.error(
                "'enum' of \(owner) must be a list of strings, e.g. [queued, running]",
                at: node.location
            )
            return []
        }
        if items.isEmpty {
            self.diagnostics.error("'enum' of \(owner) needs at least one value", at: location)
        }
        var cases: [EnumCase] = []
        var seen: [String: SourceLocation] = [:]
        var swiftNames: [String: String] = [:]
        for item in items {
            guard case .scalar(let value, _, let itemLocation) = item else {
                self.diagnostics.error(
                    "enum values of \(owner) must be strings (found \(item.kindDescription))",
                    at: item.location
                )
                continue
            }
            if let first = seen[value] {
                self.diagnostics.error(
                    "duplicate enum value '\(value)' in \(owner) (first at \(first))",
                    at: itemLocation
                )
                continue
            }
            seen[value] = itemLocation
            guard Self.isEnumValue(value) else {
                self.diagnostics.error(
                    "invalid enum value '\(value)' in \(owner); use letters, digits, '_', '-' and '.', starting with a letter",
                    at: itemLocation
                )
                continue
            }
            let swiftName = SwiftNaming.lowerCamelCase(value)
            if let other = swiftNames[swiftName] {
                self.diagnostics.error(
                    "enum values '\(other)' and '\(value)' in \(owner) both become the Swift case '\(swiftName)'; rename one",
                    at: itemLocation
                )
                continue
            }
            swiftNames[swiftName] = value
            cases.append(EnumCase(value: value, swiftName: swiftName))
        }
        return cases
    }

    // MARK: Cross-checks

    /// Every generated top-level Swift type must have its own name: the catalog's enums, the named types, the
    /// payload structs of both directions and their ack structs. The later declaration is the one reported.
    private mutating func checkGlobalNames(
        catalogName: String,
        types: [Entry],
        events: [Event],
        clientEvents: [Event]
    ) {
        var taken: [String: String] = [:]
        if !catalogName.isEmpty {
            taken[catalogName + "Event"] = "the generated decoder enum"
            taken[catalogName + "EventName"] = "the generated event-name enum"
            for name in ["EventNamespaces", "ClientEventName", "ClientEventNamespaces"] {
                taken[catalogName + name] = "the TypeScript export's '\(catalogName + name)'"
            }
        }
        for name in ["ServerToClientEvents", "ClientToServerEvents"] {
            taken[name] = "the TypeScript export's '\(name)'"
        }
        for type in types where self.namedTypeNames.contains(type.key) {
            if let owner = taken[type.key] {
                self.diagnostics.error(
                    "type name '\(type.key)' clashes with \(owner); rename the type",
                    at: type.keyLocation
                )
            }
            taken[type.key] = "type '\(type.key)'"
        }
        var generated: [(typeName: String, owner: String)] = []
        for (direction, list) in [(Direction.toClient, events), (.toServer(typeNameSuffix: ""), clientEvents)] {
            for event in list {
                let described = direction.describe(event.name)
                generated.append((event.typeName, described))
                if event.ack != nil { generated.append((event.ackTypeName, "the ack of \(described)")) }
            }
        }
        for (typeName, owner) in generated {
            if let other = taken[typeName] {
                self.diagnostics.error(
                    "\(owner) becomes the Swift type '\(typeName)', which clashes with \(other); rename one",
                    at: self.locations[owner] ?? SourceLocation(line: 1, column: 1)
                )
            }
            taken[typeName] = owner
        }
    }

    /// A struct cannot contain itself except through an array: report `A` → `A?` and longer loops.
    private mutating func checkRecursion(_ types: [NamedType], entries: [Entry]) {
        var edges: [String: Set<String>] = [:]
        for type in types {
            if case .object(let fields) = type.definition {
                edges[type.name] = Set(fields.flatMap { Self.directReferences($0.type) })
            }
        }
        for type in types.sorted(by: { $0.name < $1.name }) {
            var stack = Array(edges[type.name] ?? [])
            var visited: Set<String> = []
            while let next = stack.popLast() {
                if next == type.name {
                    let location =
                        entries.first { $0.key == type.name }?.keyLocation ?? SourceLocation(line: 1, column: 1)
                    self.diagnostics.error(
                        "type '\(type.name)' contains itself; a type may refer to itself only inside a list, e.g. '[\(type.name)]'",
                        at: location
                    )
                    break
                }
                if visited.insert(next).inserted { stack.append(contentsOf: edges[next] ?? []) }
            }
        }
    }

    private static func directReferences(_ type: FieldType) -> [String] {
        switch type {
        case .named(let name): [name]
        case .optional(let wrapped): Self.directReferences(wrapped)
        case .inline(let inline):
            if case .object(let fields) = inline.definition {
                fields.flatMap { Self.directReferences($0.type) }
            } else {
                []
            }
        default: []
        }
    }

    // MARK: YAML helpers

    struct Entry {
        var key: String
        var keyLocation: SourceLocation
        var value: YAMLNode
    }

    /// Where each event, client event and ack was declared, keyed as messages name them (`event 'x'`,
    /// `client event 'x'`, `the ack of event 'x'`).
    private var locations: [String: SourceLocation] = [:]

    /// The entries of a mapping with scalar keys, first occurrence of each key only; duplicates are reported.
    private mutating func entries(of node: YAMLNode, duplicate: (String) -> String, what: String? = nil) -> [Entry] {
        guard case .mapping(let pairs, _) = node else {
            if let what {
                self.diagnostics.error("\(what) must be a mapping (found \(node.kindDescription))", at: node.location)
            }
            return []
        }
        var result: [Entry] = []
        var seen: [String: SourceLocation] = [:]
        for pair in pairs {
            guard case .scalar(let key, _, let keyLocation) = pair.key else {
                self.diagnostics.error(
                    "mapping keys must be plain names (found \(pair.key.kindDescription))",
                    at: pair.key.location
                )
                continue
            }
            if let first = seen[key] {
                self.diagnostics.error("\(duplicate(key)) (first defined at \(first))", at: keyLocation)
                continue
            }
            seen[key] = keyLocation
            result.append(Entry(key: key, keyLocation: keyLocation, value: pair.value))
        }
        return result
    }

    private mutating func checkKeys(_ entries: [Entry], allowed: [String], in context: String) {
        for entry in entries where !allowed.contains(entry.key) {
            self.diagnostics.error(
                "unknown key '\(entry.key)' in \(context); expected \(allowed.map { "'\($0)'" }.joined(separator: ", "))",
                at: entry.keyLocation
            )
        }
    }

    private mutating func string(_ node: YAMLNode, what: String) -> String? {
        guard case .scalar(let text, _, _) = node else {
            self.diagnostics.error("\(what) must be text (found \(node.kindDescription))", at: node.location)
            return nil
        }
        return text
    }

    private mutating func namespace(_ node: YAMLNode) -> String? {
        guard let text = self.string(node, what: "'namespace'") else { return nil }
        guard text.hasPrefix("/"),
            text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_-.".contains($0)) })
        else {
            self.diagnostics.error(
                "invalid namespace '\(text)'; a Socket.IO namespace starts with '/', e.g. '/' or '/admin'",
                at: node.location
            )
            return nil
        }
        return text
    }

    // MARK: Name rules

    static func isTypeName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("A"..."Z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric }
    }

    static func isFieldName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIILetter else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" }
    }

    static func isEnumValue(_ value: String) -> Bool {
        guard let first = value.unicodeScalars.first, first.isASCIILetter else { return false }
        return value.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" || $0 == "-" || $0 == "." }
    }

    static func isEventName(_ name: String) -> Bool {
        let segments = name.split(separator: ":", omittingEmptySubsequences: false)
            .flatMap { $0.split(separator: ".", omittingEmptySubsequences: false) }
        return segments.allSatisfy { segment in
            guard let first = segment.unicodeScalars.first, first.isASCIILetter else { return false }
            return segment.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" || $0 == "-" }
        }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIAlphanumeric: Bool { self.isASCIILetter || ("0"..."9").contains(self) }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

extension Catalog {
    /// The event names Socket.IO reserves (`connect`, `disconnect`, …), sorted: a catalog cannot declare them and
    /// `socket-gateway emit` refuses them — one list for both.
    package static var reservedEventNames: [String] { CatalogParser.reservedEventNames.sorted() }
}
