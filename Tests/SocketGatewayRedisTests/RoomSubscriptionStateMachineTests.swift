import NIOCore
import Testing

@testable import SocketGatewayRedis

/// Drives the pure room-subscription machine at synthetic times, against a model of one Redis connection.
@Suite struct RoomSubscriptionStateMachineTests {
    typealias Machine = RoomSubscriptionStateMachine
    typealias Output = Machine.Output
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let delay = TimeAmount.seconds(30)

    func at(_ seconds: Int64) -> NIODeadline { self.start + .seconds(seconds) }

    func connectedMachine() -> Machine {
        var machine = Machine(unsubscribeDelay: self.delay)
        #expect(machine.connectionRestored() == .none)
        return machine
    }

    @Test func aFirstMemberSubscribesAndItsJoinCompletesOnTheConfirmation() {
        var machine = self.connectedMachine()
        #expect(machine.roomGained("c#/#user:1#") == Output(subscribe: ["c#/#user:1#"]))
        #expect(!machine.isActive("c#/#user:1#"))
        // Asking again while the SUBSCRIBE is in flight sends nothing more.
        #expect(machine.roomGained("c#/#user:1#") == .none)
        #expect(machine.subscribeConfirmed("c#/#user:1#", now: self.at(0)) == Output(ready: ["c#/#user:1#"]))
        #expect(machine.isActive("c#/#user:1#"))
        #expect(machine.subscribedCount == 1)
        // An active channel: a later join completes at once.
        #expect(machine.roomGained("c#/#user:1#") == Output(ready: ["c#/#user:1#"]))
    }

    @Test func theLastMemberLeavingUnsubscribesOnlyAfterTheDelay() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        _ = machine.subscribeConfirmed("r", now: self.at(0))
        #expect(machine.roomLost("r", now: self.at(10)) == .none)
        #expect(machine.nextUnsubscribe == self.at(40))
        #expect(machine.tick(now: self.at(39)) == .none)
        #expect(machine.isActive("r"), "a lingering channel still delivers")
        #expect(machine.tick(now: self.at(40)) == Output(unsubscribe: ["r"]))
        #expect(!machine.isActive("r"))
        #expect(machine.tick(now: self.at(41)) == .none, "the UNSUBSCRIBE is sent once")
        #expect(machine.unsubscribeConfirmed("r") == .none)
        #expect(machine.subscribedCount == 0 && machine.wantedCount == 0)
    }

    @Test func aMemberReturningWithinTheDelayCostsNoCommand() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        _ = machine.subscribeConfirmed("r", now: self.at(0))
        _ = machine.roomLost("r", now: self.at(1))
        #expect(machine.roomGained("r") == Output(ready: ["r"]))
        #expect(machine.nextUnsubscribe == nil)
        #expect(machine.tick(now: self.at(100)) == .none)
    }

    @Test func aMemberReturningWhileTheUnsubscribeIsInFlightSubscribesAgainAndWaitsForItsOwnConfirmation() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        _ = machine.subscribeConfirmed("r", now: self.at(0))
        _ = machine.roomLost("r", now: self.at(0))
        #expect(machine.tick(now: self.at(30)) == Output(unsubscribe: ["r"]))
        #expect(machine.roomGained("r") == Output(subscribe: ["r"]))
        // Redis answers in order: first the UNSUBSCRIBE, then the SUBSCRIBE.
        #expect(machine.unsubscribeConfirmed("r") == .none)
        #expect(!machine.isActive("r"), "between the two confirmations the channel is not subscribed")
        #expect(machine.subscribeConfirmed("r", now: self.at(31)) == Output(ready: ["r"]))
        #expect(machine.isActive("r"))
    }

    @Test func aRoomEmptiedBeforeItsSubscribeIsConfirmedLingersFromTheConfirmation() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        #expect(machine.roomLost("r", now: self.at(0)) == .none)
        #expect(machine.subscribeConfirmed("r", now: self.at(5)) == .none, "no join waits any more")
        #expect(machine.nextUnsubscribe == self.at(35))
        #expect(machine.tick(now: self.at(35)) == Output(unsubscribe: ["r"]))
    }

    @Test func withoutAConnectionRoomsWaitAndAreSubscribedInOneBatchWhenItComes() {
        var machine = Machine(unsubscribeDelay: self.delay)
        #expect(machine.roomGained("b") == .none)
        #expect(machine.roomGained("a") == .none)
        #expect(machine.roomGained("c") == .none)
        #expect(machine.roomLost("c", now: self.at(0)) == .none, "never subscribed: forgotten")
        #expect(machine.connectionRestored() == Output(subscribe: ["a", "b"]))
        #expect(machine.subscribeConfirmed("a", now: self.at(1)) == Output(ready: ["a"]))
        #expect(machine.subscribeConfirmed("b", now: self.at(1)) == Output(ready: ["b"]))
    }

    @Test func aLostConnectionResubscribesWantedRoomsAndForgetsLingeringOnes() {
        var machine = self.connectedMachine()
        for room in ["a", "b", "c"] {
            _ = machine.roomGained(room)
            _ = machine.subscribeConfirmed(room, now: self.at(0))
        }
        _ = machine.roomLost("c", now: self.at(1))
        #expect(machine.connectionLost() == .none)
        #expect(!machine.isActive("a") && machine.subscribedCount == 0)
        #expect(machine.roomGained("d") == .none, "no connection: waits")
        #expect(machine.connectionRestored() == Output(subscribe: ["a", "b", "d"]))
        #expect(machine.tick(now: self.at(1000)) == .none, "the lingering room went with the connection")
        // A stale confirmation from the old connection changes nothing.
        #expect(machine.unsubscribeConfirmed("c") == .none)
    }

    @Test func unexpectedConfirmationsAreIgnored() {
        var machine = self.connectedMachine()
        #expect(machine.subscribeConfirmed("x", now: self.at(0)) == .none)
        #expect(machine.unsubscribeConfirmed("x") == .none)
        #expect(machine.roomLost("x", now: self.at(0)) == .none)
        _ = machine.roomGained("x")
        #expect(machine.unsubscribeConfirmed("x") == .none)
        #expect(machine.subscribeConfirmed("x", now: self.at(0)) == Output(ready: ["x"]))
        #expect(machine.subscribeConfirmed("x", now: self.at(0)) == .none)
    }

    // MARK: - Every sequence of inputs against a model of Redis

    /// One Redis connection as the machine sees it: commands are processed in order, and their confirmations come
    /// back in order.
    struct RedisModel {
        var connected = false
        var subscribed: Set<String> = []
        /// Sent, not yet processed by Redis.
        var commands: [(subscribe: Bool, channel: String)] = []
        /// Processed, confirmation not yet delivered.
        var confirmations: [(subscribe: Bool, channel: String)] = []
    }

    enum Step: CaseIterable {
        case gained, lost, tick, advance, process, confirm, drop, restore
    }

    /// Applies one step; checks the machine's safety promises on the way.
    func apply(
        _ step: Step,
        _ machine: inout Machine,
        _ redis: inout RedisModel,
        wanted: inout Bool,
        lostAt: inout NIODeadline?,
        now: inout NIODeadline
    ) {
        let channel = "r"
        var output = Output.none
        switch step {
        case .gained:
            wanted = true
            lostAt = nil
            output = machine.roomGained(channel)
        case .lost:
            if wanted { lostAt = now }
            wanted = false
            output = machine.roomLost(channel, now: now)
        case .tick:
            output = machine.tick(now: now)
        case .advance:
            now = now + self.delay
            output = machine.tick(now: now)
        case .process:
            guard redis.connected, !redis.commands.isEmpty else { return }
            let command = redis.commands.removeFirst()
            if command.subscribe {
                redis.subscribed.insert(command.channel)
            } else {
                redis.subscribed.remove(command.channel)
            }
            redis.confirmations.append(command)
        case .confirm:
            guard redis.connected, !redis.confirmations.isEmpty else { return }
            let confirmation = redis.confirmations.removeFirst()
            output =
                confirmation.subscribe
                ? machine.subscribeConfirmed(confirmation.channel, now: now)
                : machine.unsubscribeConfirmed(confirmation.channel)
        case .drop:
            guard redis.connected else { return }
            redis = RedisModel()
            output = machine.connectionLost()
        case .restore:
            guard !redis.connected else { return }
            redis.connected = true
            output = machine.connectionRestored()
        }
        for channel in output.subscribe {
            #expect(redis.connected, "SUBSCRIBE without a connection")
            redis.commands.append((true, channel))
        }
        for channel in output.unsubscribe {
            #expect(!wanted, "UNSUBSCRIBE of a room with local members")
            if let lostAt { #expect(now - lostAt >= self.delay, "UNSUBSCRIBE before the delay") }
            redis.commands.append((false, channel))
        }
        for channel in output.ready {
            #expect(wanted && machine.isActive(channel), "a join completed for a channel that is not active")
        }
        if machine.isActive(channel) {
            // Active: Redis has processed the SUBSCRIBE, and no UNSUBSCRIBE is on its way.
            #expect(redis.connected && redis.subscribed.contains(channel))
            #expect(!redis.commands.contains { !$0.subscribe && $0.channel == channel })
        }
    }

    /// Every sequence of 6 inputs (8⁶ = 262,144), then quiescence: Redis ends subscribed exactly when the room has
    /// members, the channel is active exactly then, and no step broke a promise checked in `apply`.
    @Test func everySequenceOfSixInputsSettlesOnTheWantedSubscription() {
        let steps = Step.allCases
        var failures = 0
        var sequences = 1
        for _ in 0..<6 { sequences *= steps.count }
        for code in 0..<sequences {
            var machine = Machine(unsubscribeDelay: self.delay)
            var redis = RedisModel()
            var wanted = false
            var lostAt: NIODeadline?
            var now = self.start
            var rest = code
            // The connection starts down: sequences that never restore it are restored below.
            for _ in 0..<6 {
                let step = steps[rest % steps.count]
                rest /= steps.count
                self.apply(step, &machine, &redis, wanted: &wanted, lostAt: &lostAt, now: &now)
            }
            // Quiesce: connect, let Redis answer everything, let the delay pass, answer again.
            if !redis.connected {
                self.apply(.restore, &machine, &redis, wanted: &wanted, lostAt: &lostAt, now: &now)
            }
            for _ in 0..<2 {
                while !redis.commands.isEmpty || !redis.confirmations.isEmpty {
                    self.apply(.process, &machine, &redis, wanted: &wanted, lostAt: &lostAt, now: &now)
                    self.apply(.confirm, &machine, &redis, wanted: &wanted, lostAt: &lostAt, now: &now)
                }
                self.apply(.advance, &machine, &redis, wanted: &wanted, lostAt: &lostAt, now: &now)
            }
            if redis.subscribed.contains("r") != wanted || machine.isActive("r") != wanted {
                failures += 1
                if failures < 5 { Issue.record("sequence \(code) settled wrong: wanted \(wanted), redis \(redis)") }
            }
        }
        #expect(failures == 0)
    }

    // MARK: - A transport that resubscribes by itself (Redis Cluster failovers)

    /// A confirmed channel the transport reports stopped (its primary failing over) is not active: a join to its
    /// room gets no `ready` and waits until the transport reports it back, which completes it.
    @Test func aJoinWaitsWhileTheTransportResubscribesTheChannel() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        #expect(machine.subscribeConfirmed("r", now: self.at(0)) == Output(ready: ["r"]))
        #expect(machine.transportInterrupted("r") == .none)
        #expect(!machine.isActive("r"))
        #expect(machine.subscribedCount == 1, "still held: the transport subscribes it again by itself")
        #expect(machine.roomGained("r") == .none, "no SUBSCRIBE of our own, no ready")
        #expect(machine.transportInterrupted("r") == .none, "a second report changes nothing")
        #expect(!machine.isActive("r"))
        #expect(machine.transportRestored("r") == Output(ready: ["r"]))
        #expect(machine.isActive("r"))
        #expect(machine.transportRestored("r") == .none, "reported back once")
        #expect(machine.roomGained("r") == Output(ready: ["r"]))
    }

    /// The interruption keeps the hysteresis: a lingering channel stopped by the transport is still unsubscribed
    /// at its time; a member coming back meanwhile cancels the delay and waits for the transport.
    @Test func anInterruptedChannelKeepsItsHysteresis() {
        var machine = self.connectedMachine()
        _ = machine.roomGained("r")
        _ = machine.subscribeConfirmed("r", now: self.at(0))
        _ = machine.roomLost("r", now: self.at(10))
        _ = machine.transportInterrupted("r")
        #expect(machine.nextUnsubscribe == self.at(40))
        #expect(machine.roomGained("r") == .none)
        #expect(machine.nextUnsubscribe == nil)
        #expect(machine.tick(now: self.at(100)) == .none)
        _ = machine.roomLost("r", now: self.at(100))
        #expect(machine.tick(now: self.at(130)) == Output(unsubscribe: ["r"]))
        // Being dropped: the transport's report that it is back changes nothing.
        #expect(machine.transportRestored("r") == .none)
        #expect(!machine.isActive("r"))
        #expect(machine.unsubscribeConfirmed("r") == .none)
        #expect(machine.subscribedCount == 0 && machine.wantedCount == 0)
        // Wanted again later: subscribed afresh, active on its own confirmation (no interruption left over).
        #expect(machine.roomGained("r") == Output(subscribe: ["r"]))
        #expect(machine.subscribeConfirmed("r", now: self.at(200)) == Output(ready: ["r"]))
        #expect(machine.isActive("r"))
    }

    /// Reports about a channel that is not confirmed here (unknown, waiting for a connection, subscribing,
    /// unsubscribing) are ignored: its own confirmation decides.
    @Test func reportsAboutUnconfirmedChannelsAreIgnored() {
        var waiting = Machine(unsubscribeDelay: self.delay)
        _ = waiting.roomGained("w")
        #expect(waiting.transportInterrupted("w") == .none)
        #expect(waiting.transportRestored("w") == .none)
        #expect(waiting.connectionRestored() == Output(subscribe: ["w"]))

        var machine = self.connectedMachine()
        #expect(machine.transportInterrupted("unknown") == .none)
        #expect(machine.transportRestored("unknown") == .none)
        _ = machine.roomGained("s")
        #expect(machine.transportInterrupted("s") == .none)
        #expect(machine.transportRestored("s") == .none)
        #expect(machine.subscribeConfirmed("s", now: self.at(0)) == Output(ready: ["s"]))
        #expect(machine.isActive("s"), "a report before the confirmation does not interrupt it")
        #expect(machine.transportRestored("s") == .none, "not interrupted: nothing to report back")

        _ = machine.roomLost("s", now: self.at(1))
        _ = machine.tick(now: self.at(31))
        #expect(machine.transportInterrupted("s") == .none)
        // A member back while the UNSUBSCRIBE is in flight: subscribed again, active on its own confirmation.
        #expect(machine.roomGained("s") == Output(subscribe: ["s"]))
        #expect(machine.unsubscribeConfirmed("s") == .none)
        #expect(machine.subscribeConfirmed("s", now: self.at(32)) == Output(ready: ["s"]))
        #expect(machine.isActive("s"))
    }
}
