import NIOCore
import Testing

@testable import SocketGatewayRedis

/// Drives the pure read-coalescing machine at synthetic times: every state under every input, then whole read
/// cycles of a connection at a low and a high message rate.
@Suite struct RedisReadCoalescingStateMachineTests {
    typealias Machine = RedisReadCoalescingStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let delay = TimeAmount.milliseconds(1)

    func at(microseconds: Int64) -> NIODeadline { self.start + .microseconds(microseconds) }

    /// The states, each reached through the inputs a handler gives it, and what each input does there.
    enum Reached: CaseIterable {
        case fresh  // just added: between reads, not busy
        case reading  // a read is out since 0 µs
        case betweenReadsIdle  // the read waited 5 ms for its data
        case betweenReadsBusy  // the read found data after 100 µs
        case holding  // asked after a busy read at 100 µs: held until 1,100 µs
    }

    func machine(_ reached: Reached) -> Machine {
        var machine = Machine(delay: self.delay)
        switch reached {
        case .fresh:
            break
        case .reading:
            #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
        case .betweenReadsIdle:
            #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
            #expect(machine.readCompleted(now: self.at(microseconds: 5000)) == .nothing)
        case .betweenReadsBusy:
            #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
            #expect(machine.readCompleted(now: self.at(microseconds: 100)) == .nothing)
        case .holding:
            #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
            #expect(machine.readCompleted(now: self.at(microseconds: 100)) == .nothing)
            #expect(machine.readRequested(now: self.at(microseconds: 100)) == .readAt(self.at(microseconds: 1100)))
        }
        return machine
    }

    @Test(arguments: Reached.allCases)
    func aReadRequest(in reached: Reached) {
        var machine = self.machine(reached)
        let now = self.at(microseconds: 200)
        switch reached {
        case .fresh, .betweenReadsIdle, .reading:
            // Nothing busy is known: the read goes out at once (again, for a read already out).
            #expect(machine.readRequested(now: now) == .read)
            #expect(!machine.isHolding)
        case .betweenReadsBusy:
            #expect(machine.readRequested(now: now) == .readAt(now + self.delay))
            #expect(machine.isHolding)
        case .holding:
            // The held read covers it: no second timer.
            #expect(machine.readRequested(now: now) == .nothing)
            #expect(machine.isHolding)
        }
    }

    @Test(arguments: Reached.allCases)
    func aReadCompletingSoonAfterItsRequest(in reached: Reached) {
        var machine = self.machine(reached)
        #expect(machine.readCompleted(now: self.at(microseconds: 300)) == .nothing)
        let next = self.at(microseconds: 300)
        switch reached {
        case .reading, .betweenReadsBusy:
            // Found its data 300 µs after it was armed (reading), or nothing changes (already busy): hold the next.
            #expect(machine.readRequested(now: next) == .readAt(next + self.delay))
        case .fresh, .betweenReadsIdle:
            // A completion between reads (a read the channel armed itself) changes nothing.
            #expect(machine.readRequested(now: next) == .read)
        case .holding:
            // The held read stays held, its deadline unchanged.
            #expect(machine.isHolding)
            #expect(machine.readRequested(now: next) == .nothing)
            #expect(machine.deadlineReached(now: self.at(microseconds: 1100), autoRead: true) == .read)
        }
    }

    @Test(arguments: Reached.allCases)
    func aReadCompletingAfterALongWait(in reached: Reached) {
        var machine = self.machine(reached)
        let late = self.at(microseconds: 50_000)
        #expect(machine.readCompleted(now: late) == .nothing)
        switch reached {
        case .reading, .fresh, .betweenReadsIdle:
            // The read waited 50 ms for its data: the connection is idle, the next read goes out at once.
            #expect(machine.readRequested(now: late) == .read)
        case .betweenReadsBusy:
            #expect(machine.readRequested(now: late) == .readAt(late + self.delay))
        case .holding:
            #expect(machine.readRequested(now: late) == .nothing)
        }
    }

    @Test(arguments: Reached.allCases, [true, false])
    func theDeadline(in reached: Reached, autoRead: Bool) {
        var machine = self.machine(reached)
        let deadline = self.at(microseconds: 1100)
        let action = machine.deadlineReached(now: deadline, autoRead: autoRead)
        guard reached == .holding else {
            // A stale timer (nothing held) does nothing, whatever autoRead says.
            #expect(action == .nothing)
            return
        }
        #expect(!machine.isHolding)
        if autoRead {
            #expect(action == .read)
            // The released read is out since the deadline: data already waiting makes the connection busy.
            #expect(machine.readCompleted(now: deadline + .microseconds(20)) == .nothing)
            #expect(machine.readRequested(now: deadline + .microseconds(20)) == .readAt(self.at(microseconds: 2120)))
        } else {
            // Paused meanwhile: the held read is dropped; the resume's read request goes out at once.
            #expect(action == .nothing)
            #expect(machine.readRequested(now: self.at(microseconds: 9000)) == .read)
        }
    }

    @Test func aTimerFiringEarlyKeepsTheReadHeldUntilItsDeadline() {
        var machine = self.machine(.holding)
        #expect(
            machine.deadlineReached(now: self.at(microseconds: 1099), autoRead: true)
                == .readAt(self.at(microseconds: 1100))
        )
        #expect(machine.isHolding)
        #expect(machine.deadlineReached(now: self.at(microseconds: 1100), autoRead: true) == .read)
    }

    @Test func aReadFindingItsDataExactlyAtTheDelayCountsAsIdle() {
        var machine = Machine(delay: self.delay)
        #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
        #expect(machine.readCompleted(now: self.at(microseconds: 1000)) == .nothing)
        #expect(machine.readRequested(now: self.at(microseconds: 1000)) == .read)
    }

    /// A connection's read cycle against messages arriving at fixed times: returns when each message was read and
    /// how many reads (wake-ups) it took. A read is out from its request until the first message at or after it.
    func simulate(arrivals: [Int64]) -> (readAt: [Int64], reads: Int) {
        var machine = Machine(delay: self.delay)
        var readAt: [Int64] = []
        var reads = 0
        var index = 0
        var armedAt: Int64 = 0
        #expect(machine.readRequested(now: self.at(microseconds: 0)) == .read)
        while index < arrivals.count {
            // The read completes when the first message not read yet is there (at once if it already is).
            let completion = max(armedAt, arrivals[index])
            while index < arrivals.count, arrivals[index] <= completion {
                readAt.append(completion)
                index += 1
            }
            reads += 1
            #expect(machine.readCompleted(now: self.at(microseconds: completion)) == .nothing)
            switch machine.readRequested(now: self.at(microseconds: completion)) {
            case .read:
                armedAt = completion
            case .readAt(let deadline):
                #expect(deadline == self.at(microseconds: completion + 1000))
                #expect(machine.deadlineReached(now: deadline, autoRead: true) == .read)
                armedAt = completion + 1000
            case .nothing:
                Issue.record("a read request between reads must decide")
                return (readAt, reads)
            }
        }
        return (readAt, reads)
    }

    @Test func messagesFartherApartThanTheDelayAreReadAtOnceEachWithNoTimer() {
        // 200 messages/s: 5 ms apart.
        let arrivals = (1...50).map { Int64($0) * 5000 }
        let (readAt, reads) = self.simulate(arrivals: arrivals)
        #expect(readAt == arrivals)
        #expect(reads == 50)
    }

    @Test func messagesCloselySpacedAreReadInBatchesAndWaitAtMostTheDelay() {
        // 20,000 messages/s: 50 µs apart, for 100 ms.
        let arrivals = (1...2000).map { Int64($0) * 50 }
        let (readAt, reads) = self.simulate(arrivals: arrivals)
        #expect(readAt.count == arrivals.count)
        let waits = zip(readAt, arrivals).map { $0 - $1 }
        #expect(waits.allSatisfy { $0 >= 0 && $0 <= 1000 })
        // One read per millisecond (about 20 messages each) instead of one per message.
        #expect(reads <= 101)
        // The first message, after a quiet start, is read at once.
        #expect(waits.first == 0)
    }

    @Test func aQuietSpellAfterABurstReadsTheNextMessageAtOnce() {
        // A burst of 10 messages 100 µs apart, 20 ms of silence, then one message.
        let arrivals = (1...10).map { Int64($0) * 100 } + [21_000]
        let (readAt, _) = self.simulate(arrivals: arrivals)
        #expect(readAt.last == 21_000)
    }
}
