package import NIOCore

/// What a Redis Cluster client knows about the cluster and what it decides from it, without I/O: which primary a
/// slot goes to, what to do with a `MOVED` or `ASK` reply, and when to ask which node for the topology again.
///
/// The shell asks `route(slot:)` before sending, feeds back redirections (`redirected`), nodes it could not reach
/// (`nodeFailed`) and refresh outcomes (`topologyReceived`, `refreshFailed`), and calls `refreshDue(now:)` on its
/// timer (and after each input): when it returns a node, the shell sends `CLUSTER SHARDS` there.
///
/// Refresh policy: a refresh is wanted when there is no topology yet, after every `MOVED`, after a node could not
/// be reached, when a slot has no known owner, when the shell says so (`requestRefresh`: a `sunsubscribe` for a
/// moved slot, a failover), and every `periodicRefresh` in any case. At most one refresh is in flight, and two start
/// at least `minimumRefreshInterval` apart, so a burst of redirections costs one `CLUSTER SHARDS`. Refreshes go to
/// the known nodes in turn (starting over at the first primary after each success), then to the seeds, skipping the
/// node that failed last.
package struct RedisClusterRouter {
    /// The router's policies.
    package struct Configuration: Sendable {
        /// The nodes from the URL: where the first topology comes from, and the last resort later.
        package var seeds: [RedisClusterAddress]
        /// How many redirections one command may follow before it fails (a cluster in flux, or a loop).
        package var maxRedirections: Int
        /// The least time between the starts of two refreshes.
        package var minimumRefreshInterval: TimeAmount
        /// How long a refresh may wait for its reply before the next node is asked.
        package var refreshTimeout: TimeAmount
        /// How often the topology is refreshed when nothing asks for it (failovers the client would not notice).
        package var periodicRefresh: TimeAmount

        /// Creates a configuration.
        package init(
            seeds: [RedisClusterAddress],
            maxRedirections: Int = 5,
            minimumRefreshInterval: TimeAmount = .milliseconds(100),
            refreshTimeout: TimeAmount = .seconds(2),
            periodicRefresh: TimeAmount = .seconds(5)
        ) {
            precondition(!seeds.isEmpty, "a cluster client needs at least one seed node")
            self.seeds = seeds
            self.maxRedirections = maxRedirections
            self.minimumRefreshInterval = minimumRefreshInterval
            self.refreshTimeout = refreshTimeout
            self.periodicRefresh = periodicRefresh
        }
    }

    /// What to do with a command that got a redirection.
    package enum RedirectAction: Sendable, Hashable {
        /// Send the command again to `address`, preceded by `ASKING` when `asking` (a one-shot `ASK`).
        case resend(to: RedisClusterAddress, asking: Bool)
        /// Give the command up: it was redirected too often.
        case fail(RedisError.Code, message: String)
    }

    /// What a new topology changed.
    package struct TopologyChange: Sendable, Hashable {
        /// Whether any slot now has another primary (or none).
        package var slotsMoved: Bool
        /// Primaries that serve no slot any more (failed over, or emptied).
        package var primariesGone: [RedisClusterAddress]

        /// Creates a change.
        package init(slotsMoved: Bool, primariesGone: [RedisClusterAddress]) {
            self.slotsMoved = slotsMoved
            self.primariesGone = primariesGone
        }
    }

    package let configuration: Configuration
    /// The latest topology, if one was received.
    package private(set) var topology: RedisClusterTopology?
    private var refreshWanted = true
    /// The node asked and since when, while a refresh is in flight.
    private var inFlight: (node: RedisClusterAddress, since: NIODeadline)?
    private var lastRefreshStart: NIODeadline?
    private var lastTopologyAt: NIODeadline?
    /// The node whose refresh failed last, skipped once.
    private var lastFailedNode: RedisClusterAddress?
    private var nextCandidate = 0

    /// Creates a router that knows only the seeds.
    package init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// The primary to send a command for `slot` to; `nil` until a topology says who serves it (the caller waits
    /// for `topologyReceived` and a refresh is wanted).
    package mutating func route(slot: Int) -> RedisClusterAddress? {
        guard let address = self.topology?.primary(forSlot: slot) else {
            self.refreshWanted = true
            return nil
        }
        return address
    }

    /// A command for a slot got a redirection after `redirections` earlier ones: `MOVED` updates the map at once
    /// (and wants a refresh, as other slots have likely moved too), `ASK` does not touch it.
    package mutating func redirected(_ redirection: RedisClusterRedirection, redirections: Int) -> RedirectAction {
        if case .moved(let slot, let address) = redirection {
            self.topology = self.topology?.moving(slot: slot, to: address)
            self.refreshWanted = true
        }
        guard redirections < self.configuration.maxRedirections else {
            return .fail(
                .commandFailed,
                message: "redirected \(redirections + 1) times for slot \(redirection.slot); the cluster is in flux"
            )
        }
        switch redirection {
        case .moved(_, let address): return .resend(to: address, asking: false)
        case .ask(_, let address): return .resend(to: address, asking: true)
        }
    }

    /// A node could not be reached or its connection was lost: the topology is probably stale.
    package mutating func nodeFailed(_ address: RedisClusterAddress) {
        self.refreshWanted = true
        if self.inFlight?.node == address { self.inFlight = nil }
        self.lastFailedNode = address
    }

    /// Something outside the router says the topology may have changed (a `sunsubscribe` for a slot that moved).
    package mutating func requestRefresh() {
        self.refreshWanted = true
    }

    /// Whether a refresh should start now, and at which node. When it returns a node, the refresh is in flight
    /// until `topologyReceived`, `refreshFailed` or `refreshTimeout`.
    package mutating func refreshDue(now: NIODeadline) -> RedisClusterAddress? {
        if let inFlight = self.inFlight {
            guard now - inFlight.since >= self.configuration.refreshTimeout else { return nil }
            self.lastFailedNode = inFlight.node
            self.inFlight = nil
            self.refreshWanted = true
        }
        let periodic = self.lastTopologyAt.map { now - $0 >= self.configuration.periodicRefresh } ?? true
        guard self.refreshWanted || periodic else { return nil }
        if let last = self.lastRefreshStart, now - last < self.configuration.minimumRefreshInterval { return nil }
        let node = self.nextRefreshNode()
        self.inFlight = (node, now)
        self.lastRefreshStart = now
        return node
    }

    /// The refresh asked of `node` answered with `topology`.
    /// - Returns: What changed compared with the previous topology (nothing for the first one).
    @discardableResult
    package mutating func topologyReceived(
        _ topology: RedisClusterTopology,
        from node: RedisClusterAddress,
        now: NIODeadline
    ) -> TopologyChange {
        if self.inFlight?.node == node { self.inFlight = nil }
        let previous = self.topology
        self.topology = topology
        self.lastTopologyAt = now
        // A topology with holes (a failover under way) is asked for again.
        self.refreshWanted = !topology.coversAllSlots
        self.lastFailedNode = nil
        self.nextCandidate = 0
        guard let previous else { return TopologyChange(slotsMoved: false, primariesGone: []) }
        let moved = (0..<RedisClusterSlot.count).contains {
            previous.primary(forSlot: $0) != topology.primary(forSlot: $0)
        }
        let current = Set(topology.primaries)
        return TopologyChange(slotsMoved: moved, primariesGone: previous.primaries.filter { !current.contains($0) })
    }

    /// The refresh asked of `node` failed (no connection, an error reply, a reply of the wrong shape).
    package mutating func refreshFailed(from node: RedisClusterAddress) {
        if self.inFlight?.node == node { self.inFlight = nil }
        self.lastFailedNode = node
        self.refreshWanted = true
    }

    /// Known nodes in turn (primaries first), then the seeds, skipping the node that failed last when another
    /// remains.
    private mutating func nextRefreshNode() -> RedisClusterAddress {
        var candidates = self.topology?.allNodes ?? []
        for seed in self.configuration.seeds where !candidates.contains(seed) { candidates.append(seed) }
        if candidates.count > 1, let failed = self.lastFailedNode { candidates.removeAll { $0 == failed } }
        let node = candidates[self.nextCandidate % candidates.count]
        self.nextCandidate &+= 1
        return node
    }
}
