package import Logging
package import NIOConcurrencyHelpers

/// Keeps what was logged: level, message and metadata (the logger's and the line's), rendered as a log line would
/// show them. For tests that check what reaches an operator's log.
package struct CapturingLogHandler: LogHandler {
    /// One logged line.
    package struct Line: Sendable {
        package var level: Logger.Level
        package var message: String
        package var metadata: String
        /// The message and its metadata, as one line.
        package var text: String { "\(self.message) \(self.metadata)" }
    }

    package let lines: NIOLockedValueBox<[Line]>
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level = .trace

    /// A handler that appends to `lines`.
    package init(lines: NIOLockedValueBox<[Line]>) {
        self.lines = lines
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        self.lines.withLockedValue {
            $0.append(Line(level: event.level, message: "\(event.message)", metadata: rendered))
        }
    }
}
