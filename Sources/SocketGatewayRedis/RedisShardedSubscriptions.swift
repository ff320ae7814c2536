package import NIOCore

/// Which sharded channels (`SSUBSCRIBE`) are wanted, where each is subscribed, and what to send to make the two
/// agree, without I/O.
///
/// A sharded channel lives on the primary that owns its slot, so each wanted channel is subscribed on a connection
/// to that primary, one `SSUBSCRIBE channel` per command (so that every reply, a confirmation or an error, answers a
/// known command, in order). `reconcile(topology:)` compares what is wanted with what is subscribed and returns the
/// commands and connections that close the gap: after a subscribe or unsubscribe, a new topology (slots moved, a
/// failover), a lost connection, or an unrequested `sunsubscribe` (Redis 7 sends one when a channel's slot migrates
/// or its primary becomes a replica). The shell calls it after every input and on its timer.
///
/// A node whose connection was lost or could not be opened is not connected again before `reconnectDelay` has
/// passed (a dead primary stays in the topology until the cluster fails it over).
///
/// The shell's timer calls `reconcile` every 50 ms, mostly when nothing changed: then it returns at once, without
/// walking the wanted channels (in rooms mode a server wants one per room with a local member: thousands). Every
/// input that can change its answer or the `summary` bumps `generation`; a new topology or a reconnect delay that
/// ran out makes it walk them again.
package struct RedisShardedSubscriptions: Sendable {
    /// What the shell must do.
    package enum Action: Sendable, Hashable {
        /// Open a connection to this primary (handshake: AUTH when configured); report `connectionReady` or
        /// `connectionLost`.
        case connect(RedisClusterAddress)
        /// Write `SSUBSCRIBE channel` on this node's connection.
        case subscribe(String, on: RedisClusterAddress)
        /// Write `SUNSUBSCRIBE channel` on this node's connection.
        case unsubscribe(String, on: RedisClusterAddress)
        /// Close this node's connection: nothing is wanted there any more.
        case close(RedisClusterAddress)
    }

    /// What a reply on a node's connection meant.
    package enum ReplyOutcome: Sendable, Hashable {
        /// A confirmation or a message; nothing more to do than `reconcile`.
        case handled
        /// A message on a sharded channel: deliver it.
        case message(channel: String)
        /// The topology is probably stale (an unrequested `sunsubscribe`, a `MOVED` reply): refresh it.
        case refreshTopology
        /// A reply that answers no command (or an error for a command that was not a subscription): the connection
        /// can no longer be trusted; close it (`connectionLost` follows).
        case protocolViolation(String)
    }

    private enum Command: Sendable, Hashable {
        case subscribe(String)
        case unsubscribe(String)
    }

    private struct Node: Sendable {
        var ready = false
        /// Confirmed by `ssubscribe`.
        var subscribed: Set<String> = []
        /// Written and not yet answered, in order.
        var pending: [Command] = []

        func isPending(_ command: Command) -> Bool { self.pending.contains(command) }
    }

    /// The channels the client wants.
    package private(set) var wanted: Set<String> = []
    private var nodes: [RedisClusterAddress: Node] = [:]
    /// Nodes lost recently, and when they may be connected again.
    private var retryAfter: [RedisClusterAddress: NIODeadline] = [:]
    /// Nodes whose connection was lost or refused and has not become ready since.
    private var failing: Set<RedisClusterAddress> = []
    /// How long after a lost connection its node is not connected again.
    package let reconnectDelay: TimeAmount
    /// Wanted channels reported stopped by `activityChanges` and not reported back since.
    private var reportedStopped: Set<String> = []
    /// Set by what may stop a confirmed channel without being asked (a lost connection, an unrequested
    /// `sunsubscribe`); a new topology is noticed by `activityChanges` itself.
    private var activityRecheck = false
    /// The topology `activityChanges` last looked at.
    private var checkedTopology: RedisClusterTopology?
    /// Bumped by every change of what is wanted, connected, subscribed or pending (and by a `reconcile` that
    /// acted): `summary` on the same topology is the same as long as this is.
    package private(set) var generation: UInt64 = 0
    /// `generation` and topology as of the latest `reconcile` that walked the channels; the same again (and no
    /// reconnect delay ran out) means it would return nothing.
    private var reconciledGeneration: UInt64?
    private var reconciledTopology: RedisClusterTopology?

    /// Creates an empty state: nothing wanted, no connection.
    package init(reconnectDelay: TimeAmount = .milliseconds(250)) {
        self.reconnectDelay = reconnectDelay
    }

    /// The client wants these channels (already wanted ones are unchanged).
    package mutating func subscribe(_ channels: some Sequence<String>) {
        self.wanted.formUnion(channels)
        self.generation &+= 1
    }

    /// The client no longer wants these channels.
    package mutating func unsubscribe(_ channels: some Sequence<String>) {
        self.wanted.subtract(channels)
        self.generation &+= 1
    }

    /// Whether `channel` is wanted and confirmed on the primary that owns it in `topology`, with no
    /// `SUNSUBSCRIBE` of it still on its way (a channel unsubscribed and wanted again is active only once the
    /// `SSUBSCRIBE` sent after that `SUNSUBSCRIBE` is confirmed: every message published after that reaches us).
    package func isActive(_ channel: String, topology: RedisClusterTopology?) -> Bool {
        guard self.wanted.contains(channel),
            let owner = topology?.primary(forSlot: RedisClusterSlot.of(channel)),
            let node = self.nodes[owner]
        else { return false }
        return node.subscribed.contains(channel) && !node.isPending(.unsubscribe(channel))
    }

    /// Whether `channel` is subscribed nowhere (and not being subscribed).
    package func isInactive(_ channel: String) -> Bool {
        !self.nodes.values.contains { $0.subscribed.contains(channel) || $0.isPending(.subscribe(channel)) }
    }

    /// The nodes with a connection (open or opening).
    package var connectedNodes: [RedisClusterAddress] { self.nodes.keys.sorted() }

    /// The connection to `address` finished its handshake.
    package mutating func connectionReady(_ address: RedisClusterAddress) {
        self.nodes[address]?.ready = true
        self.failing.remove(address)
        self.generation &+= 1
    }

    /// The connection to `address` is gone (or could not be opened) at `now`: what it had subscribed is not any
    /// more, and the node is not connected again before `now + reconnectDelay`.
    package mutating func connectionLost(_ address: RedisClusterAddress, now: NIODeadline) {
        if self.nodes[address]?.subscribed.isEmpty == false { self.activityRecheck = true }
        self.nodes[address] = nil
        self.retryAfter[address] = now + self.reconnectDelay
        self.failing.insert(address)
        self.generation &+= 1
    }

    /// What the subscriptions look like on `topology`, for health reports.
    package struct Summary: Sendable, Hashable {
        /// Connections that finished their handshake.
        package var connectionsUp = 0
        /// Primaries owning a wanted channel whose connection was lost or refused and is not ready again (a
        /// connection opened for the first time is not down).
        package var connectionsDown = 0
        /// Wanted channels confirmed on their owner (see `isActive`).
        package var channelsSubscribed = 0
        /// Wanted channels not confirmed on their owner (yet).
        package var channelsPending = 0

        package init(
            connectionsUp: Int = 0,
            connectionsDown: Int = 0,
            channelsSubscribed: Int = 0,
            channelsPending: Int = 0
        ) {
            self.connectionsUp = connectionsUp
            self.connectionsDown = connectionsDown
            self.channelsSubscribed = channelsSubscribed
            self.channelsPending = channelsPending
        }
    }

    /// The counts of `Summary` on `topology`.
    package func summary(topology: RedisClusterTopology?) -> Summary {
        var summary = Summary()
        var owners: Set<RedisClusterAddress> = []
        for channel in self.wanted {
            if self.isActive(channel, topology: topology) {
                summary.channelsSubscribed += 1
            } else {
                summary.channelsPending += 1
            }
            if let owner = topology?.primary(forSlot: RedisClusterSlot.of(channel)) { owners.insert(owner) }
        }
        summary.connectionsUp = self.nodes.values.count { $0.ready }
        summary.connectionsDown = owners.count { self.failing.contains($0) && self.nodes[$0]?.ready != true }
        return summary
    }

    /// A reply or push on `address`'s connection (RESP2: confirmations, `smessage` pushes and errors share it).
    package mutating func received(_ value: RESPValue, on address: RedisClusterAddress) -> ReplyOutcome {
        // A message (nearly everything that arrives) changes nothing: the node is not copied out and back.
        if case .array(let items) = value, items.count >= 2, items[0].string == "smessage",
            let channel = items[1].string
        {
            return self.nodes[address] == nil ? .handled : .message(channel: channel)
        }
        guard var node = self.nodes[address] else { return .handled }
        defer { self.nodes[address] = node }
        switch value {
        case .array(let items):
            guard let kind = items.first?.string, items.count >= 2, let channel = items[1].string else {
                return .protocolViolation("unexpected push \(value)")
            }
            switch kind {
            case "ssubscribe":
                guard node.pending.first == .subscribe(channel) else {
                    return .protocolViolation("ssubscribe confirmation for \(channel) that was not asked for")
                }
                node.pending.removeFirst()
                node.subscribed.insert(channel)
                self.generation &+= 1
                return .handled
            case "sunsubscribe":
                node.subscribed.remove(channel)
                self.generation &+= 1
                if node.pending.first == .unsubscribe(channel) {
                    node.pending.removeFirst()
                    return .handled
                }
                // Unrequested: the slot migrated, or the node became a replica.
                self.activityRecheck = true
                return .refreshTopology
            default:
                return .handled
            }
        case .error(let message):
            guard !node.pending.isEmpty else { return .protocolViolation("error reply to no command: \(message)") }
            // Refused (`MOVED` while a slot migrates, `CLUSTERDOWN`): `reconcile` sends it again, to whichever node
            // the refreshed topology names.
            node.pending.removeFirst()
            self.generation &+= 1
            return .refreshTopology
        case .simpleString("PONG"):
            // The liveness PING on a connection that holds no subscription (yet) is answered outside push form.
            return .handled
        default:
            return .protocolViolation("unexpected reply \(value)")
        }
    }

    /// Which wanted channels stopped being active without being asked to (after a lost connection, an unrequested
    /// `sunsubscribe` or a new topology; each reported once) and which of the channels reported stopped are active
    /// again (see `isActive`). A channel not confirmed yet may be reported stopped too (it is not active): the
    /// consumer ignores reports about channels it is still waiting for. When nothing happened, only the channels
    /// reported stopped are looked at.
    package mutating func activityChanges(topology: RedisClusterTopology?) -> RoomChannelActivity {
        var changes = RoomChannelActivity()
        if topology != self.checkedTopology {
            self.checkedTopology = topology
            self.activityRecheck = true
        }
        for channel in self.reportedStopped
        where !self.wanted.contains(channel) || self.isActive(channel, topology: topology) {
            self.reportedStopped.remove(channel)
            if self.wanted.contains(channel) { changes.resumed.append(channel) }
        }
        if self.activityRecheck {
            self.activityRecheck = false
            for channel in self.wanted
            where !self.reportedStopped.contains(channel) && !self.isActive(channel, topology: topology) {
                self.reportedStopped.insert(channel)
                changes.stopped.append(channel)
            }
        }
        changes.stopped.sort()
        changes.resumed.sort()
        return changes
    }

    /// The commands and connections that make the subscriptions match `wanted` on `topology`'s owners. Channels
    /// whose slot has no known owner wait (the shell refreshes the topology). Returns at once when nothing changed
    /// since the latest call that acted (same `generation`, same topology, no reconnect delay ran out).
    package mutating func reconcile(topology: RedisClusterTopology?, now: NIODeadline) -> [Action] {
        if self.retryAfter.contains(where: { $0.value <= now }) {
            self.retryAfter = self.retryAfter.filter { $0.value > now }
            self.generation &+= 1
        }
        guard self.reconciledGeneration != self.generation || self.reconciledTopology != topology else { return [] }
        let actions = self.reconcileAll(topology: topology)
        if !actions.isEmpty { self.generation &+= 1 }
        self.reconciledGeneration = self.generation
        self.reconciledTopology = topology
        return actions
    }

    /// `reconcile`'s walk over every wanted and every subscribed channel.
    private mutating func reconcileAll(topology: RedisClusterTopology?) -> [Action] {
        var actions: [Action] = []
        var owners: [String: RedisClusterAddress] = [:]
        for channel in self.wanted.sorted() {
            guard let owner = topology?.primary(forSlot: RedisClusterSlot.of(channel)) else { continue }
            owners[channel] = owner
            guard var node = self.nodes[owner] else {
                guard self.retryAfter[owner] == nil else { continue }
                self.nodes[owner] = Node()
                actions.append(.connect(owner))
                continue
            }
            // Subscribed already, unless a SUNSUBSCRIBE is on its way: then SSUBSCRIBE again at once (Redis answers
            // in order, so the channel ends subscribed).
            let subscribed = node.subscribed.contains(channel) && !node.isPending(.unsubscribe(channel))
            guard node.ready, !subscribed, !node.isPending(.subscribe(channel)) else { continue }
            node.pending.append(.subscribe(channel))
            self.nodes[owner] = node
            actions.append(.subscribe(channel, on: owner))
        }
        for address in self.nodes.keys.sorted() {
            guard var node = self.nodes[address], node.ready else { continue }
            for channel in node.subscribed.sorted() {
                // Not wanted any more, or owned by another primary now (an unknown owner, a hole in the topology
                // during a failover, keeps what is subscribed).
                let movedAway = owners[channel].map { $0 != address } ?? false
                guard !self.wanted.contains(channel) || movedAway, !node.isPending(.unsubscribe(channel)) else {
                    continue
                }
                node.pending.append(.unsubscribe(channel))
                actions.append(.unsubscribe(channel, on: address))
            }
            self.nodes[address] = node
            let needed = owners.values.contains(address)
            if !needed && node.subscribed.isEmpty && node.pending.isEmpty {
                self.nodes[address] = nil
                actions.append(.close(address))
            }
        }
        return actions
    }
}
