import ArgumentParser
import Logging
import SocketGatewayVersion

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `socket-gateway`: run a server, emit from a shell or a job, watch the cluster channel, check and export an
/// event catalog.
@main
struct SocketGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socket-gateway",
        abstract: "A Socket.IO v5 server and its cluster tools (Redis, python-socketio format).",
        discussion: """
            Environment: HOST, PORT, SOCKET_PATH, REDIS_URL, SOCKET_REDIS_CHANNEL,
            SOCKET_TOKEN_SECRET, SOCKET_CORS_ORIGINS (comma-separated, * for any),
            SOCKET_PING_INTERVAL, SOCKET_PING_TIMEOUT (seconds).
            Flags override the environment.

            EXIT CODES
              0   success (emit: published to at least --min-subscribers servers)
              1   catalog errors (check, export); server did not start (serve)
              64  wrong usage, or a payload that is not valid JSON
              65  the payload does not match the event catalog (emit --catalog)
              69  Redis unavailable: not published within --timeout (emit)
              74  a file could not be read or written
              75  emit: published, but fewer than --min-subscribers servers listened
              78  not configured: no or an invalid Redis URL (emit, tail),
                  no token secret (serve)
            """,
        version: SocketGatewayVersion.line(for: "socket-gateway"),
        subcommands: [ServeCommand.self, EmitCommand.self, TailCommand.self, CheckCommand.self, ExportCommand.self]
    )
}

/// The exit codes documented in `--help`.
enum ExitCodes {
    static let catalogErrors = ExitCode(1)
    static let usage = ExitCode(64)
    static let payloadRefused = ExitCode(65)
    static let redisUnavailable = ExitCode(69)
    static let fileError = ExitCode(74)
    static let tooFewSubscribers = ExitCode(75)
    static let notConfigured = ExitCode(78)
}

/// Writes one line to stdout and flushes, so a pipe sees it at once.
func printLine(_ line: String) {
    print(line)
    fflush(nil)
}

/// Writes `text` (a newline added when missing) to stderr.
func printError(_ text: String) {
    var text = text
    if !text.hasSuffix("\n") { text += "\n" }
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

/// Prints `socket-gateway <command>: error: <reason>` on stderr and returns `code` to throw.
func fail(_ command: String, _ reason: String, _ code: ExitCode) -> ExitCode {
    printError("socket-gateway \(command): error: \(reason)")
    return code
}

/// Reads an environment variable; empty counts as unset.
func environment(_ name: String) -> String? {
    guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
    return value
}

/// Logs to stderr at `level`.
func bootstrapLogging(level: String) {
    let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
}

/// Reads a whole file.
func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count { return ferror(file) != 0 ? nil : bytes }
    }
}

/// Writes a whole file.
func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    guard let file = fopen(path, "wb") else { return false }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    return fclose(file) == 0 && written == bytes.count
}

/// The reason of the last failed C call.
func lastError() -> String {
    String(cString: strerror(errno))
}
