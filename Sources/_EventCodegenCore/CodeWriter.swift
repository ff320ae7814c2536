/// Accumulates indented lines of generated text.
struct CodeWriter {
    private(set) var text = ""
    private var level = 0
    let indentUnit: String

    /// The current indentation depth.
    var currentLevel: Int { self.level }

    /// The indentation of the level above this writer's (where a multi-line expression it holds closes).
    var closingIndent: String { String(repeating: self.indentUnit, count: max(self.level - 1, 0)) }

    mutating func setLevel(_ level: Int) {
        self.level = level
    }

    init(indent: String = "    ") {
        self.indentUnit = indent
    }

    mutating func line(_ line: String = "") {
        if line.isEmpty {
            self.text += "\n"
        } else {
            self.text += String(repeating: self.indentUnit, count: self.level) + line + "\n"
        }
    }

    mutating func block(_ opening: String, closing: String = "}", _ body: (inout CodeWriter) -> Void) {
        self.line(opening)
        self.level += 1
        body(&self)
        self.level -= 1
        self.line(closing)
    }

    /// A `switch` whose `case` lines sit at the switch's own indentation, as Swift style writes them.
    mutating func switchBlock(_ opening: String, _ body: (inout CodeWriter) -> Void) {
        self.line(opening)
        body(&self)
        self.line("}")
    }

    /// `///` doc lines for `text` (several lines kept as several lines).
    mutating func doc(_ text: String?) {
        guard let text, !text.isEmpty else { return }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            self.line(line.isEmpty ? "///" : "/// \(line)")
        }
    }
}

extension String {
    /// The string as a Swift (and JSON, and TypeScript) double-quoted literal.
    var quotedLiteral: String {
        var result = "\""
        for scalar in self.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// A single line for a comment: whitespace runs collapsed.
    var oneLine: String {
        self.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters() }.joined(separator: " ")
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        var result = self
        while result.first?.isWhitespace == true { result = result.dropFirst() }
        while result.last?.isWhitespace == true { result = result.dropLast() }
        return String(result)
    }
}
