import Foundation
public import SocketGatewayRedis

/// A real `redis-server` on a free loopback port, for integration tests.
///
/// Started with `--save '' --appendonly no` in a private temporary directory; stopped by PID (SIGTERM), and
/// restartable on the same port so a test can take Redis away mid-stream and bring it back.
public final class RedisServerProcess: @unchecked Sendable {
    /// Why the fixture could not run Redis.
    public struct FixtureError: Error, CustomStringConvertible {
        /// What went wrong and what to do.
        public var description: String
    }

    /// How a TLS server is set up: its port speaks only TLS (`--port 0 --tls-port <port>`).
    public struct TLSOptions: Sendable {
        /// The server's certificate (PEM).
        public var certificateFile: String
        /// Its key (PEM).
        public var keyFile: String
        /// The CA that client certificates must be signed by (`--tls-ca-cert-file`).
        public var caFile: String
        /// Whether clients must present a certificate (`--tls-auth-clients yes`).
        public var requireClientCertificates: Bool
        /// The certificate (and key) the server presents when it is the client: to its primary, and on a Redis
        /// Cluster's bus, which always asks for one (`--tls-client-cert-file`, `--tls-client-key-file`); `nil`
        /// presents the server certificate.
        public var clientCertificateFile: String?
        /// The key of ``clientCertificateFile``.
        public var clientKeyFile: String?

        /// Creates TLS options.
        public init(
            certificateFile: String,
            keyFile: String,
            caFile: String,
            requireClientCertificates: Bool,
            clientCertificateFile: String? = nil,
            clientKeyFile: String? = nil
        ) {
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.caFile = caFile
            self.requireClientCertificates = requireClientCertificates
        }

        /// The server certificate for 127.0.0.1/localhost of `certificates`, or its `redis.test` one (`named`).
        public static func using(
            _ certificates: TestCertificates,
            named: Bool = false,
            requireClientCertificates: Bool = false
        ) -> TLSOptions {
            TLSOptions(
                certificateFile: named ? certificates.namedServerCertificate : certificates.serverCertificate,
                keyFile: named ? certificates.namedServerKey : certificates.serverKey,
                caFile: certificates.caFile,
                requireClientCertificates: requireClientCertificates,
                clientCertificateFile: certificates.clientCertificate,
                clientKeyFile: certificates.clientKey
            )
        }
    }

    /// The loopback port Redis listens on.
    public let port: Int
    private let executable: String
    private let directory: URL
    private let extraArguments: [String]
    private let tls: TLSOptions?
    private let lock = NSLock()
    private var processID: pid_t?

    /// `redis://127.0.0.1:<port>/0` (`rediss://` for a TLS server).
    public var urlString: String { "\(self.tls == nil ? "redis" : "rediss")://127.0.0.1:\(self.port)/0" }
    /// The parsed URL (for a TLS server: plain, without TLS settings; add them with `applyingTLS`).
    public var url: RedisURL { RedisURL(endpoint: .tcp(host: "127.0.0.1", port: self.port)) }
    /// The PID of the running server, if it runs.
    public var pid: Int32? { self.lock.withLock { self.processID } }

    private init(port: Int, executable: String, directory: URL, extraArguments: [String], tls: TLSOptions?) {
        self.port = port
        self.executable = executable
        self.directory = directory
        self.extraArguments = extraArguments
        self.tls = tls
    }

    deinit {
        if let pid = self.processID {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Starts a fresh redis-server on a free port (another one, at most `portAttempts` times in all, when another
    /// process takes the port between choosing and binding it).
    /// - Parameters:
    ///   - extraArguments: More `redis-server` options, e.g. `["--requirepass", "secret"]`.
    ///   - tls: When set, the port speaks TLS only (the unix socket, which `cli` uses, stays plain).
    /// - Throws: `FixtureError` when redis-server is not installed or does not come up.
    public static func start(extraArguments: [String] = [], tls: TLSOptions? = nil) async throws -> RedisServerProcess {
        try await Self.start(tls: tls) { extraArguments }
    }

    /// Starts a fresh redis-server on a port from `pickPort`, and on another one (at most `portAttempts` times in
    /// all) when another process took it between choosing and binding it.
    /// - Parameters:
    ///   - tls: When set, the port speaks TLS only (the unix socket, which `cli` uses, stays plain).
    ///   - pickPort: Chooses the port of each attempt (default: a free loopback port).
    ///   - extraArguments: More `redis-server` options, asked for again on every attempt, so that other ports they
    ///     name (a cluster bus port) are chosen afresh too.
    /// - Throws: `FixtureError` when redis-server is not installed, does not come up, or every port was taken.
    package static func start(
        tls: TLSOptions?,
        pickPort: () throws -> Int = RedisServerProcess.freeLoopbackPort,
        extraArguments: () throws -> [String]
    ) async throws -> RedisServerProcess {
        guard let executable = Self.findExecutable("redis-server") else {
            throw FixtureError(
                description:
                    "redis-server is not installed or not on PATH; these tests need a real Redis. Install it "
                    + "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) and run the tests again."
            )
        }
        return try await Self.retryingTakenPorts("redis-server") {
            let port = try pickPort()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "socketgateway-redis-\(port)-\(UUID().uuidString)"
            )
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let server = RedisServerProcess(
                port: port,
                executable: executable,
                directory: directory,
                extraArguments: try extraArguments(),
                tls: tls
            )
            try await server.launch()
            return server
        }
    }

    /// A process that could not listen because another process took its port between choosing and binding it.
    package struct PortTaken: Error, CustomStringConvertible {
        /// What could not listen, e.g. `redis-server`.
        package var what: String
        /// The port it was given (with other ports it listens on, the one taken may be another).
        package var port: Int
        /// The end of its log.
        package var log: String

        /// What happened, with the log.
        package var description: String {
            "\(self.what) on port \(self.port) could not bind a port (Address already in use); its log:\n\(self.log)"
        }
    }

    /// How many ports a start tries when another process takes the one it chose before it binds it.
    package static let portAttempts = 5

    /// Runs `attempt`, which chooses free ports and starts a process on them, again while it throws `PortTaken`
    /// (at most `portAttempts` times in all); any other error ends it at once.
    /// - Throws: `FixtureError` naming every port given and the last log when every attempt lost a port, or the
    ///   other error `attempt` threw.
    package static func retryingTakenPorts<T>(_ what: String, _ attempt: () async throws -> T) async throws -> T {
        var taken: [PortTaken] = []
        while taken.count < Self.portAttempts {
            do {
                return try await attempt()
            } catch let error as PortTaken {
                taken.append(error)
            }
        }
        let ports = taken.map { String($0.port) }.joined(separator: ", ")
        throw FixtureError(
            description: "\(what) could not listen in \(taken.count) attempts: another process took a port each time "
                + "between choosing and binding it (ports given: \(ports)); the last log:\n\(taken.last?.log ?? "")"
        )
    }

    /// Whether a Redis log says that a port could not be bound because it is in use (the client port, the TLS
    /// port or the cluster bus port: `… bind: Address already in use`).
    package static func saysAddressInUse(_ log: String) -> Bool { log.contains("Address already in use") }

    /// Starts the server again on the same port after `stop()`.
    /// - Parameter tcp: `false` starts it on its unix socket only (`--port 0`), so that clients using the unix
    ///   socket can reconnect before TCP clients; `enableTCP()` then opens the port.
    public func restart(tcp: Bool = true) async throws {
        try await self.launch(tcp: tcp)
    }

    /// Opens the TCP port on a server restarted with `tcp: false` (`CONFIG SET port`).
    public func enableTCP() async throws {
        let reply = try await self.cli(["CONFIG", "SET", self.tls == nil ? "port" : "tls-port", String(self.port)])
        guard reply == "OK" else { throw FixtureError(description: "CONFIG SET port failed: \(reply)") }
    }

    /// The server's unix socket.
    public var unixSocketPath: String { self.directory.appendingPathComponent("redis.sock").path }
    /// `unix://<socket>`.
    public var unixURL: RedisURL { RedisURL(endpoint: .unixSocket(path: self.unixSocketPath)) }

    /// Stops the server with SIGTERM (by PID) and waits for it to exit (bounded: 10 s, then SIGKILL).
    public func stop() async {
        let pid = self.lock.withLock { () -> pid_t? in
            defer { self.processID = nil }
            return self.processID
        }
        guard let pid else { return }
        kill(pid, SIGTERM)
        if await Self.reap(pid, attempts: 400) { return }
        kill(pid, SIGKILL)
        _ = await Self.reap(pid, attempts: 400)
    }

    /// Kills the server with SIGKILL (by PID), as a crash would, and waits for it to exit (bounded: 10 s).
    public func crash() async {
        let pid = self.lock.withLock { () -> pid_t? in
            defer { self.processID = nil }
            return self.processID
        }
        guard let pid else { return }
        kill(pid, SIGKILL)
        _ = await Self.reap(pid, attempts: 400)
    }

    /// Polls `waitpid(WNOHANG)` every 25 ms, at most `attempts` times; true once the process has exited.
    static func reap(_ pid: pid_t, attempts: Int) async -> Bool {
        for _ in 0..<attempts {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result == -1 && errno == ECHILD) { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }

    /// The password given with `--requirepass`, if any.
    public var password: String? {
        guard let index = self.extraArguments.firstIndex(of: "--requirepass"), index + 1 < self.extraArguments.count
        else { return nil }
        return self.extraArguments[index + 1]
    }

    /// Starts `redis-cli SUBSCRIBE channel`, waits (bounded) until Redis counts the subscription, then stops the
    /// process with SIGSTOP: a subscriber that Redis still delivers to but that never reads or answers, as a frozen
    /// server. Returns its process id; the caller ends it with SIGKILL.
    public func frozenSubscriber(channel: String) async throws -> Int32 {
        guard let executable = Self.findExecutable("redis-cli") else {
            throw FixtureError(description: "redis-cli is not installed (it comes with the redis-server package)")
        }
        func subscribers() async throws -> Int {
            Int(try await self.cli(["PUBSUB", "NUMSUB", channel]).split(separator: "\n").last ?? "") ?? 0
        }
        let before = try await subscribers()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        var options = ["-s", self.unixSocketPath]
        if let password = self.password { options += ["-a", password, "--no-auth-warning"] }
        process.arguments = options + ["SUBSCRIBE", channel]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 {
            if try await subscribers() > before {
                try await ProcessFreezer.stop(process.processIdentifier)
                return process.processIdentifier
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(process.processIdentifier, SIGKILL)
        throw FixtureError(description: "redis-cli SUBSCRIBE \(channel) was not counted by Redis within 5 s")
    }

    /// Runs `redis-cli` against this server (over its unix socket) and returns its output, trimmed.
    /// - Parameter timeout: How long redis-cli may run (a stopped or frozen server never answers).
    /// - Throws: `ChildProcess.Failure` when redis-cli is missing or runs past `timeout`.
    @discardableResult
    public func cli(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> String {
        var options = ["-s", self.unixSocketPath]
        if let password = self.password { options += ["-a", password, "--no-auth-warning"] }
        let result = try await ChildProcess.run("redis-cli", options + arguments, timeout: timeout)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func launch(tcp: Bool = true) async throws {
        var portArguments = ["--port", tcp ? String(self.port) : "0"]
        if let tls = self.tls {
            portArguments = [
                "--port", "0", "--tls-port", tcp ? String(self.port) : "0", "--tls-cert-file", tls.certificateFile,
                "--tls-key-file", tls.keyFile, "--tls-ca-cert-file", tls.caFile, "--tls-auth-clients",
                tls.requireClientCertificates ? "yes" : "no",
            ]
            if let certificate = tls.clientCertificateFile, let key = tls.clientKeyFile {
                portArguments += ["--tls-client-cert-file", certificate, "--tls-client-key-file", key]
            }
        }
        let arguments =
            [self.executable] + portArguments
            + [
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.directory.path, "--daemonize",
                "no", "--protected-mode", "yes", "--unixsocket", self.unixSocketPath, "--unixsocketperm", "700",
            ] + self.extraArguments
        let logPath = self.directory.appendingPathComponent("redis.log").path
        let pid = try Self.spawn(arguments, logPath: logPath)
        self.lock.withLock { self.processID = pid }
        // Wait (bounded: 60 s, and at most 400 tries) until it answers PING: redis-server starts in milliseconds,
        // but on a loaded machine each try's redis-cli may take seconds to start and be reaped (a stress run at load
        // 10 saw one start ready in 40 ms and unconfirmed after 20 s).
        let clock = ContinuousClock()
        let end = clock.now + .seconds(60)
        for _ in 0..<400 where clock.now < end {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { break }
            if let reply = try? await self.cli(["PING"]), reply == "PONG" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        kill(pid, SIGKILL)
        _ = await Self.reap(pid, attempts: 200)
        self.lock.withLock { self.processID = nil }
        if Self.saysAddressInUse(text) {
            throw PortTaken(what: "redis-server", port: self.port, log: String(text.suffix(2000)))
        }
        throw FixtureError(
            description:
                "redis-server on port \(self.port) did not answer PING within 60 s; its log:\n\(text.suffix(2000))"
        )
    }

    /// Starts `arguments[0]` with an empty signal mask and default signal handlers (a test process blocks
    /// signals in its threads, and a child would inherit that, ignoring SIGTERM), output to `logPath`.
    static func spawn(_ arguments: [String], logPath: String) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        ChildProcess.resetSignals(&attributes, ownProcessGroup: false)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        guard result == 0 else {
            throw FixtureError(description: "cannot start \(arguments[0]): posix_spawn error \(result)")
        }
        return pid
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories =
            path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Binds 127.0.0.1:0, reads the port the kernel chose, and closes the socket. Another process may take the
    /// port before the caller binds it: start processes on it through `retryingTakenPorts`.
    package static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError(description: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw FixtureError(description: "bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw FixtureError(description: "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
