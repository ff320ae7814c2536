/// A validated catalog together with its YAML tree, so a comparison can say where each thing was written.
public struct LocatedCatalog: Sendable {
    /// The file as the user named it (a path, or `ref:path` for a catalog read from git); findings print it.
    public var path: String
    /// The validated catalog.
    public var catalog: Catalog
    /// The YAML tree the catalog was read from.
    let root: YAMLNode

    /// Parses and validates a catalog, keeping its YAML tree.
    /// - Parameter input: The catalog file.
    /// - Throws: ``CatalogError`` with every problem as `path:line:col: error: message`.
    public init(_ input: InputFile) throws(CatalogError) {
        let root = try LibYAMLReader.parse(input.contents, path: input.path)
        var parser = CatalogParser(path: input.path)
        guard let catalog = parser.parse(root) else { throw parser.diagnostics.failure() }
        self.path = input.path
        self.catalog = catalog
        self.root = root
    }

    /// Where the mapping entry at `keys` (a path of mapping keys from the root) was written: its key, or with
    /// `value: true` its value. A path that does not exist falls back to its nearest existing ancestor, then 1:1.
    func location(_ keys: [String], value: Bool = false) -> SourceLocation {
        var prefix = keys[...]
        var wantValue = value
        while !prefix.isEmpty {
            if let entry = self.entry(prefix) { return wantValue ? entry.value.location : entry.key }
            prefix = prefix.dropLast()
            wantValue = false
        }
        return SourceLocation(line: 1, column: 1)
    }

    /// The mapping entry at `keys`, if every step exists.
    func entry(_ keys: ArraySlice<String>) -> (key: SourceLocation, value: YAMLNode)? {
        var node = self.root
        var found: (key: SourceLocation, value: YAMLNode)?
        for key in keys {
            guard case .mapping(let pairs, _) = node,
                let pair = pairs.first(where: { $0.key.scalarValue == key })
            else { return nil }
            found = (pair.key.location, pair.value)
            node = pair.value
        }
        return found
    }

    /// Where the enum value `value` is written in the `enum` list at `keys`.
    func enumValueLocation(_ keys: [String], value: String) -> SourceLocation {
        if let entry = self.entry(keys[...]), case .sequence(let items, _) = entry.value,
            let item = items.first(where: { $0.scalarValue == value })
        {
            return item.location
        }
        return self.location(keys)
    }

    /// Where a field's type is written: the scalar after the key, or the value of its `type:`; the key otherwise.
    func typeLocation(_ keys: [String]) -> SourceLocation {
        guard let entry = self.entry(keys[...]) else { return self.location(keys) }
        if case .mapping = entry.value {
            return self.entry((keys + ["type"])[...])?.value.location ?? entry.key
        }
        return entry.value.location
    }
}

/// One difference between two versions of a catalog, and whom it breaks.
public struct CompatibilityFinding: Sendable, Hashable, CustomStringConvertible {
    /// Whether anything already deployed breaks.
    public enum Severity: String, Sendable, Hashable {
        /// Something deployed stops working: deploy in order, or keep the old shape.
        case breaking
        /// Nothing deployed notices.
        case safe
    }

    /// Who stops working.
    public enum Party: String, Sendable, Hashable, CaseIterable, Comparable {
        /// Browsers, apps and services connected as Socket.IO clients, built on the old catalog.
        case deployedClients = "deployed clients"
        /// Workers and other publishers (`socket-gateway emit`, the worker gateway) still on the old catalog.
        case publishers = "workers/publishers"
        /// The server, built on the new catalog (its typed handlers and acks).
        case server = "the server"

        /// Orders as declared.
        public static func < (lhs: Self, rhs: Self) -> Bool {
            Self.allCases.firstIndex(of: lhs)! < Self.allCases.firstIndex(of: rhs)!
        }
    }

    /// Which way an event travels.
    public enum Direction: String, Sendable, Hashable {
        /// Declared under `events`: the server and workers emit, clients receive.
        case serverToClient = "server→client"
        /// Declared under `client_events`: clients emit, the server receives.
        case clientToServer = "client→server"
    }

    /// Which rule found the difference (one per row of the table in ``CatalogCompatibility``).
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// An event is no longer in the catalog.
        case eventRemoved = "event-removed"
        /// A new event.
        case eventAdded = "event-added"
        /// An event moved to another namespace.
        case namespaceChanged = "namespace-changed"
        /// A field is gone.
        case fieldRemoved = "field-removed"
        /// One field gone and one added with the same type, in the same object.
        case fieldRenamed = "field-renamed"
        /// A new required field.
        case requiredFieldAdded = "required-field-added"
        /// A new optional field.
        case optionalFieldAdded = "optional-field-added"
        /// An optional field (or list element) became required.
        case fieldBecameRequired = "field-became-required"
        /// A required field (or list element) became optional.
        case fieldBecameOptional = "field-became-optional"
        /// A field's type changed (beyond optionality).
        case typeChanged = "type-changed"
        /// An enum gained a value.
        case enumValueAdded = "enum-value-added"
        /// An enum lost a value.
        case enumValueRemoved = "enum-value-removed"
        /// An event gained an ack.
        case ackAdded = "ack-added"
        /// An event lost its ack.
        case ackRemoved = "ack-removed"
    }

    /// The rule that found it.
    public var kind: Kind
    /// Who stops working, sorted; empty when the change is safe.
    public var breaks: [Party]
    /// The event the change affects (a change to a named type is reported once per event that uses it).
    public var event: String
    /// Which way the event travels.
    public var direction: Direction
    /// The file the location is in: the new catalog for a changed or added thing, the old one for a removed thing.
    public var path: String
    /// Where in that file.
    public var location: SourceLocation
    /// What changed and, when it breaks, who and why.
    public var message: String

    /// `breaking` when anyone breaks, else `safe`.
    public var severity: Severity { self.breaks.isEmpty ? .safe : .breaking }

    /// `path:line:col: breaking: message`, like the catalog's diagnostics.
    public var description: String {
        "\(self.path):\(self.location.line):\(self.location.column): \(self.severity.rawValue): \(self.message)"
    }
}

/// Compares two versions of a catalog and says what breaks whom.
///
/// Deployed things lag: clients built on the old catalog stay connected (cached pages, installed apps), and
/// workers are deployed apart from the server. The server itself runs the new catalog (`serve --catalog`, its
/// typed handlers). So for each schema the check asks two questions: can the new consumer read what old
/// producers still send, and can old consumers read what new producers now send?
///
/// | Schema | Producers | Consumers | Old data refused by the new side breaks | New data unreadable breaks |
/// |---|---|---|---|---|
/// | `events` payload | workers/publishers, server | deployed clients | workers/publishers | deployed clients |
/// | `events` ack | deployed clients | the server | the server (`emitWithAck` cannot decode) | — |
/// | `client_events` payload | deployed clients | the server | deployed clients (refused) | — |
/// | `client_events` ack | the server | deployed clients | — | deployed clients |
///
/// (`serve --catalog` is what refuses old workers' emits; up-to-date clients could not decode them either.)
///
/// Each rule answers the two questions:
///
/// | Change | Old data under the new catalog | New data under the old catalog |
/// |---|---|---|
/// | event removed | refused (not in the catalog) | never arrives (clients listening lose it) |
/// | event added | — | — (safe) |
/// | namespace changed | refused / not handled in the old namespace | clients listen in the old namespace |
/// | field removed | refused only where unknown keys are (`serve --catalog`) | breaks if it was required |
/// | field renamed (one removed, one added with the same type) | as removed + added | as removed + added |
/// | required field added | refused (missing) | readable (unknown keys are ignored) |
/// | optional field added | readable | readable (safe) |
/// | optional → required | refused when left out | readable |
/// | required → optional | readable | breaks when left out |
/// | type changed | refused unless the new type reads the old (note 1) | breaks unless the old type reads the new |
/// | enum value added | readable | breaks (generated Swift enums and TypeScript unions are exhaustive) |
/// | enum value removed | refused when sent | readable |
/// | ack added (`events`) | deployed clients do not answer: the server's `emitWithAck` times out | — |
/// | ack removed (`events`) | — | deployed clients that answer get no callback |
/// | ack added (`client_events`) | — (deployed clients do not ask for it) | — (safe) |
/// | ack removed (`client_events`) | deployed clients wait for an answer that never comes | — |
///
/// Note 1: `double` reads `int`, `string` reads `uuid`, `datetime` and enums; otherwise types read only themselves.
///
/// A change inside a named type is reported once for every event that uses the type, at the change, naming the
/// event. Summaries, field order and Swift or TypeScript names are not compared: they do not change the wire.
public enum CatalogCompatibility {
    /// Every difference between `old` and `new` that reaches the wire, in event order, then in file order.
    /// - Parameters:
    ///   - old: The catalog deployed today.
    ///   - new: The catalog about to be deployed.
    /// - Returns: The findings; empty when the two describe the same wire format.
    public static func compare(old: LocatedCatalog, new: LocatedCatalog) -> [CompatibilityFinding] {
        var walker = CompatibilityWalker(old: old, new: new)
        walker.compareEvents(direction: .serverToClient)
        walker.compareEvents(direction: .clientToServer)
        return walker.findings
    }

    /// One line for the end of a report: `events.yaml against old.yaml: 2 breaking, 1 safe`.
    /// - Parameters:
    ///   - findings: What ``compare(old:new:)`` found.
    ///   - old: The old catalog's path as shown.
    ///   - new: The new catalog's path as shown.
    /// - Returns: One line, without a newline.
    public static func summary(_ findings: [CompatibilityFinding], old: String, new: String) -> String {
        let breaking = findings.filter { $0.severity == .breaking }.count
        let safe = findings.count - breaking
        if findings.isEmpty { return "\(new) against \(old): no changes on the wire" }
        var line = "\(new) against \(old): \(breaking) breaking, \(safe) safe"
        if breaking > 0 {
            let parties = Set(findings.flatMap(\.breaks)).sorted().map(\.rawValue).joined(separator: ", ")
            line += " (breaks \(parties))"
        }
        return line
    }
}

/// Who produces and who consumes one schema (an event's payload or its ack), and how to name them in messages.
private struct SchemaRole {
    /// Breaks when the new consumer refuses what old producers still send; `nil` when producers are never old.
    var oldProducerParty: CompatibilityFinding.Party?
    /// Breaks when old consumers cannot read what new producers send; `nil` when consumers are never old.
    var oldConsumerParty: CompatibilityFinding.Party?
    /// Whether the new consumer refuses keys it does not know.
    var refusesUnknownKeys: Bool
    var oldProducers: String
    var newConsumer: String
    var oldConsumers: String

    static let eventPayload = SchemaRole(
        oldProducerParty: .publishers,
        oldConsumerParty: .deployedClients,
        refusesUnknownKeys: true,
        oldProducers: "workers/publishers on the old catalog",
        newConsumer: "`serve --catalog`",
        oldConsumers: "deployed clients",
    )
    static let eventAck = SchemaRole(
        oldProducerParty: .server,
        oldConsumerParty: nil,
        refusesUnknownKeys: false,
        oldProducers: "deployed clients",
        newConsumer: "the server's emitWithAck",
        oldConsumers: "",
    )
    static let clientEventPayload = SchemaRole(
        oldProducerParty: .deployedClients,
        oldConsumerParty: nil,
        refusesUnknownKeys: false,
        oldProducers: "deployed clients",
        newConsumer: "the server",
        oldConsumers: "",
    )
    static let clientEventAck = SchemaRole(
        oldProducerParty: nil,
        oldConsumerParty: .deployedClients,
        refusesUnknownKeys: false,
        oldProducers: "",
        newConsumer: "",
        oldConsumers: "deployed clients",
    )

    /// `template` with `{oldProducers}`, `{newConsumer}` and `{oldConsumers}` filled in.
    func fill(_ template: String) -> String {
        template.replacing("{oldProducers}", with: self.oldProducers)
            .replacing("{newConsumer}", with: self.newConsumer)
            .replacing("{oldConsumers}", with: self.oldConsumers)
    }
}

/// The schema being compared: one event's payload or ack.
private struct SchemaContext {
    var direction: CompatibilityFinding.Direction
    var event: String
    var isAck: Bool
    var role: SchemaRole
    /// `events` or `client_events`.
    var section: String
}

/// Where a compared thing lives: the JSON path shown, and the YAML key paths in each file.
private struct FieldSite {
    /// `$.warnings[].row`.
    var path: String
    /// The YAML keys of the field's entry in the old file, and in the new file.
    var oldKeys: [String]
    var newKeys: [String]
    /// `type 'SyncWarning'` when the field sits inside a named type.
    var via: String?
}

private struct CompatibilityWalker {
    let old: LocatedCatalog
    let new: LocatedCatalog
    var findings: [CompatibilityFinding] = []
    /// Named types being compared on the current path (old name, new name): recursion stops there.
    private var typeStack: Set<[String]> = []

    init(old: LocatedCatalog, new: LocatedCatalog) {
        self.old = old
        self.new = new
    }

    private enum Side {
        case old
        case new
    }

    // MARK: Events

    static func events(_ catalog: Catalog, _ direction: CompatibilityFinding.Direction) -> [Event] {
        switch direction {
        case .serverToClient: catalog.events
        case .clientToServer: catalog.clientEvents
        }
    }

    mutating func compareEvents(direction: CompatibilityFinding.Direction) {
        let section = direction == .serverToClient ? "events" : "client_events"
        let oldEvents = Dictionary(Self.events(self.old.catalog, direction).map { ($0.name, $0) }) { a, _ in a }
        let newEvents = Dictionary(Self.events(self.new.catalog, direction).map { ($0.name, $0) }) { a, _ in a }
        for name in Set(oldEvents.keys).union(newEvents.keys).sorted() {
            let payload = SchemaContext(
                direction: direction,
                event: name,
                isAck: false,
                role: direction == .serverToClient ? .eventPayload : .clientEventPayload,
                section: section
            )
            switch (oldEvents[name], newEvents[name]) {
            case (.some, nil):
                self.eventRemoved(payload)
            case (nil, .some):
                self.report(
                    .eventAdded,
                    payload,
                    at: .new,
                    self.new.location([section, name]),
                    what: "event added"
                )
            case (let oldEvent?, let newEvent?):
                self.compare(oldEvent, newEvent, payload)
            case (nil, nil):
                break
            }
        }
    }

    private mutating func eventRemoved(_ schema: SchemaContext) {
        let location = self.old.location([schema.section, schema.event])
        switch schema.direction {
        case .serverToClient:
            self.report(
                .eventRemoved,
                schema,
                at: .old,
                location,
                what: "event removed",
                oldData: "{oldProducers} still emit it, and {newConsumer} refuses events outside the catalog",
                newData: "{oldConsumers} listening for it never receive it again"
            )
        case .clientToServer:
            self.report(
                .eventRemoved,
                schema,
                at: .old,
                location,
                what: "event removed",
                oldData: "{oldProducers} still emit it, and {newConsumer} no longer handles it"
            )
        }
    }

    private mutating func compare(_ oldEvent: Event, _ newEvent: Event, _ schema: SchemaContext) {
        let eventKeys = [schema.section, schema.event]
        if oldEvent.namespace != newEvent.namespace {
            var location = self.new.location(eventKeys + ["namespace"], value: true)
            if self.new.entry((eventKeys + ["namespace"])[...]) == nil, self.new.entry(["namespace"]) != nil {
                location = self.new.location(["namespace"], value: true)
            }
            self.report(
                .namespaceChanged,
                schema,
                at: .new,
                location,
                what: "namespace changed from \(oldEvent.namespace) to \(newEvent.namespace)",
                oldData: "{oldProducers} emit it in \(oldEvent.namespace), where {newConsumer} "
                    + (schema.direction == .serverToClient ? "refuses it" : "no longer handles it"),
                newData: "{oldConsumers} listen for it in \(oldEvent.namespace)"
            )
        }
        self.compareFields(
            oldEvent.payload,
            newEvent.payload,
            schema,
            oldKeys: eventKeys + ["payload"],
            newKeys: eventKeys + ["payload"],
            path: "$",
            via: nil
        )
        var ack = schema
        ack.isAck = true
        ack.role = schema.direction == .serverToClient ? .eventAck : .clientEventAck
        switch (oldEvent.ack, newEvent.ack) {
        case (nil, .some):
            let location = self.new.location(eventKeys + ["ack"])
            switch schema.direction {
            case .serverToClient:
                self.report(
                    .ackAdded,
                    ack,
                    at: .new,
                    location,
                    what: "ack added",
                    oldData: "{oldProducers} do not answer it, so {newConsumer} waits until its timeout"
                )
            case .clientToServer:
                self.report(.ackAdded, ack, at: .new, location, what: "ack added")
            }
        case (.some, nil):
            let reason =
                schema.direction == .serverToClient
                ? "deployed clients that answer it get no acknowledgement callback"
                : "deployed clients that ask for it wait for an answer that never comes"
            self.record(
                .ackRemoved,
                ack,
                .old,
                self.old.location(eventKeys + ["ack"]),
                site: nil,
                what: "ack removed",
                consequences: [(.deployedClients, reason)]
            )
        case (let oldAck?, let newAck?):
            self.compareFields(
                oldAck,
                newAck,
                ack,
                oldKeys: eventKeys + ["ack"],
                newKeys: eventKeys + ["ack"],
                path: "$",
                via: nil
            )
        case (nil, nil):
            break
        }
    }

    // MARK: Objects and fields

    private mutating func compareFields(
        _ oldFields: [Field],
        _ newFields: [Field],
        _ schema: SchemaContext,
        oldKeys: [String],
        newKeys: [String],
        path: String,
        via: String?
    ) {
        let newNames = Set(newFields.map(\.wireName))
        let oldNames = Set(oldFields.map(\.wireName))
        let removed = oldFields.filter { !newNames.contains($0.wireName) }
        let added = newFields.filter { !oldNames.contains($0.wireName) }
        func site(_ field: String) -> FieldSite {
            FieldSite(path: "\(path).\(field)", oldKeys: oldKeys + [field], newKeys: newKeys + [field], via: via)
        }

        if removed.count == 1, added.count == 1, removed[0].type == added[0].type {
            self.fieldRenamed(
                from: removed[0],
                to: added[0],
                schema,
                site(removed[0].wireName),
                site(added[0].wireName)
            )
        } else {
            for field in removed { self.fieldRemoved(field, schema, site(field.wireName)) }
            for field in added { self.fieldAdded(field, schema, site(field.wireName)) }
        }
        for oldField in oldFields {
            guard let newField = newFields.first(where: { $0.wireName == oldField.wireName }) else { continue }
            self.compareType(oldField.type, newField.type, schema, site(oldField.wireName), field: oldField.wireName)
        }
    }

    private mutating func fieldRemoved(_ field: Field, _ schema: SchemaContext, _ site: FieldSite) {
        self.report(
            .fieldRemoved,
            schema,
            at: .old,
            self.old.location(site.oldKeys),
            site: site,
            what: "\(field.type.isOptional ? "optional" : "required") field '\(field.wireName)' removed",
            oldData: schema.role.refusesUnknownKeys
                ? "{oldProducers} still send it, and {newConsumer} refuses unknown keys" : nil,
            newData: field.type.isOptional ? nil : "{oldConsumers} require it, and it is no longer sent"
        )
    }

    private mutating func fieldAdded(_ field: Field, _ schema: SchemaContext, _ site: FieldSite) {
        let location = self.new.location(site.newKeys)
        if field.type.isOptional {
            self.report(
                .optionalFieldAdded,
                schema,
                at: .new,
                location,
                site: site,
                what: "optional field '\(field.wireName)' added"
            )
        } else {
            self.report(
                .requiredFieldAdded,
                schema,
                at: .new,
                location,
                site: site,
                what: "required field '\(field.wireName)' added",
                oldData: "{oldProducers} do not send it, and {newConsumer} refuses payloads without it"
            )
        }
    }

    private mutating func fieldRenamed(
        from oldField: Field,
        to newField: Field,
        _ schema: SchemaContext,
        _ oldSite: FieldSite,
        _ newSite: FieldSite
    ) {
        let required = !newField.type.isOptional
        var oldData: String?
        if required {
            oldData =
                "{oldProducers} send '\(oldField.wireName)', and {newConsumer} refuses payloads without "
                + "'\(newField.wireName)'"
        } else if schema.role.refusesUnknownKeys {
            oldData = "{oldProducers} still send '\(oldField.wireName)', and {newConsumer} refuses unknown keys"
        }
        self.report(
            .fieldRenamed,
            schema,
            at: .new,
            self.new.location(newSite.newKeys),
            site: newSite,
            what: "field '\(oldField.wireName)' renamed to '\(newField.wireName)'",
            oldData: oldData,
            newData: required
                ? "{oldConsumers} require '\(oldField.wireName)', which is no longer sent" : nil
        )
    }

    // MARK: Types

    private mutating func compareType(
        _ oldType: FieldType,
        _ newType: FieldType,
        _ schema: SchemaContext,
        _ site: FieldSite,
        field: String
    ) {
        switch (oldType, newType) {
        case (.optional(let oldWrapped), .optional(let newWrapped)):
            return self.compareType(oldWrapped, newWrapped, schema, site, field: field)
        case (.optional(let oldWrapped), _):
            self.report(
                .fieldBecameRequired,
                schema,
                at: .new,
                self.new.typeLocation(site.newKeys),
                site: site,
                what: "'\(field)' is now required "
                    + "(\(self.describe(oldType, .old)) → \(self.describe(newType, .new)))",
                oldData: "{oldProducers} may leave it out, and {newConsumer} refuses payloads without it"
            )
            return self.compareType(oldWrapped, newType, schema, site, field: field)
        case (_, .optional(let newWrapped)):
            self.report(
                .fieldBecameOptional,
                schema,
                at: .new,
                self.new.typeLocation(site.newKeys),
                site: site,
                what: "'\(field)' is now optional "
                    + "(\(self.describe(oldType, .old)) → \(self.describe(newType, .new)))",
                newData: "{oldConsumers} require it, and it may now be left out"
            )
            return self.compareType(oldType, newWrapped, schema, site, field: field)
        case (.array(let oldElement), .array(let newElement)):
            var element = site
            element.path += "[]"
            return self.compareType(oldElement, newElement, schema, element, field: field)
        default:
            break
        }
        if let oldDefinition = self.definition(oldType, site.oldKeys, .old),
            let newDefinition = self.definition(newType, site.newKeys, .new)
        {
            switch (oldDefinition.definition, newDefinition.definition) {
            case (.object(let oldFields), .object(let newFields)):
                let pair = [oldDefinition.name, newDefinition.name]
                guard !self.typeStack.contains(pair) else { return }
                if oldDefinition.isNamed { self.typeStack.insert(pair) }
                defer { self.typeStack.remove(pair) }
                return self.compareFields(
                    oldFields,
                    newFields,
                    schema,
                    oldKeys: oldDefinition.keys + ["fields"],
                    newKeys: newDefinition.keys + ["fields"],
                    path: site.path,
                    via: newDefinition.isNamed ? "type '\(newDefinition.name)'" : site.via
                )
            case (.enumeration(let oldCases), .enumeration(let newCases)):
                var enumSite = site
                if newDefinition.isNamed { enumSite.via = "type '\(newDefinition.name)'" }
                return self.compareEnum(
                    oldCases,
                    newCases,
                    schema,
                    enumSite,
                    oldKeys: oldDefinition.keys + ["enum"],
                    newKeys: newDefinition.keys + ["enum"]
                )
            default:
                break
            }
        }
        if oldType == newType { return }
        let newAcceptsOld = self.accepts(newType, .new, oldType, .old)
        let oldAcceptsNew = self.accepts(oldType, .old, newType, .new)
        if newAcceptsOld, oldAcceptsNew { return }
        let oldText = self.describe(oldType, .old)
        let newText = self.describe(newType, .new)
        self.report(
            .typeChanged,
            schema,
            at: .new,
            self.new.typeLocation(site.newKeys),
            site: site,
            what: "'\(field)' changed type from \(oldText) to \(newText)",
            oldData: newAcceptsOld ? nil : "{oldProducers} send \(oldText), which {newConsumer} refuses",
            newData: oldAcceptsNew ? nil : "{oldConsumers} cannot decode \(newText)"
        )
    }

    /// Whether every value of `writer` is a valid value of `reader` (top level; objects and enums only by kind).
    private func accepts(_ reader: FieldType, _ readerSide: Side, _ writer: FieldType, _ writerSide: Side) -> Bool {
        switch (reader, writer) {
        case (.optional(let a), .optional(let b)): return self.accepts(a, readerSide, b, writerSide)
        case (.optional(let a), _): return self.accepts(a, readerSide, writer, writerSide)
        case (_, .optional): return false
        case (.array(let a), .array(let b)): return self.accepts(a, readerSide, b, writerSide)
        case (.double, .int): return true
        case (.string, .datetime), (.string, .uuid): return true
        case (.string, _):
            if case .enumeration = self.definition(writer, [], writerSide)?.definition { return true }
            return false
        default: return reader == writer
        }
    }

    private struct ResolvedDefinition {
        var name: String
        var isNamed: Bool
        var definition: TypeDefinition
        /// The YAML keys of the mapping holding `fields` or `enum`.
        var keys: [String]
    }

    private func definition(_ type: FieldType, _ fieldKeys: [String], _ side: Side) -> ResolvedDefinition? {
        let catalog = side == .old ? self.old.catalog : self.new.catalog
        switch type {
        case .named(let name):
            guard let named = catalog.type(named: name) else { return nil }
            return ResolvedDefinition(name: name, isNamed: true, definition: named.definition, keys: ["types", name])
        case .inline(let inline):
            return ResolvedDefinition(name: inline.name, isNamed: false, definition: inline.definition, keys: fieldKeys)
        default:
            return nil
        }
    }

    private func describe(_ type: FieldType, _ side: Side) -> String {
        switch type {
        case .string: "string"
        case .int: "int"
        case .double: "double"
        case .bool: "bool"
        case .datetime: "datetime"
        case .uuid: "uuid"
        case .optional(let wrapped): self.describe(wrapped, side) + "?"
        case .array(let element): "[\(self.describe(element, side))]"
        case .named(let name): name
        case .inline(let inline):
            if case .enumeration = inline.definition { "enum \(inline.name)" } else { "object \(inline.name)" }
        }
    }

    private mutating func compareEnum(
        _ oldCases: [EnumCase],
        _ newCases: [EnumCase],
        _ schema: SchemaContext,
        _ site: FieldSite,
        oldKeys: [String],
        newKeys: [String]
    ) {
        let oldValues = Set(oldCases.map(\.value))
        let newValues = Set(newCases.map(\.value))
        for removed in oldCases where !newValues.contains(removed.value) {
            self.report(
                .enumValueRemoved,
                schema,
                at: .old,
                self.old.enumValueLocation(oldKeys, value: removed.value),
                site: site,
                what: "enum value '\(removed.value)' removed",
                oldData: "{oldProducers} may still send it, and {newConsumer} refuses it"
            )
        }
        for added in newCases where !oldValues.contains(added.value) {
            self.report(
                .enumValueAdded,
                schema,
                at: .new,
                self.new.enumValueLocation(newKeys, value: added.value),
                site: site,
                what: "enum value '\(added.value)' added",
                newData: "{oldConsumers} cannot decode it (generated Swift enums and TypeScript unions are exhaustive)"
            )
        }
    }

    // MARK: Reporting

    /// Records a finding. `oldData` says why the new consumer refuses what old producers send (`nil`: it does
    /// not); `newData` why old consumers cannot read what new producers send. The schema's role turns each into
    /// the party that breaks, if that side can be old at all.
    private mutating func report(
        _ kind: CompatibilityFinding.Kind,
        _ schema: SchemaContext,
        at side: Side,
        _ location: SourceLocation,
        site: FieldSite? = nil,
        what: String,
        oldData: String? = nil,
        newData: String? = nil
    ) {
        var consequences: [(party: CompatibilityFinding.Party, reason: String)] = []
        if let oldData, let party = schema.role.oldProducerParty {
            consequences.append((party, schema.role.fill(oldData)))
        }
        if let newData, let party = schema.role.oldConsumerParty {
            consequences.append((party, schema.role.fill(newData)))
        }
        self.record(kind, schema, side, location, site: site, what: what, consequences: consequences)
    }

    private mutating func record(
        _ kind: CompatibilityFinding.Kind,
        _ schema: SchemaContext,
        _ side: Side,
        _ location: SourceLocation,
        site: FieldSite?,
        what: String,
        consequences: [(party: CompatibilityFinding.Party, reason: String)]
    ) {
        var subject = "\(schema.direction.rawValue) event '\(schema.event)'"
        if schema.isAck { subject += " ack" }
        if let site {
            subject += " \(site.path)"
            if let via = site.via { subject += " (\(via))" }
        }
        var message = "\(subject): \(what)"
        for consequence in consequences {
            message += "; breaks \(consequence.party.rawValue): \(consequence.reason)"
        }
        self.findings.append(
            CompatibilityFinding(
                kind: kind,
                breaks: Array(Set(consequences.map(\.party))).sorted(),
                event: schema.event,
                direction: schema.direction,
                path: side == .old ? self.old.path : self.new.path,
                location: location,
                message: message
            )
        )
    }
}
