public import Logging
public import NIOConcurrencyHelpers

/// Keeps what was logged: level, message and metadata (the logger's and the line's), rendered as a log line would
/// show them. For tests that check what reaches an operator's log.
public struct CapturingLogHandler: LogHandler {
    /// One logged line.
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: String
        /// The message and its metadata, as one line.
        public var text: String { "\(self.message) \(self.metadata)" }
    }

    public let lines: NIOLockedValueBox<[Line]>
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    /// A handler that appends to `lines`.
    public init(lines: NIOLockedValueBox<[Line]>) {
        self.lines = lines
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        self.lines.withLockedValue { $0.append(Line(level: event.level, message: "\(event.message)", metadata: rendered)) }
    }
}
