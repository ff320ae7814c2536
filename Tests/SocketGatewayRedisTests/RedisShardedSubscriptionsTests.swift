import NIOCore
import SocketGatewayRedis
import Testing

@Suite struct RedisShardedSubscriptionsTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let a = RedisClusterAddress(host: "10.0.0.1", port: 7000)
    static let b = RedisClusterAddress(host: "10.0.0.2", port: 7001)
    static let c = RedisClusterAddress(host: "10.0.0.3", port: 7002)

    /// Slots 0–5460 on a, 5461–10922 on b, 10923–16383 on c.
    static let topology = RedisClusterTopology(shards: [
        .init(slots: [0...5460], primary: .init(address: a)),
        .init(slots: [5461...10922], primary: .init(address: b)),
        .init(slots: [10923...16383], primary: .init(address: c)),
    ])

    /// A channel whose slot is owned by `address` in `topology`.
    static func channel(
        on address: RedisClusterAddress,
        in topology: RedisClusterTopology = topology,
        _ n: Int = 0
    )
        -> String
    {
        var found: [String] = []
        for index in 0..<10_000 {
            let name = "room-\(index)"
            if topology.primary(forSlot: RedisClusterSlot.of(name)) == address { found.append(name) }
            if found.count > n { break }
        }
        return found[n]
    }

    static func push(_ kind: String, _ channel: String, _ extra: RESPValue = .integer(1)) -> RESPValue {
        .array([.bulkString(ByteBuffer(string: kind)), .bulkString(ByteBuffer(string: channel)), extra])
    }

    @Test func channelsAreSubscribedOnTheirOwnersAndConfirmed() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        let onB = Self.channel(on: Self.b)
        let onA2 = Self.channel(on: Self.a, 1)
        state.subscribe([onA, onB, onA2])
        // No topology yet: nothing happens, nothing is active.
        #expect(state.reconcile(topology: nil, now: self.start) == [])
        #expect(!state.isActive(onA, topology: nil))
        // Connections first, one per owner.
        #expect(Set(state.reconcile(topology: Self.topology, now: self.start)) == [.connect(Self.a), .connect(Self.b)])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        state.connectionReady(Self.a)
        let expectedOnA = [onA, onA2].sorted().map { RedisShardedSubscriptions.Action.subscribe($0, on: Self.a) }
        #expect(state.reconcile(topology: Self.topology, now: self.start) == expectedOnA)
        // Sent once only.
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        for channel in [onA, onA2].sorted() {
            #expect(state.received(Self.push("ssubscribe", channel), on: Self.a) == .handled)
        }
        #expect(state.isActive(onA, topology: Self.topology))
        #expect(state.isActive(onA2, topology: Self.topology))
        #expect(!state.isActive(onB, topology: Self.topology))
        #expect(!state.isInactive(onA))
        state.connectionReady(Self.b)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onB, on: Self.b)])
        #expect(state.isInactive(onA) == false)
        #expect(state.received(Self.push("ssubscribe", onB), on: Self.b) == .handled)
        #expect(state.isActive(onB, topology: Self.topology))
        #expect(
            state.received(Self.push("smessage", onB, .bulkString(ByteBuffer(string: "x"))), on: Self.b)
                == .message(channel: onB)
        )
        #expect(state.connectedNodes == [Self.a, Self.b])
    }

    @Test func unsubscribingEmptiesAndClosesAConnection() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        state.unsubscribe([onA])
        #expect(!state.isActive(onA, topology: Self.topology))
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.unsubscribe(onA, on: Self.a)])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        #expect(!state.isInactive(onA))
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .handled)
        #expect(state.isInactive(onA))
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.close(Self.a)])
        #expect(state.connectedNodes == [])
    }

    /// A channel wanted again while its SUNSUBSCRIBE is on its way is subscribed again at once, and is active only
    /// once that new SSUBSCRIBE is confirmed (a join must not be told "active" while the old SUNSUBSCRIBE can still
    /// take the channel away).
    @Test func wantedAgainWhileUnsubscribing() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        state.unsubscribe([onA])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.unsubscribe(onA, on: Self.a)])
        state.subscribe([onA])
        #expect(!state.isActive(onA, topology: Self.topology))
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .handled)
        #expect(!state.isActive(onA, topology: Self.topology))
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        #expect(state.received(Self.push("ssubscribe", onA), on: Self.a) == .handled)
        #expect(state.isActive(onA, topology: Self.topology))
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
    }

    /// Unwanted while its SSUBSCRIBE is on its way: unsubscribed once confirmed.
    @Test func unwantedWhileSubscribing() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        state.unsubscribe([onA])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [])
        #expect(!state.isInactive(onA))
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.unsubscribe(onA, on: Self.a)])
        _ = state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a)
        #expect(state.isInactive(onA))
    }

    /// Redis 7 sends `sunsubscribe` on its own when the channel's slot migrates: the topology is refreshed, and the
    /// channel is subscribed on its new owner (and not again on the old one).
    @Test func anUnrequestedSunsubscribeMovesTheChannel() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .refreshTopology)
        #expect(!state.isActive(onA, topology: Self.topology))
        let moved = Self.topology.moving(slot: RedisClusterSlot.of(onA), to: Self.b)
        // a is now empty and not needed: closed; b is connected.
        #expect(state.reconcile(topology: moved, now: self.start) == [.connect(Self.b), .close(Self.a)])
        state.connectionReady(Self.b)
        #expect(state.reconcile(topology: moved, now: self.start) == [.subscribe(onA, on: Self.b)])
        _ = state.received(Self.push("ssubscribe", onA), on: Self.b)
        #expect(state.isActive(onA, topology: moved))
        #expect(!state.isActive(onA, topology: Self.topology))
    }

    /// A failover seen in a new topology while the old primary still has the channel: it is unsubscribed there and
    /// subscribed on the new owner.
    @Test func aNewOwnerTakesTheChannelOver() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        let failedOver = RedisClusterTopology(shards: [
            .init(slots: [0...5460], primary: .init(address: Self.c)),
            .init(slots: [5461...16383], primary: .init(address: Self.b)),
        ])
        #expect(
            state.reconcile(topology: failedOver, now: self.start) == [.connect(Self.c), .unsubscribe(onA, on: Self.a)]
        )
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .handled)
        state.connectionReady(Self.c)
        #expect(
            state.reconcile(topology: failedOver, now: self.start) == [.subscribe(onA, on: Self.c), .close(Self.a)]
        )
    }

    /// A hole in the topology (a failover under way) keeps what is subscribed.
    @Test func aHoleKeepsTheSubscription() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        let holed = RedisClusterTopology(shards: Array(Self.topology.shards.dropFirst()))
        #expect(state.reconcile(topology: holed, now: self.start) == [])
    }

    /// A lost connection loses its subscriptions; they come back on a new connection to the owner.
    @Test func aLostConnectionIsReplaced() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        state.connectionLost(Self.a, now: self.start)
        #expect(!state.isActive(onA, topology: Self.topology))
        #expect(state.isInactive(onA))
        // Not again before the reconnect delay.
        #expect(state.reconcile(topology: Self.topology, now: self.start + .milliseconds(249)) == [])
        #expect(state.reconcile(topology: Self.topology, now: self.start + .milliseconds(250)) == [.connect(Self.a)])
        // Replies from a forgotten connection change nothing.
        #expect(state.received(Self.push("ssubscribe", onA), on: Self.b) == .handled)
    }

    /// The health summary: a connection opening for the first time is not down; a lost one is, until it is ready
    /// again or its channels' slots belong to another primary (a failover); pending counts unconfirmed channels.
    @Test func theSummaryCountsLostConnectionsAsDownUntilReadyOrFailedOver() {
        typealias Summary = RedisShardedSubscriptions.Summary
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        let onB = Self.channel(on: Self.b)
        #expect(state.summary(topology: nil) == Summary())
        state.subscribe([onA, onB])
        #expect(state.summary(topology: nil) == Summary(channelsPending: 2))
        _ = state.reconcile(topology: Self.topology, now: self.start)
        #expect(state.summary(topology: Self.topology) == Summary(channelsPending: 2))
        state.connectionReady(Self.a)
        state.connectionReady(Self.b)
        _ = state.reconcile(topology: Self.topology, now: self.start)
        #expect(state.summary(topology: Self.topology) == Summary(connectionsUp: 2, channelsPending: 2))
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        _ = state.received(Self.push("ssubscribe", onB), on: Self.b)
        #expect(
            state.summary(topology: Self.topology) == Summary(connectionsUp: 2, channelsSubscribed: 2)
        )
        // A lost: down, and stays down while it is being connected again.
        state.connectionLost(Self.a, now: self.start)
        let down = Summary(connectionsUp: 1, connectionsDown: 1, channelsSubscribed: 1, channelsPending: 1)
        #expect(state.summary(topology: Self.topology) == down)
        #expect(state.reconcile(topology: Self.topology, now: self.start + .milliseconds(250)) == [.connect(Self.a)])
        #expect(state.summary(topology: Self.topology) == down)
        // Ready again: up.
        state.connectionReady(Self.a)
        #expect(
            state.summary(topology: Self.topology)
                == Summary(connectionsUp: 2, channelsSubscribed: 1, channelsPending: 1)
        )
        // Lost again, then failed over to c: a owns nothing wanted, so nothing is down.
        state.connectionLost(Self.a, now: self.start + .seconds(1))
        let failedOver = RedisClusterTopology(shards: [
            .init(slots: [0...5460], primary: .init(address: Self.c)),
            .init(slots: [5461...10922], primary: .init(address: Self.b)),
        ])
        #expect(
            state.summary(topology: failedOver)
                == Summary(connectionsUp: 1, channelsSubscribed: 1, channelsPending: 1)
        )
    }

    /// An error reply (`MOVED` during a migration) answers the oldest command: it is sent again after a refresh.
    @Test func aRefusedSubscriptionIsRetried() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        state.subscribe([onA])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        #expect(state.received(.error("MOVED 1 10.0.0.2:7001"), on: Self.a) == .refreshTopology)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
    }

    @Test(arguments: [
        RESPValue.error("ERR nobody asked"),
        .integer(3),
        .array([]),
        push("ssubscribe", "not-asked"),
    ])
    func unexpectedRepliesAreViolations(_ value: RESPValue) {
        var state = RedisShardedSubscriptions()
        state.subscribe([Self.channel(on: Self.a)])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        guard case .protocolViolation = state.received(value, on: Self.a) else {
            Issue.record("\(value) was accepted")
            return
        }
    }

    /// Once nothing changed, `reconcile` has nothing to say (the shell's 50 ms timer then costs no walk over the
    /// wanted channels), and every kind of input still makes it act again: a subscribe, an unsubscribe, a ready
    /// connection, a confirmation, an error reply, a lost connection whose reconnect delay ran out, a new topology.
    @Test func aQuietReconcileStillSeesEveryKindOfChange() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        let onA2 = Self.channel(on: Self.a, 1)
        let quiet = { (state: inout RedisShardedSubscriptions, now: NIODeadline) in
            #expect(state.reconcile(topology: Self.topology, now: now) == [])
            #expect(state.reconcile(topology: Self.topology, now: now) == [])
        }
        state.subscribe([onA])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.connect(Self.a)])
        quiet(&state, self.start)
        state.connectionReady(Self.a)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        quiet(&state, self.start)
        // A refused SSUBSCRIBE is sent again.
        #expect(state.received(.error("TRYAGAIN"), on: Self.a) == .refreshTopology)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        quiet(&state, self.start)
        #expect(state.received(Self.push("ssubscribe", onA), on: Self.a) == .handled)
        quiet(&state, self.start)
        // Messages change nothing.
        #expect(
            state.received(Self.push("smessage", onA, .bulkString(ByteBuffer(string: "x"))), on: Self.a)
                == .message(channel: onA)
        )
        quiet(&state, self.start)
        state.subscribe([onA2])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA2, on: Self.a)])
        _ = state.received(Self.push("ssubscribe", onA2), on: Self.a)
        quiet(&state, self.start)
        state.unsubscribe([onA2])
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.unsubscribe(onA2, on: Self.a)])
        quiet(&state, self.start)
        // An unrequested sunsubscribe (the slot migrated): subscribed again on the owner the topology names.
        #expect(state.received(Self.push("sunsubscribe", onA2, .integer(0)), on: Self.a) == .handled)
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .refreshTopology)
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        quiet(&state, self.start)
        // A new topology alone.
        let moved = Self.topology.moving(slot: RedisClusterSlot.of(onA), to: Self.b)
        #expect(state.reconcile(topology: moved, now: self.start) == [.connect(Self.b), .unsubscribe(onA, on: Self.a)])
        #expect(state.reconcile(topology: moved, now: self.start) == [])
        // Moved back before the SUNSUBSCRIBE was answered: SSUBSCRIBE again at once.
        #expect(state.reconcile(topology: Self.topology, now: self.start) == [.subscribe(onA, on: Self.a)])
        quiet(&state, self.start)
        // A lost connection: nothing before the reconnect delay, then the time alone makes it act.
        state.connectionLost(Self.a, now: self.start)
        quiet(&state, self.start + .milliseconds(249))
        #expect(state.reconcile(topology: Self.topology, now: self.start + .milliseconds(250)) == [.connect(Self.a)])
        quiet(&state, self.start + .milliseconds(250))
    }

    /// The shell keeps the latest `summary` while `generation` stays the same: whatever input changes the summary
    /// changes the generation (checked after every step of a run through subscriptions, confirmations, a loss and
    /// a failover).
    @Test func theSummaryChangesOnlyWithTheGeneration() {
        var state = RedisShardedSubscriptions()
        let onA = Self.channel(on: Self.a)
        let onB = Self.channel(on: Self.b)
        let failedOver = RedisClusterTopology(shards: [
            .init(slots: [0...5460], primary: .init(address: Self.c)),
            .init(slots: [5461...16383], primary: .init(address: Self.b)),
        ])
        let pong = RESPValue.array([.bulkString(ByteBuffer(string: "pong")), .bulkString(ByteBuffer())])
        var topology: RedisClusterTopology? = nil
        var last = (generation: state.generation, topology: topology, summary: state.summary(topology: topology))
        let steps: [(inout RedisShardedSubscriptions) -> Void] = [
            { $0.subscribe([onA, onB]) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start) },
            { $0.connectionReady(Self.a) },
            { $0.connectionReady(Self.b) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start) },
            { _ = $0.received(Self.push("ssubscribe", onA), on: Self.a) },
            { _ = $0.received(Self.push("smessage", onA, .bulkString(ByteBuffer(string: "x"))), on: Self.a) },
            { _ = $0.received(pong, on: Self.a) },
            { _ = $0.received(Self.push("ssubscribe", onB), on: Self.b) },
            { $0.connectionLost(Self.a, now: self.start) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start + .milliseconds(300)) },
            { $0.connectionReady(Self.a) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start + .milliseconds(300)) },
            { _ = $0.received(Self.push("ssubscribe", onA), on: Self.a) },
            { $0.unsubscribe([onB]) },
            { _ = $0.reconcile(topology: Self.topology, now: self.start + .milliseconds(300)) },
            { _ = $0.received(Self.push("sunsubscribe", onB, .integer(0)), on: Self.b) },
            { _ = $0.reconcile(topology: failedOver, now: self.start + .milliseconds(300)) },
            { $0.connectionReady(Self.c) },
            { _ = $0.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) },
            { _ = $0.reconcile(topology: failedOver, now: self.start + .milliseconds(300)) },
            { _ = $0.received(Self.push("ssubscribe", onA), on: Self.c) },
        ]
        for (index, step) in steps.enumerated() {
            step(&state)
            if index >= 1 { topology = index >= 18 ? failedOver : Self.topology }
            let summary = state.summary(topology: topology)
            if state.generation == last.generation, topology == last.topology {
                #expect(summary == last.summary, "step \(index) changed the summary but not the generation")
            }
            last = (state.generation, topology, summary)
        }
        #expect(last.summary == .init(connectionsUp: 1, channelsSubscribed: 1))
    }

    /// PING answers (`["pong", ""]` in subscribed mode, `+PONG` before) are not commands of ours.
    @Test func pongIsHandled() {
        var state = RedisShardedSubscriptions()
        state.subscribe([Self.channel(on: Self.a)])
        _ = state.reconcile(topology: Self.topology, now: self.start)
        state.connectionReady(Self.a)
        #expect(
            state.received(.array([.bulkString(ByteBuffer(string: "pong")), .bulkString(ByteBuffer())]), on: Self.a)
                == .handled
        )
        // Before the first SSUBSCRIBE the answer is a plain +PONG.
        #expect(state.received(.simpleString("PONG"), on: Self.a) == .handled)
    }

    // MARK: - Activity reports (for the subscriber's join gate)

    /// A subscribed state on `topology`: `channels` wanted and confirmed on their owners, nothing reported yet.
    func confirmed(_ channels: [String], on topology: RedisClusterTopology = topology) -> RedisShardedSubscriptions {
        var state = RedisShardedSubscriptions()
        state.subscribe(channels)
        _ = state.reconcile(topology: topology, now: self.start)
        for address in state.connectedNodes { state.connectionReady(address) }
        for action in state.reconcile(topology: topology, now: self.start) {
            if case .subscribe(let channel, let address) = action {
                _ = state.received(Self.push("ssubscribe", channel), on: address)
            }
        }
        for channel in channels { #expect(state.isActive(channel, topology: topology)) }
        return state
    }

    /// A lost connection stops the channels it held (reported once); they are reported back once subscribed on
    /// their owner again. Channels on other nodes are not reported.
    @Test func aLostConnectionStopsItsChannelsUntilTheyAreBack() {
        let onA = Self.channel(on: Self.a)
        let onA2 = Self.channel(on: Self.a, 1)
        let onB = Self.channel(on: Self.b)
        var state = self.confirmed([onA, onA2, onB])
        // The first look at a topology checks every channel: all active, nothing to report.
        #expect(state.activityChanges(topology: Self.topology).isEmpty)
        #expect(state.activityChanges(topology: Self.topology).isEmpty)
        state.connectionLost(Self.a, now: self.start)
        #expect(state.activityChanges(topology: Self.topology) == .init(stopped: [onA, onA2].sorted()))
        #expect(state.activityChanges(topology: Self.topology).isEmpty, "reported once")
        _ = state.reconcile(topology: Self.topology, now: self.start + .seconds(1))
        state.connectionReady(Self.a)
        let resubscribe = state.reconcile(topology: Self.topology, now: self.start + .seconds(1))
        #expect(resubscribe == [onA, onA2].sorted().map { .subscribe($0, on: Self.a) })
        _ = state.received(Self.push("ssubscribe", onA), on: Self.a)
        #expect(state.activityChanges(topology: Self.topology) == .init(resumed: [onA]))
        _ = state.received(Self.push("ssubscribe", onA2), on: Self.a)
        #expect(state.activityChanges(topology: Self.topology) == .init(resumed: [onA2]))
        #expect(state.activityChanges(topology: Self.topology).isEmpty)
    }

    /// A failover seen in a new topology stops the channels of the old primary until they are confirmed on the new
    /// one; an unrequested `sunsubscribe` stops its channel too. A channel no longer wanted is forgotten silently.
    @Test func aNewOwnerOrAnUnrequestedSunsubscribeStopsTheChannel() {
        let onA = Self.channel(on: Self.a)
        let onB = Self.channel(on: Self.b)
        let onC = Self.channel(on: Self.c)
        var state = self.confirmed([onA, onB, onC])
        #expect(state.activityChanges(topology: Self.topology).isEmpty)
        let failedOver = RedisClusterTopology(shards: [
            .init(slots: [0...5460], primary: .init(address: Self.c)),
            .init(slots: [5461...10922], primary: .init(address: Self.b)),
            .init(slots: [10923...16383], primary: .init(address: Self.c)),
        ])
        #expect(state.activityChanges(topology: failedOver) == .init(stopped: [onA]))
        let moving = state.reconcile(topology: failedOver, now: self.start)
        #expect(moving.contains(.subscribe(onA, on: Self.c)) && moving.contains(.unsubscribe(onA, on: Self.a)))
        #expect(state.received(Self.push("sunsubscribe", onA, .integer(0)), on: Self.a) == .handled)
        #expect(state.activityChanges(topology: failedOver).isEmpty, "not confirmed on c yet")
        _ = state.received(Self.push("ssubscribe", onA), on: Self.c)
        #expect(state.activityChanges(topology: failedOver) == .init(resumed: [onA]))

        #expect(state.received(Self.push("sunsubscribe", onB, .integer(0)), on: Self.b) == .refreshTopology)
        #expect(state.activityChanges(topology: failedOver) == .init(stopped: [onB]))
        state.unsubscribe([onB])
        #expect(state.activityChanges(topology: failedOver).isEmpty, "unwanted: nothing to report back")
    }
}
