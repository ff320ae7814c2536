import CYAML

/// Reads YAML text into a ``YAMLNode`` tree with libyaml's event API.
///
/// This is the only file that touches libyaml's pointers: the parser and each event live inside one call of
/// ``parse(_:path:)`` and are released before it returns.
enum LibYAMLReader {
    /// Parses one YAML document.
    /// - Parameters:
    ///   - bytes: The UTF-8 (or UTF-16 with BOM) text.
    ///   - path: The file name used in diagnostics.
    /// - Returns: The document's root node; an empty document is a plain empty scalar at 1:1.
    /// - Throws: ``CatalogError`` with libyaml's problem and position for malformed YAML, or for aliases and
    ///   multiple documents, which a catalog does not use.
    static func parse(_ bytes: [UInt8], path: String) throws(CatalogError) -> YAMLNode {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw Self.error(
                "could not initialise libyaml (out of memory)",
                at: SourceLocation(line: 1, column: 1),
                path: path
            )
        }
        defer { yaml_parser_delete(&parser) }

        return try bytes.withUnsafeBufferPointer { buffer throws(CatalogError) -> YAMLNode in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var builder = TreeBuilder()
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    throw Self.syntaxError(parser, path: path)
                }
                defer { yaml_event_delete(&event) }
                let location = SourceLocation(
                    line: Int(event.start_mark.line) + 1,
                    column: Int(event.start_mark.column) + 1
                )
                switch event.type {
                case YAML_STREAM_START_EVENT, YAML_NO_EVENT:
                    continue
                case YAML_DOCUMENT_START_EVENT:
                    if builder.documents > 0 {
                        throw Self.error(
                            "a catalog is a single YAML document; remove the second '---' document",
                            at: location,
                            path: path
                        )
                    }
                    builder.documents += 1
                case YAML_DOCUMENT_END_EVENT:
                    continue
                case YAML_STREAM_END_EVENT:
                    return builder.root ?? .scalar("", style: .plain, location: SourceLocation(line: 1, column: 1))
                case YAML_ALIAS_EVENT:
                    throw Self.error(
                        "YAML aliases are not supported in a catalog; use a named type under 'types' to reuse a definition",
                        at: location,
                        path: path
                    )
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    let text = String(
                        decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)),
                        as: UTF8.self
                    )
                    let style: YAMLNode.ScalarStyle
                    switch scalar.style {
                    case YAML_SINGLE_QUOTED_SCALAR_STYLE, YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .quoted
                    case YAML_LITERAL_SCALAR_STYLE, YAML_FOLDED_SCALAR_STYLE: style = .block
                    default: style = .plain
                    }
                    builder.add(.scalar(text, style: style, location: location))
                case YAML_SEQUENCE_START_EVENT:
                    builder.open(.sequence(location))
                case YAML_MAPPING_START_EVENT:
                    builder.open(.mapping(location))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    builder.close()
                default:
                    continue
                }
            }
        }
    }

    private static func syntaxError(_ parser: yaml_parser_t, path: String) -> CatalogError {
        let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
        var message = "invalid YAML: \(problem)"
        if let context = parser.context.map({ String(cString: $0) }) {
            message += " (\(context) at \(parser.context_mark.line + 1):\(parser.context_mark.column + 1))"
        }
        let location = SourceLocation(
            line: Int(parser.problem_mark.line) + 1,
            column: Int(parser.problem_mark.column) + 1
        )
        return Self.error(message, at: location, path: path)
    }

    private static func error(_ message: String, at location: SourceLocation, path: String) -> CatalogError {
        CatalogError(diagnostics: [Diagnostic(path: path, location: location, message: message)])
    }
}

/// Assembles nodes from the event stream: a stack of open collections.
private struct TreeBuilder {
    enum Open {
        case sequence(SourceLocation, [YAMLNode])
        case mapping(SourceLocation, [(key: YAMLNode, value: YAMLNode)], pendingKey: YAMLNode?)

        static func sequence(_ location: SourceLocation) -> Open { .sequence(location, []) }
        static func mapping(_ location: SourceLocation) -> Open { .mapping(location, [], pendingKey: nil) }
    }

    var stack: [Open] = []
    var root: YAMLNode?
    var documents = 0

    mutating func open(_ collection: Open) {
        self.stack.append(collection)
    }

    mutating func close() {
        guard let top = self.stack.popLast() else { return }
        switch top {
        case .sequence(let location, let items): self.add(.sequence(items, location: location))
        case .mapping(let location, let pairs, _): self.add(.mapping(pairs, location: location))
        }
    }

    mutating func add(_ node: YAMLNode) {
        guard let top = self.stack.popLast() else {
            self.root = node
            return
        }
        switch top {
        case .sequence(let location, var items):
            items.append(node)
            self.stack.append(.sequence(location, items))
        case .mapping(let location, var pairs, let pendingKey):
            if let key = pendingKey {
                pairs.append((key: key, value: node))
                self.stack.append(.mapping(location, pairs, pendingKey: nil))
            } else {
                self.stack.append(.mapping(location, pairs, pendingKey: node))
            }
        }
    }
}
