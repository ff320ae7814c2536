/// Renders a catalog as TypeScript declarations for socket.io-client users: one interface per payload and per ack,
/// string literal unions for enums, `ServerToClientEvents` and — when the catalog has client events —
/// `ClientToServerEvents`, typed the way socket.io's `Socket<ListenEvents, EmitEvents>` reads them: an event with
/// an ack takes a last `callback` argument that receives the ack.
struct TypeScriptRenderer {
    let catalog: Catalog
    /// The command named in the header line.
    let generator: String

    func render() -> String {
        var writer = CodeWriter(indent: "  ")
        writer.line(
            "// " + GeneratorPipeline.header(self.catalog, generator: self.generator)
        )
        // A server-only catalog keeps its one-parameter usage (and its bytes); with client events the socket is
        // typed both ways.
        let socketType =
            self.catalog.clientEvents.isEmpty
            ? "Socket<ServerToClientEvents>" : "Socket<ServerToClientEvents, ClientToServerEvents>"
        writer.line("// Use with socket.io-client: `const socket: \(socketType) = io(url);`")
        if let summary = self.catalog.summary {
            writer.line()
            Self.doc(summary, &writer)
        }
        for type in self.catalog.types {
            writer.line()
            Self.doc(type.summary, &writer)
            switch type.definition {
            case .enumeration(let cases):
                writer.line("export type \(type.name) = \(Self.union(cases));")
            case .object(let fields):
                writer.block("export interface \(type.name) {") { writer in
                    self.fields(fields, &writer)
                }
            }
        }
        for event in self.catalog.events {
            self.interfaces(event, kind: "Event", answeredBy: "the client", &writer)
        }
        for event in self.catalog.clientEvents {
            self.interfaces(event, kind: "Client event", answeredBy: "the server", &writer)
        }
        writer.line()
        Self.doc("The events a SocketGateway server emits to clients, by wire name.", &writer)
        writer.block("export interface ServerToClientEvents {") { writer in
            for event in self.catalog.events {
                Self.doc(event.summary.oneLine, &writer)
                writer.line("\(event.name.quotedLiteral): \(Self.listener(event));")
            }
        }
        if !self.catalog.clientEvents.isEmpty {
            writer.line()
            Self.doc("The events clients send to a SocketGateway server, by wire name.", &writer)
            writer.block("export interface ClientToServerEvents {") { writer in
                for event in self.catalog.clientEvents {
                    Self.doc(event.summary.oneLine, &writer)
                    writer.line("\(event.name.quotedLiteral): \(Self.listener(event));")
                }
            }
        }
        writer.line()
        Self.doc("The event names of the \(self.catalog.name) catalog.", &writer)
        writer.line("export type \(self.catalog.name)EventName = keyof ServerToClientEvents;")
        writer.line()
        Self.doc("The Socket.IO namespace each event is emitted in.", &writer)
        writer.block("export interface \(self.catalog.name)EventNamespaces {") { writer in
            for event in self.catalog.events {
                writer.line("\(event.name.quotedLiteral): \(event.namespace.quotedLiteral);")
            }
        }
        if !self.catalog.clientEvents.isEmpty {
            writer.line()
            Self.doc("The client event names of the \(self.catalog.name) catalog.", &writer)
            writer.line("export type \(self.catalog.name)ClientEventName = keyof ClientToServerEvents;")
            writer.line()
            Self.doc("The Socket.IO namespace each client event is sent in.", &writer)
            writer.block("export interface \(self.catalog.name)ClientEventNamespaces {") { writer in
                for event in self.catalog.clientEvents {
                    writer.line("\(event.name.quotedLiteral): \(event.namespace.quotedLiteral);")
                }
            }
        }
        return writer.text
    }

    /// The payload interface of `event` and, when it declares one, its ack interface.
    private func interfaces(_ event: Event, kind: String, answeredBy answerer: String, _ writer: inout CodeWriter) {
        writer.line()
        Self.doc("\(event.summary)\n\n\(kind) `\(event.name)` in namespace `\(event.namespace)`.", &writer)
        writer.block("export interface \(event.typeName) {") { writer in
            self.fields(event.payload, &writer)
        }
        guard let ack = event.ack else { return }
        writer.line()
        Self.doc("The answer \(answerer) sends back (the Socket.IO acknowledgement) for `\(event.name)`.", &writer)
        writer.block("export interface \(event.ackTypeName) {") { writer in
            self.fields(ack, &writer)
        }
    }

    /// The listener type socket.io's typed `Socket` reads: `(payload) => void`, with a last `callback` that takes
    /// the ack when the event has one (so `emit` needs the callback and `emitWithAck` resolves to the ack).
    private static func listener(_ event: Event) -> String {
        guard event.ack != nil else { return "(payload: \(event.typeName)) => void" }
        return "(payload: \(event.typeName), callback: (ack: \(event.ackTypeName)) => void) => void"
    }

    private func fields(_ fields: [Field], _ writer: inout CodeWriter) {
        for field in fields {
            var notes: [String] = []
            if let summary = field.summary { notes.append(summary) }
            switch field.type.unwrapped {
            case .datetime: notes.append("ISO 8601 timestamp, e.g. `2026-11-29T19:13:03.120Z`.")
            case .uuid: notes.append("UUID, lowercase.")
            default: break
            }
            Self.doc(notes.isEmpty ? nil : notes.joined(separator: "\n\n"), &writer)
            // An optional field may be left out or be null on the wire (the catalog's wire format): both are typed.
            if field.type.isOptional {
                writer.line("\(field.wireName)?: \(self.type(field.type, writer: writer));")
            } else {
                writer.line("\(field.wireName): \(self.type(field.type, writer: writer));")
            }
        }
    }

    /// The TypeScript type; inline objects are written over several lines, indented like `writer`'s next line.
    private func type(_ type: FieldType, writer: CodeWriter) -> String {
        switch type {
        case .string, .datetime, .uuid: return "string"
        case .int, .double: return "number"
        case .bool: return "boolean"
        case .named(let name): return name
        case .optional(let wrapped): return "\(self.type(wrapped, writer: writer)) | null"
        case .array(let element):
            let inner = self.type(element, writer: writer)
            if inner.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { return "\(inner)[]" }
            return "Array<\(inner)>"
        case .inline(let inline):
            switch inline.definition {
            case .enumeration(let cases):
                return Self.union(cases)
            case .object(let fields):
                var body = writer.indentedCopy()
                self.fields(fields, &body)
                return "{\n" + body.text + body.closingIndent + "}"
            }
        }
    }

    private static func union(_ cases: [EnumCase]) -> String {
        cases.map(\.value.quotedLiteral).joined(separator: " | ")
    }

    private static func doc(_ text: String?, _ writer: inout CodeWriter) {
        guard let text, !text.isEmpty else { return }
        let escaped = text.replacingStars()
        let lines = escaped.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.count == 1 {
            writer.line("/** \(escaped) */")
            return
        }
        writer.line("/**")
        for line in lines { writer.line(line.isEmpty ? " *" : " * \(line)") }
        writer.line(" */")
    }
}

extension CodeWriter {
    /// An empty writer whose lines are indented one level deeper than this writer's next line; used to build a
    /// multi-line type expression in place. `closingIndent` is this writer's own indentation.
    func indentedCopy() -> CodeWriter {
        var copy = CodeWriter(indent: self.indentUnit)
        copy.setLevel(self.currentLevel + 1)
        return copy
    }
}

extension String {
    fileprivate func replacingStars() -> String {
        var result = ""
        var previous: Character?
        for character in self {
            if previous == "*", character == "/" { result += "\\/" } else { result.append(character) }
            previous = character
        }
        return result
    }
}
