/// A position in a source file: 1-based line and column, as compilers and editors print them.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The 1-based line.
    public var line: Int
    /// The 1-based column (in Unicode scalars, as libyaml counts them).
    public var column: Int

    /// Creates a location.
    /// - Parameters:
    ///   - line: The 1-based line.
    ///   - column: The 1-based column.
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// Orders by line, then by column.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    /// The text shown when this value is printed or logged.
    public var description: String { "\(self.line):\(self.column)" }
}

/// One problem found in a catalog, printed as `path:line:col: error: message` so editors and Xcode can jump to it.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// How bad the problem is.
    public enum Severity: String, Sendable, Hashable {
        /// The catalog cannot be used; nothing is generated.
        case error
        /// Worth fixing; generation continues.
        case warning
    }

    /// How bad the problem is.
    public var severity: Severity
    /// The file as the user named it (the path given to the tool).
    public var path: String
    /// Where in the file.
    public var location: SourceLocation
    /// What is wrong and, where it helps, what to do.
    public var message: String

    /// Creates a diagnostic.
    /// - Parameters:
    ///   - severity: How bad the problem is.
    ///   - path: The file as the user named it.
    ///   - location: Where in the file.
    ///   - message: What is wrong.
    public init(severity: Severity = .error, path: String, location: SourceLocation, message: String) {
        self.severity = severity
        self.path = path
        self.location = location
        self.message = message
    }

    /// `path:line:col: error: message`.
    public var description: String {
        "\(self.path):\(self.location.line):\(self.location.column): \(self.severity.rawValue): \(self.message)"
    }
}

/// Thrown when a catalog has errors; carries every diagnostic found, sorted by position.
public struct CatalogError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Every problem found, in file order.
    public var diagnostics: [Diagnostic]

    /// Creates an error from diagnostics (sorted by location, then message, for stable output).
    /// - Parameter diagnostics: The problems found.
    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics.sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }

    /// One diagnostic per line.
    public var description: String {
        self.diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// Collects diagnostics while a stage runs, so one run reports every problem rather than the first.
struct DiagnosticCollector {
    let path: String
    private(set) var diagnostics: [Diagnostic] = []

    init(path: String) {
        self.path = path
    }

    var hasErrors: Bool { self.diagnostics.contains { $0.severity == .error } }

    mutating func error(_ message: String, at location: SourceLocation) {
        self.diagnostics.append(Diagnostic(severity: .error, path: self.path, location: location, message: message))
    }

    func failure() -> CatalogError {
        CatalogError(diagnostics: self.diagnostics)
    }
}
