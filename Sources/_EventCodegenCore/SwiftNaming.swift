/// Turns wire names into Swift names, following the Swift API Design Guidelines.
///
/// The rule, documented in the catalog README:
/// 1. Split the name into words at every character that is not a letter or digit (`_`, `-`, `:`, `.`), and where
///    a lowercase letter or digit is followed by an uppercase letter (`sheetId` → `sheet`, `Id`).
/// 2. A word that is a common acronym (`id`, `url`, `uuid`, `json`, `http`, …, see ``acronyms``), or such an
///    acronym followed by `s`, is written in capitals (`ID`, `URLs`), except as the first word of a lowerCamelCase
///    name, which is all lowercase (`id`, `url`).
/// 3. Any other word is capitalised: first letter uppercase, the rest lowercase; the first word of a
///    lowerCamelCase name is all lowercase.
///
/// So `sheet_id` → `sheetID`, `job_ids` → `jobIDs`, `url` → `url`, `finished_at` → `finishedAt`,
/// `sheet:sync:completed` → `SheetSyncCompleted` (type) and `sheetSyncCompleted` (case).
public enum SwiftNaming {
    /// Words written in capitals inside a name.
    public static let acronyms: Set<String> = [
        "api", "ascii", "css", "csv", "dns", "html", "http", "https", "id", "io", "ip", "json", "jwt", "pdf", "sql",
        "ssl", "tcp", "tls", "ttl", "ui", "uri", "url", "utc", "uuid", "xml",
    ]

    /// Swift keywords that must be written in backticks when used as names.
    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
        "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public", "rethrows",
        "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue", "default",
        "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return", "throw", "switch",
        "where", "while", "as", "Any", "false", "is", "nil", "self", "Self", "super", "throws", "true", "try",
        "Type", "Protocol",
    ]

    /// The words of a wire name (rule 1).
    static func words(_ name: String) -> [String] {
        var words: [String] = []
        var current = ""
        var previous: Character?
        for character in name {
            guard character.isLetter || character.isNumber else {
                if !current.isEmpty { words.append(current) }
                current = ""
                previous = nil
                continue
            }
            if character.isUppercase, let previous, previous.isLowercase || previous.isNumber, !current.isEmpty {
                words.append(current)
                current = ""
            }
            current.append(character)
            previous = character
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    private static func capitalised(_ word: String) -> String {
        let lower = word.lowercased()
        if Self.acronyms.contains(lower) { return lower.uppercased() }
        if lower.hasSuffix("s"), Self.acronyms.contains(String(lower.dropLast())) {
            return String(lower.dropLast()).uppercased() + "s"
        }
        return lower.prefix(1).uppercased() + lower.dropFirst()
    }

    /// The UpperCamelCase form of `name` (type names).
    public static func upperCamelCase(_ name: String) -> String {
        Self.words(name).map(Self.capitalised).joined()
    }

    /// The lowerCamelCase form of `name` (properties and enum cases).
    public static func lowerCamelCase(_ name: String) -> String {
        let words = Self.words(name)
        guard let first = words.first else { return "" }
        return first.lowercased() + words.dropFirst().map(Self.capitalised).joined()
    }

    /// `name`, in backticks when it is a Swift keyword.
    public static func escaped(_ name: String) -> String {
        Self.keywords.contains(name) ? "`\(name)`" : name
    }
}
