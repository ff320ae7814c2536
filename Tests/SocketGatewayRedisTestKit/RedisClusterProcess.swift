import Foundation
public import SocketGatewayRedis

/// A real Redis Cluster on loopback ports, for integration tests: `primaries` primaries with one replica each
/// (3 + 3 by default), every node a `RedisServerProcess` started with `--cluster-enabled yes` on a free port and a
/// free cluster-bus port, joined with `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
///
/// `start` returns once every node says `cluster_state:ok`, knows every other node and sees all 16384 slots
/// assigned, and every replica has synced (bounded). Nodes are stopped by PID (`stop`), and a single node can be
/// stopped or killed with SIGKILL (`RedisServerProcess.crash`) to provoke a failover.
public final class RedisClusterProcess: @unchecked Sendable {
    /// Every node, primaries first in the order `--cluster create` was given them (it makes the first
    /// `primaries` nodes primaries and the rest their replicas).
    public let nodes: [RedisServerProcess]
    /// How long a node may be unreachable before the cluster fails it over (`cluster-node-timeout`).
    public let nodeTimeout: Duration
    /// The nodes' TLS set-up, when every port speaks TLS only.
    public let tls: RedisServerProcess.TLSOptions?

    private init(nodes: [RedisServerProcess], nodeTimeout: Duration, tls: RedisServerProcess.TLSOptions?) {
        self.nodes = nodes
        self.nodeTimeout = nodeTimeout
        self.tls = tls
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…` (`rediss+cluster://` with TLS): every node as a seed.
    public var urlString: String {
        (self.tls == nil ? "redis+cluster://" : "rediss+cluster://")
            + self.nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// The parsed `urlString`.
    public var url: RedisURL {
        get throws { try RedisURL(parsing: self.urlString) }
    }

    /// Starts the nodes, creates the cluster and waits until it is healthy.
    /// - Parameters:
    ///   - primaries: How many primaries (each gets one replica); at least 3, as `--cluster create` requires.
    ///   - nodeTimeout: `cluster-node-timeout`: short, so that a killed primary is failed over within seconds.
    ///   - tls: When set, every node speaks TLS only (`--port 0 --tls-port`), on the cluster bus and for
    ///     replication too (`--tls-cluster yes --tls-replication yes`); the cluster is created over TLS.
    ///   - plainPorts: With `tls`, every node also listens for plain clients on a port of its own (`--port`), so
    ///     that the cluster reports two ports per node (`CLUSTER SHARDS`' `port` and `tls-port`); `port` stays the
    ///     TLS one.
    /// - Throws: `RedisServerProcess.FixtureError` when a node does not start, the cluster cannot be created, or it
    ///   is not healthy within 30 s; the nodes started so far are stopped first.
    public static func start(
        primaries: Int = 3,
        nodeTimeout: Duration = .milliseconds(1000),
        tls: RedisServerProcess.TLSOptions? = nil,
        plainPorts: Bool = false
    ) async throws
        -> RedisClusterProcess
    {
        precondition(primaries >= 3, "redis-cli --cluster create needs at least 3 primaries")
        let milliseconds = Int(nodeTimeout / .milliseconds(1))
        var nodes: [RedisServerProcess] = []
        do {
            for _ in 0..<(primaries * 2) {
                // The bus port (and the plain port) are chosen again with the node's port on every attempt, so a
                // node whose bus port another process took moves to fresh ports too.
                nodes.append(
                    try await RedisServerProcess.start(tls: tls) {
                        var arguments = [
                            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", String(milliseconds), "--cluster-port",
                            String(try RedisServerProcess.freeLoopbackPort()),
                            // Replicas sync at once (the default waits 5 s for more replicas to share the transfer).
                            "--repl-diskless-sync-delay", "0",
                        ]
                        if tls != nil {
                            arguments += ["--tls-cluster", "yes", "--tls-replication", "yes"]
                            if plainPorts {
                                arguments += ["--port", String(try RedisServerProcess.freeLoopbackPort())]
                            }
                        }
                        return arguments
                    }
                )
            }
            let cluster = RedisClusterProcess(nodes: nodes, nodeTimeout: nodeTimeout, tls: tls)
            let cliTLS = tls.map { ["--tls", "--cacert", $0.caFile] } ?? []
            // Bounded: `--cluster create` waits for the nodes to join for ever when they cannot reach each other.
            let output = try await ChildProcess.run(
                "redis-cli",
                cliTLS + ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + [
                    "--cluster-replicas", "1", "--cluster-yes",
                ],
                timeout: .seconds(60)
            ).output
            guard output.contains("[OK] All 16384 slots covered") else {
                throw RedisServerProcess.FixtureError(
                    description: "redis-cli --cluster create failed:\n\(output.suffix(2000))"
                )
            }
            guard await cluster.waitUntilHealthy(timeout: .seconds(30)) else {
                throw RedisServerProcess.FixtureError(
                    description: "the cluster was not healthy within 30 s: \(await cluster.describeState())"
                )
            }
            return cluster
        } catch {
            for node in nodes { await node.stop() }
            throw error
        }
    }

    /// Starts a cluster, runs `body` with it and stops every node afterwards, whether `body` threw or not.
    public static func with<T>(
        primaries: Int = 3,
        nodeTimeout: Duration = .milliseconds(1000),
        tls: RedisServerProcess.TLSOptions? = nil,
        plainPorts: Bool = false,
        _ body: (RedisClusterProcess) async throws -> T
    ) async throws -> T {
        let cluster = try await Self.start(
            primaries: primaries,
            nodeTimeout: nodeTimeout,
            tls: tls,
            plainPorts: plainPorts
        )
        do {
            let result = try await body(cluster)
            await cluster.stop()
            return result
        } catch {
            await cluster.stop()
            throw error
        }
    }

    /// Waits (bounded by `timeout`, polling every 100 ms) until every running node reports `cluster_state:ok`,
    /// knows all nodes and sees every slot assigned, every running replica's link to its primary is up (a replica
    /// that never synced does not fail over), and — when `expectedPrimaries` is given — exactly that many running
    /// nodes are primaries.
    /// - Returns: Whether the cluster became healthy in time.
    public func waitUntilHealthy(timeout: Duration, expectedPrimaries: Int? = nil) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if await self.isHealthy(expectedPrimaries: expectedPrimaries) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return await self.isHealthy(expectedPrimaries: expectedPrimaries)
    }

    /// The nodes that run and are primaries right now (`ROLE`).
    public var runningPrimaries: [RedisServerProcess] {
        get async { await self.runningNodes(role: "master") }
    }

    /// The nodes that run and are replicas right now.
    public var runningReplicas: [RedisServerProcess] {
        get async { await self.runningNodes(role: "slave") }
    }

    /// The running node whose `CLUSTER NODES` line says `myself` serves `slot` as a primary.
    public func primary(forSlot slot: Int) async -> RedisServerProcess? {
        for node in await self.runningPrimaries {
            guard let text = try? await node.cli(["CLUSTER", "NODES"]),
                let mine = text.split(separator: "\n").first(where: { $0.contains("myself") })
            else { continue }
            let serves = mine.split(separator: " ").dropFirst(8).contains { range in
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                guard let low = bounds.first else { return false }
                return (low...(bounds.last ?? low)).contains(slot)
            }
            if serves { return node }
        }
        return nil
    }

    /// A replica of `primary` (by `INFO replication` of the replica), if one runs.
    public func replica(of primary: RedisServerProcess) async -> RedisServerProcess? {
        for node in await self.runningReplicas
        where (try? await node.cli(["INFO", "replication"]))?.contains("master_port:\(primary.port)") == true {
            return node
        }
        return nil
    }

    /// The running nodes whose `ROLE` reply starts with `role`, in `nodes` order.
    private func runningNodes(role: String) async -> [RedisServerProcess] {
        var found: [RedisServerProcess] = []
        for node in self.nodes where node.pid != nil {
            if (try? await node.cli(["ROLE"]))?.hasPrefix(role) == true { found.append(node) }
        }
        return found
    }

    /// Stops every node by PID.
    public func stop() async {
        for node in self.nodes { await node.stop() }
    }

    /// One line per node: port, role and `cluster_state`, for failure messages.
    public func describeState() async -> String {
        var lines: [String] = []
        for node in self.nodes {
            guard node.pid != nil else {
                lines.append("\(node.port): stopped")
                continue
            }
            let info = (try? await node.cli(["CLUSTER", "INFO"])) ?? ""
            let state = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cluster_state:") } ?? "?"
            let role = ((try? await node.cli(["ROLE"])) ?? "?").split(whereSeparator: \.isNewline).first ?? "?"
            lines.append("\(node.port): \(role) \(state)")
        }
        return lines.joined(separator: "; ")
    }

    private func isHealthy(expectedPrimaries: Int?) async -> Bool {
        let running = self.nodes.filter { $0.pid != nil }
        for node in running {
            guard let info = try? await node.cli(["CLUSTER", "INFO"]),
                info.contains("cluster_state:ok"),
                info.contains("cluster_slots_assigned:16384"),
                info.contains("cluster_slots_ok:16384")
            else { return false }
            // Every running node must know every other node (the failed ones count as known too).
            guard info.contains("cluster_known_nodes:\(self.nodes.count)") else { return false }
        }
        if let expectedPrimaries, await self.runningPrimaries.count != expectedPrimaries { return false }
        // A replica that has not finished its first sync refuses to fail over (its data counts as too old).
        for replica in await self.runningReplicas {
            guard (try? await replica.cli(["INFO", "replication"]))?.contains("master_link_status:up") == true else {
                return false
            }
        }
        return true
    }
}
