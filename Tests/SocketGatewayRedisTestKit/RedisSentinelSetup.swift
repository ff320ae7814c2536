import Foundation

/// A real Redis Sentinel deployment on loopback ports, for integration tests: one primary, one replica
/// (`--replicaof`), and three `redis-server <conf> --sentinel` processes (quorum 2) whose configuration files live in
/// a private temporary directory.
///
/// Down-after and failover timeouts are short (1 s and 3 s by default), so a failover, forced
/// (`forceFailover()`) or after the primary is killed (`killPrimary()`), takes a few seconds. Every wait is bounded.
public final class RedisSentinelSetup: @unchecked Sendable {
    /// The name the sentinels monitor the primary under.
    public let primaryName: String
    /// The data nodes: the first primary, then its replica.
    public let dataNodes: [RedisServerProcess]
    /// The sentinels' ports, in the order they were started (written only by `start`, before it returns the setup).
    public private(set) var sentinelPorts: [Int]
    private let directory: URL
    /// The sentinels' password, if they require one.
    public let sentinelPassword: String?
    /// The TLS set-up, when the data nodes and the sentinels speak TLS only.
    public let tls: RedisServerProcess.TLSOptions?
    private let lock = NSLock()
    private var sentinelPIDs: [Int: pid_t] = [:]

    private init(
        primaryName: String,
        dataNodes: [RedisServerProcess],
        directory: URL,
        sentinelPassword: String?,
        tls: RedisServerProcess.TLSOptions?
    ) {
        self.sentinelPassword = sentinelPassword
        self.tls = tls
        self.primaryName = primaryName
        self.dataNodes = dataNodes
        self.sentinelPorts = []
        self.directory = directory
    }

    deinit {
        for pid in self.sentinelPIDs.values {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Starts the primary, its replica and three sentinels, and waits (bounded: 30 s) until every sentinel knows
    /// the replica (in sync) and the two other sentinels, so that a failover can happen.
    /// - Parameters:
    ///   - primaryName: The name in `sentinel monitor`.
    ///   - downAfterMilliseconds: `sentinel down-after-milliseconds`.
    ///   - failoverTimeoutMilliseconds: `sentinel failover-timeout`.
    ///   - sentinelPassword: When set, the sentinels require it (`requirepass`, and `sentinel sentinel-pass` among
    ///     themselves).
    ///   - tls: When set, the data nodes speak TLS only, replication too (`--tls-replication yes`), and the
    ///     sentinels listen on a `tls-port` only and reach the data nodes and each other over TLS.
    /// - Throws: `RedisServerProcess.FixtureError` when a process does not start or the sentinels do not settle.
    public static func start(
        primaryName: String = "mymaster",
        downAfterMilliseconds: Int = 1000,
        failoverTimeoutMilliseconds: Int = 3000,
        sentinelPassword: String? = nil,
        tls: RedisServerProcess.TLSOptions? = nil
    ) async throws -> RedisSentinelSetup {
        let replication = tls == nil ? [] : ["--tls-replication", "yes"]
        let primary = try await RedisServerProcess.start(extraArguments: replication, tls: tls)
        let replica = try await RedisServerProcess.start(
            extraArguments: ["--replicaof", "127.0.0.1", "\(primary.port)"] + replication,
            tls: tls
        )
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "socketgateway-sentinel-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let setup = RedisSentinelSetup(
            primaryName: primaryName,
            dataNodes: [primary, replica],
            directory: directory,
            sentinelPassword: sentinelPassword,
            tls: tls
        )
        guard let executable = RedisServerProcess.findExecutable("redis-server") else {
            throw RedisServerProcess.FixtureError(description: "redis-server is not installed or not on PATH")
        }
        for _ in 0..<3 {
            // Another free port when another process took the chosen one before the sentinel bound it.
            let port = try await RedisServerProcess.retryingTakenPorts("redis-sentinel") {
                var port = try RedisServerProcess.freeLoopbackPort()
                while setup.sentinelPorts.contains(port) { port = try RedisServerProcess.freeLoopbackPort() }
                var configuration = [
                    "port \(port)", "bind 127.0.0.1", "daemonize no", "dir \(directory.path)",
                    "sentinel monitor \(primaryName) 127.0.0.1 \(primary.port) 2",
                    "sentinel down-after-milliseconds \(primaryName) \(downAfterMilliseconds)",
                    "sentinel failover-timeout \(primaryName) \(failoverTimeoutMilliseconds)",
                    "sentinel parallel-syncs \(primaryName) 1",
                ]
                if let tls {
                    configuration[0] = "port 0"
                    configuration += [
                        "tls-port \(port)", "tls-cert-file \(tls.certificateFile)", "tls-key-file \(tls.keyFile)",
                        "tls-ca-cert-file \(tls.caFile)", "tls-auth-clients no", "tls-replication yes",
                    ]
                }
                if let sentinelPassword {
                    configuration += ["requirepass \(sentinelPassword)", "sentinel sentinel-pass \(sentinelPassword)"]
                }
                try await setup.launchSentinel(port: port, executable: executable, configuration: configuration)
                return port
            }
            setup.sentinelPorts.append(port)
        }
        try await setup.waitUntilSettled(limit: .seconds(30))
        return setup
    }

    /// `redis+sentinel://127.0.0.1:<p1>,…/<name>/0` (`rediss+sentinel://` with TLS), with `extraSentinels` (e.g. a
    /// dead address) listed first.
    public func urlString(extraSentinels: [String] = [], sentinels: [Int]? = nil) -> String {
        let hosts = extraSentinels + (sentinels ?? self.sentinelPorts).map { "127.0.0.1:\($0)" }
        return
            "\(self.tls == nil ? "redis" : "rediss")+sentinel://\(hosts.joined(separator: ","))/\(self.primaryName)/0"
    }

    /// Runs `redis-cli` against sentinel `port` and returns its output lines.
    /// - Parameter timeout: How long redis-cli may run (a frozen sentinel never answers).
    /// - Throws: `ChildProcess.Failure` when redis-cli is missing or runs past `timeout`.
    @discardableResult
    public func sentinelCLI(
        _ port: Int,
        _ arguments: [String],
        timeout: Duration = .seconds(30)
    ) async throws
        -> [String]
    {
        var options = ["-h", "127.0.0.1", "-p", String(port)]
        if let tls = self.tls { options += ["--tls", "--cacert", tls.caFile] }
        if let password = self.sentinelPassword { options += ["-a", password, "--no-auth-warning"] }
        let result = try await ChildProcess.run("redis-cli", options + arguments, timeout: timeout)
        return result.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// The primary's port as sentinel `port` (default: the first) reports it; `nil` when it does not answer.
    public func primaryPort(askingSentinel port: Int? = nil) async -> Int? {
        let lines = try? await self.sentinelCLI(
            port ?? self.sentinelPorts[0],
            ["SENTINEL", "get-master-addr-by-name", self.primaryName]
        )
        guard let lines, lines.count == 2 else { return nil }
        return Int(lines[1])
    }

    /// The data node listening on `port`.
    public func dataNode(port: Int) -> RedisServerProcess? { self.dataNodes.first { $0.port == port } }

    /// `SENTINEL FAILOVER <name>` on the first sentinel (no agreement needed).
    public func forceFailover() async throws {
        let reply = try await self.sentinelCLI(self.sentinelPorts[0], ["SENTINEL", "FAILOVER", self.primaryName])
        guard reply == ["OK"] else {
            throw RedisServerProcess.FixtureError(description: "SENTINEL FAILOVER answered \(reply)")
        }
    }

    /// Kills the current primary with SIGKILL (no goodbye to anyone) and reaps it; returns its port.
    @discardableResult
    public func killPrimary() async throws -> Int {
        guard let port = await self.primaryPort(), let node = self.dataNode(port: port), let pid = node.pid else {
            throw RedisServerProcess.FixtureError(description: "no running primary to kill")
        }
        kill(pid, SIGKILL)
        await node.stop()
        return port
    }

    /// Stops sentinel `port` (SIGKILL), e.g. to test that clients use the next one.
    public func killSentinel(_ port: Int) async {
        let pid = self.lock.withLock { self.sentinelPIDs.removeValue(forKey: port) }
        guard let pid else { return }
        kill(pid, SIGKILL)
        _ = await RedisServerProcess.reap(pid, attempts: 400)
    }

    /// Freezes sentinel `port` (SIGSTOP, returning once it is really stopped: ``ProcessFreezer``) or lets it go on
    /// (SIGCONT): frozen, the kernel still accepts connections to it but it never answers, as a hung sentinel does.
    public func freezeSentinel(_ port: Int, _ frozen: Bool) async throws {
        guard let pid = self.lock.withLock({ self.sentinelPIDs[port] }) else { return }
        if frozen {
            try await ProcessFreezer.stop(pid)
        } else {
            kill(pid, SIGCONT)
        }
    }

    /// Waits (bounded by `limit`) until every running sentinel names a primary other than `oldPort` and that node
    /// answers ROLE `master`; returns its port.
    public func waitForNewPrimary(otherThan oldPort: Int, limit: Duration = .seconds(60)) async throws -> Int {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            let ports = self.lock.withLock { Array(self.sentinelPIDs.keys) }
            var answers: Set<Int?> = []
            for port in ports { answers.insert(await self.primaryPort(askingSentinel: port)) }
            if answers.count == 1, let port = answers.first!, port != oldPort, let node = self.dataNode(port: port),
                (try? await node.cli(["ROLE"]))?.hasPrefix("master") == true
            {
                return port
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisServerProcess.FixtureError(
            description: "no new primary within \(limit); sentinel log:\n\(self.sentinelLog().suffix(3000))"
        )
    }

    /// Stops the sentinels and the data nodes.
    public func stop() async {
        for port in self.sentinelPorts { await self.killSentinel(port) }
        for node in self.dataNodes { await node.stop() }
    }

    /// The first sentinel's log, for failure messages.
    public func sentinelLog() -> String {
        let path = self.directory.appendingPathComponent("sentinel-\(self.sentinelPorts[0]).log").path
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Writes sentinel `port`'s configuration file, starts it and waits (bounded: 10 s) until it answers on `port`
    /// as itself: `INFO server` names its PID, not that of another process that took the port.
    /// - Throws: `RedisServerProcess.PortTaken` when it exited because a port was in use; `FixtureError` when it
    ///   exited otherwise or did not answer.
    private func launchSentinel(port: Int, executable: String, configuration: [String]) async throws {
        let path = self.directory.appendingPathComponent("sentinel-\(port).conf").path
        try (configuration.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let logPath = self.directory.appendingPathComponent("sentinel-\(port).log").path
        let pid = try RedisServerProcess.spawn([executable, path, "--sentinel"], logPath: logPath)
        let clock = ContinuousClock()
        let end = clock.now + .seconds(10)
        while clock.now < end {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { break }
            let info = (try? await self.sentinelCLI(port, ["INFO", "server"], timeout: .seconds(2))) ?? []
            let lines = info.flatMap { $0.split(whereSeparator: \.isNewline) }
            if lines.contains(where: { $0.trimmingCharacters(in: .whitespaces) == "process_id:\(pid)" }) {
                self.lock.withLock { self.sentinelPIDs[port] = pid }
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        _ = await RedisServerProcess.reap(pid, attempts: 200)
        let log = String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(2000))
        if RedisServerProcess.saysAddressInUse(log) {
            throw RedisServerProcess.PortTaken(what: "redis-sentinel", port: port, log: log)
        }
        throw RedisServerProcess.FixtureError(
            description: "redis-sentinel on port \(port) did not answer INFO within 10 s; its log:\n\(log)"
        )
    }

    private func waitUntilSettled(limit: Duration) async throws {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            if await self.allSettled() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw RedisServerProcess.FixtureError(
            description: "sentinels did not see each other and the replica within \(limit); log:\n"
                + self.sentinelLog().suffix(3000)
        )
    }

    /// Whether every sentinel is settled (`isSettled`).
    private func allSettled() async -> Bool {
        for port in self.sentinelPorts where await !self.isSettled(port) { return false }
        return true
    }

    /// Whether sentinel `port` knows the two other sentinels and a replica that is in sync.
    private func isSettled(_ port: Int) async -> Bool {
        guard let sentinels = try? await self.sentinelCLI(port, ["SENTINEL", "SENTINELS", self.primaryName]),
            sentinels.filter({ $0 == "name" }).count == 2,
            let replicas = try? await self.sentinelCLI(port, ["SENTINEL", "REPLICAS", self.primaryName])
        else { return false }
        func value(_ key: String) -> String? {
            replicas.firstIndex(of: key).flatMap { $0 + 1 < replicas.count ? replicas[$0 + 1] : nil }
        }
        return value("flags") == "slave" && value("master-link-status") == "ok"
    }
}
