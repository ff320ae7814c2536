/// A YAML document as a tree, every node with the place it started, produced by ``LibYAMLReader``.
///
/// Only what a catalog needs: scalars (as written, untyped), sequences and mappings with keys in file order.
/// Duplicate keys are kept here and reported by the catalog stage, which knows where both were written.
indirect enum YAMLNode: Sendable, Hashable {
    /// How a scalar was written; quoted scalars are always strings.
    enum ScalarStyle: Sendable, Hashable {
        case plain
        case quoted
        case block
    }

    case scalar(String, style: ScalarStyle, location: SourceLocation)
    case sequence([YAMLNode], location: SourceLocation)
    case mapping([(key: YAMLNode, value: YAMLNode)], location: SourceLocation)

    /// Where the node starts.
    var location: SourceLocation {
        switch self {
        case .scalar(_, _, let location), .sequence(_, let location), .mapping(_, let location): location
        }
    }

    /// A word for messages: "a string", "a list", "a mapping".
    var kindDescription: String {
        switch self {
        case .scalar(let value, let style, _):
            if style == .plain, value.isEmpty || value == "~" || value == "null" { return "null" }
            return "a scalar"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// The scalar's text, when this is a scalar.
    var scalarValue: String? {
        if case .scalar(let value, _, _) = self { return value }
        return nil
    }

    static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case (.scalar(let a, let s1, let l1), .scalar(let b, let s2, let l2)): a == b && s1 == s2 && l1 == l2
        case (.sequence(let a, let l1), .sequence(let b, let l2)): a == b && l1 == l2
        case (.mapping(let a, let l1), .mapping(let b, let l2)):
            l1 == l2 && a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    func hash(into hasher: inout Hasher) {
        switch self {
        case .scalar(let value, _, let location):
            hasher.combine(0)
            hasher.combine(value)
            hasher.combine(location)
        case .sequence(let items, let location):
            hasher.combine(1)
            hasher.combine(items)
            hasher.combine(location)
        case .mapping(let pairs, let location):
            hasher.combine(2)
            hasher.combine(location)
            for pair in pairs {
                hasher.combine(pair.key)
                hasher.combine(pair.value)
            }
        }
    }
}
