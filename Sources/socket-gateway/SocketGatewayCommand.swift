import ArgumentParser
import Logging
import SocketGatewayRedis
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
            SOCKET_REDIS_TLS_CA, SOCKET_REDIS_TLS_CERT, SOCKET_REDIS_TLS_KEY,
            SOCKET_REDIS_TLS_SERVER_NAME (for rediss:// URLs), SOCKET_TOKEN_SECRET,
            SOCKET_JWT_PUBLIC_KEY, SOCKET_JWT_JWKS and the other SOCKET_JWT_… (serve --help),
            SOCKET_CORS_ORIGINS (comma-separated, * for any),
            SOCKET_PING_INTERVAL, SOCKET_PING_TIMEOUT (seconds).
            Flags override the environment.

            EXIT CODES
              0   success (emit: published to at least --min-subscribers servers)
              1   catalog errors (check, export); server did not start (serve)
              3   check --against: a catalog change breaks something deployed
              64  wrong usage, or a payload that is not valid JSON
              65  the payload does not match the event catalog (emit --catalog)
              69  Redis unavailable: not published within --timeout (emit)
              74  a file could not be read or written
              75  emit: published, but fewer than --min-subscribers servers listened
              78  not configured: no or an invalid Redis URL, or a TLS file that
                  cannot be used (emit, tail, serve);
                  Redis refused the URL's password or database (emit, tail,
                  serve; not retried); no token secret, a weak SOCKET_TOKEN_SECRET
                  or an origin in SOCKET_CORS_ORIGINS that never matches (serve)
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

/// Why `namespace`, given as `option`, is not a Socket.IO namespace, or `nil`. The one rule of `serve --namespace`
/// and `emit --namespace`: a namespace starts with `/` and has no `,` (the packet format ends it there).
func namespaceProblem(_ namespace: String, option: String = "--namespace") -> String? {
    if namespace.isEmpty {
        return "\(option) is empty; write \(option) / for the default namespace, or a name such as /admin"
    }
    guard namespace.hasPrefix("/") else {
        return "\(option) '\(namespace)' does not start with '/'; write \(option) /\(namespace)"
    }
    if namespace.contains(",") {
        return "\(option) '\(namespace)' contains ',', which ends a namespace in a Socket.IO packet; remove it"
    }
    return nil
}

/// Why `origin` is not an origin a browser sends in its `Origin` header (so it would never match), and the origin
/// to write instead when there is one; `nil` when it is fine. An origin is `http(s)://host[:port]`, lowercase, with
/// no path, no trailing slash and no default port; `*` allows any.
func corsOriginProblem(_ origin: String) -> (reason: String, instead: String?)? {
    if origin == "*" { return nil }
    let notAnOrigin = (reason: "it is not http(s)://host[:port]", instead: String?.none)
    guard let separator = origin.firstRange(of: "://") else { return notAnOrigin }
    let scheme = origin[..<separator.lowerBound].lowercased()
    guard scheme == "http" || scheme == "https" else { return notAnOrigin }
    var authority = origin[separator.upperBound...]
    var reasons: [String] = []
    if let end = authority.firstIndex(where: { "/?#".contains($0) }) {
        reasons.append(authority[end...] == "/" ? "it ends with '/'" : "it has a path ('\(authority[end...])')")
        authority = authority[..<end]
    }
    var host = authority
    var port: Substring?
    if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
        host = authority[..<colon]
        port = authority[authority.index(after: colon)...]
    }
    let hostCharacters = host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-.[]:".contains($0)) }
    guard !host.isEmpty, hostCharacters else { return notAnOrigin }
    if let port {
        guard let number = Int(port), (1...65535).contains(number), port.allSatisfy(\.isNumber) else {
            return notAnOrigin
        }
        if (scheme == "http" && number == 80) || (scheme == "https" && number == 443) {
            reasons.append("browsers leave out the default port \(number)")
        }
    }
    if origin[..<separator.lowerBound] != scheme || host.contains(where: \.isUppercase) {
        reasons.append("browsers send it in lowercase")
    }
    if reasons.isEmpty { return nil }
    let keptPort = reasons.contains { $0.hasPrefix("browsers leave out") } ? nil : port
    let instead = scheme + "://" + host.lowercased() + (keptPort.map { ":\($0)" } ?? "")
    return (reasons.joined(separator: ", and "), instead)
}

/// Whether `error` is Redis refusing the URL's credentials (AUTH) or database (SELECT): a configuration error that
/// no retry fixes, unlike an outage.
func isRedisRefusal(_ error: RedisError) -> Bool {
    error.code == .authenticationFailed || error.code == .selectFailed
}

/// The message for Redis refusing the URL's credentials or database (exit 78 in emit, tail and serve).
func redisRefusalMessage(_ error: RedisError, url: RedisURL) -> String {
    "not configured: Redis at \(url.redacted) refused the URL's credentials or database (\(error.message)); "
        + "fix the user, password or database number in the Redis URL (--redis-url or REDIS_URL)"
}

/// The message for a Redis URL that cannot be parsed (exit 78): what is wrong, the URL with its password masked,
/// and where to fix it.
func invalidRedisURLMessage(_ error: RedisError) -> String {
    let url = error.redactedURL.map { " in '\($0)'" } ?? ""
    return "not configured: \(error.message)\(url); fix the Redis URL (--redis-url or REDIS_URL), "
        + "e.g. redis://127.0.0.1:6379/0"
}

/// The Redis URL `text` with the environment's TLS settings (`SOCKET_REDIS_TLS_CA`, `…_CERT`, `…_KEY`,
/// `…_SERVER_NAME`) added and its PEM files read: a URL or TLS setting that cannot be used is refused here, as
/// `command`'s configuration error (exit 78), before anything connects.
func resolveRedisURL(_ text: String, command: String) throws -> RedisURL {
    let tls = RedisTLSConfiguration(environment: nil)
    do throws(RedisError) {
        return try RedisURL(parsing: text).applyingTLSSettings(tls)
    } catch  where error.code == .invalidTLSConfiguration {
        let url = error.redactedURL.map { " for '\($0)'" } ?? ""
        throw fail(
            command,
            "not configured: \(error.message)\(url); fix the TLS settings (SOCKET_REDIS_TLS_CA, SOCKET_REDIS_TLS_CERT, "
                + "SOCKET_REDIS_TLS_KEY, SOCKET_REDIS_TLS_SERVER_NAME, or the URL's ssl_… parameters)",
            ExitCodes.notConfigured
        )
    } catch {
        throw fail(command, invalidRedisURLMessage(error), ExitCodes.notConfigured)
    }
}

/// Asks Redis once whether it accepts the URL's credentials and database (one PING after AUTH and SELECT), and
/// returns its refusal; `nil` when it accepts them, or cannot be reached (that is an outage: callers wait it out).
func redisRefusal(_ url: RedisURL) async -> RedisError? {
    var logger = Logger(label: "socket-gateway.redis-check")
    logger.logLevel = .critical
    let client = RedisCommandClient(url: url, connectTimeout: .seconds(1), logger: logger)
    var refusal: RedisError?
    do {
        _ = try await client.send(["PING"], timeout: .seconds(2))
    } catch  where isRedisRefusal(error) {
        refusal = error
    } catch {}
    await client.shutdown()
    return refusal
}

/// Reads an environment variable; empty counts as unset.
func environment(_ name: String) -> String? {
    guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
    return value
}

/// Logs to stderr at `level`; refuses a level that does not exist (usage, 64) instead of guessing one.
func bootstrapLogging(_ command: String, level: String) throws {
    guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
        let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
        throw fail(command, "--log-level '\(level)' is not a log level; use one of \(levels)", ExitCodes.usage)
    }
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

/// What ``readAll(descriptor:limit:)`` read.
enum BoundedRead {
    /// Everything up to the end.
    case bytes([UInt8])
    /// More than the limit: reading stopped there.
    case tooLarge
    /// A read failed, for this reason.
    case failed(String)
}

/// Reads `descriptor` to its end, stopping once it holds more than `limit` bytes.
func readAll(descriptor: Int32, limit: Int) -> BoundedRead {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count == 0 { return .bytes(bytes) }
        if count < 0 {
            if errno == EINTR { continue }
            return .failed(lastError())
        }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > limit { return .tooLarge }
    }
}

/// Reads the file at `path` to its end, stopping once it holds more than `limit` bytes.
func readAll(path: String, limit: Int) -> BoundedRead {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return .failed(lastError()) }
    defer { close(descriptor) }
    return readAll(descriptor: descriptor, limit: limit)
}

/// Whether stdin holds data: a non-empty regular file (`< file`), or a pipe or socket with bytes waiting now.
/// A terminal, `/dev/null` or an empty pipe does not.
func standardInputHasData() -> Bool {
    var info = stat()
    guard fstat(0, &info) == 0 else { return false }
    switch info.st_mode & S_IFMT {
    case S_IFREG:
        return info.st_size > 0
    case S_IFIFO, S_IFSOCK:
        var waiting = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        return poll(&waiting, 1, 0) == 1 && waiting.revents & Int16(POLLIN) != 0
    default:
        return false
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
