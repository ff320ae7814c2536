import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

/// Cluster requests at synthetic times: every way a request ends (all answered, before or after Redis' receiver
/// count; deadline with partial answers; not published; cancelled; shutdown), what is ignored (late, duplicate,
/// own), the pending bound, and the naming of servers that did not answer.
@Suite struct ClusterRequestStateMachineTests {
    typealias Machine = ClusterRequestStateMachine
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func machine(_ adjust: (inout Machine.Limits) -> Void = { _ in }) -> Machine {
        var limits = Machine.Limits()
        adjust(&limits)
        return Machine(hostID: "me", limits: limits)
    }

    private func start(_ machine: inout Machine, timeout: TimeAmount = .seconds(5), at now: NIODeadline) -> UInt64 {
        guard case .publish(let id, let deadline) = machine.start(timeout: timeout, now: now) else {
            Issue.record("refused")
            return 0
        }
        #expect(deadline == now + timeout)
        return id
    }

    private func outcome(_ action: Machine.Action) -> Machine.Outcome? {
        if case .finish(let outcome) = action { return outcome }
        return nil
    }

    @Test func endsWhenEveryReceiverAnswered() throws {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        // Three subscribers got it: this server and two others.
        #expect(machine.published(id, receivers: 3, now: self.t0) == .wait)
        #expect(machine.received(id, from: "a", reply: .value(1), now: self.t0 + .milliseconds(1)) == .wait)
        let done = try #require(
            self.outcome(machine.received(id, from: "b", reply: .error("no"), now: self.t0 + .milliseconds(2)))
        )
        #expect(done.end == .allAnswered)
        #expect(done.replies == ["a": .value(1), "b": .error("no")])
        #expect(done.expected == 2)
        #expect(done.unansweredCount == 0)
        #expect(done.unanswered.isEmpty)
        #expect(machine.pendingCount == 0)
        // Its deadline, scheduled earlier, then does nothing; a late answer is ignored.
        #expect(machine.deadlinePassed(id, now: self.t0 + .seconds(5)) == .wait)
        #expect(machine.received(id, from: "c", reply: .value(2), now: self.t0 + .seconds(6)) == .ignoreUnknown)
    }

    @Test func answersBeforeTheReceiverCountAreKept() throws {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        #expect(machine.received(id, from: "a", reply: .value(1), now: self.t0) == .wait)
        let done = try #require(self.outcome(machine.published(id, receivers: 2, now: self.t0)))
        #expect(done.end == .allAnswered)
        #expect(done.replies == ["a": .value(1)])
    }

    @Test func aloneInTheClusterEndsAtOnce() throws {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        let done = try #require(self.outcome(machine.published(id, receivers: 1, now: self.t0)))
        #expect(done.end == .allAnswered)
        #expect(done.expected == 0)
        #expect(done.replies.isEmpty)
    }

    @Test func deadlineGivesPartialAnswersAndNamesTheKnownMissing() throws {
        var machine = self.machine()
        // An earlier request: a, b and c answered, so they are known.
        let first = self.start(&machine, at: self.t0)
        _ = machine.published(first, receivers: 4, now: self.t0)
        for host in ["a", "b", "c"] {
            _ = machine.received(first, from: host, reply: .value(nil), now: self.t0)
        }
        let id = self.start(&machine, timeout: .seconds(2), at: self.t0 + .seconds(1))
        _ = machine.published(id, receivers: 4, now: self.t0 + .seconds(1))
        _ = machine.received(id, from: "a", reply: .value("x"), now: self.t0 + .seconds(1))
        // Too early: nothing.
        #expect(machine.deadlinePassed(id, now: self.t0 + .seconds(2)) == .wait)
        let done = try #require(self.outcome(machine.deadlinePassed(id, now: self.t0 + .seconds(3))))
        #expect(done.end == .timedOut)
        #expect(done.replies == ["a": .value("x")])
        #expect(done.expected == 3)
        #expect(done.unansweredCount == 2)
        #expect(done.unanswered == ["b", "c"])
    }

    @Test func withoutAReceiverCountItWaitsForTheDeadline() throws {
        var machine = self.machine()
        machine.heard(from: "b", now: self.t0)
        let id = self.start(&machine, at: self.t0)
        #expect(machine.published(id, receivers: nil, now: self.t0) == .wait)
        #expect(machine.received(id, from: "a", reply: .value(1), now: self.t0) == .wait)
        let done = try #require(self.outcome(machine.deadlinePassed(id, now: self.t0 + .seconds(5))))
        #expect(done.end == .timedOut)
        #expect(done.expected == nil)
        #expect(done.replies.keys.sorted() == ["a"])
        #expect(done.unanswered == ["b"])
        #expect(done.unansweredCount == 1)
    }

    @Test func duplicateAndOwnAnswersAreIgnored() {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        _ = machine.published(id, receivers: 3, now: self.t0)
        #expect(machine.received(id, from: "a", reply: .value(1), now: self.t0) == .wait)
        #expect(machine.received(id, from: "a", reply: .value(2), now: self.t0) == .ignoreDuplicate)
        #expect(machine.received(id, from: "me", reply: .value(3), now: self.t0) == .ignoreDuplicate)
        #expect(machine.received(999, from: "b", reply: .value(4), now: self.t0) == .ignoreUnknown)
        #expect(machine.pendingCount == 1)
        #expect(machine.knownServers(now: self.t0) == ["a", "b"])
    }

    @Test func notPublishedEndsWithTheReason() throws {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        let done = try #require(self.outcome(machine.notPublished(id, reason: "down", now: self.t0)))
        #expect(done.end == .notPublished("down"))
        #expect(done.replies.isEmpty)
        #expect(machine.notPublished(id, reason: "again", now: self.t0) == .wait)
    }

    @Test func cancelledEndsWithWhatArrived() throws {
        var machine = self.machine()
        let id = self.start(&machine, at: self.t0)
        _ = machine.published(id, receivers: 3, now: self.t0)
        _ = machine.received(id, from: "a", reply: .value(1), now: self.t0)
        let done = try #require(self.outcome(machine.cancelled(id, now: self.t0)))
        #expect(done.end == .cancelled)
        #expect(done.unansweredCount == 1)
        #expect(machine.cancelled(id, now: self.t0) == .wait)
    }

    @Test func pendingRequestsAreBounded() {
        var machine = self.machine { $0.maxPending = 2 }
        let first = self.start(&machine, at: self.t0)
        _ = self.start(&machine, at: self.t0)
        #expect(machine.start(timeout: .seconds(1), now: self.t0) == .refuse(pending: 2))
        _ = machine.cancelled(first, now: self.t0)
        #expect(machine.pendingCount == 1)
        guard case .publish(let id, _) = machine.start(timeout: .seconds(1), now: self.t0) else {
            Issue.record("refused after one ended")
            return
        }
        #expect(id == 3)
    }

    @Test func shutdownEndsEveryRequest() {
        var machine = self.machine()
        let a = self.start(&machine, at: self.t0)
        let b = self.start(&machine, at: self.t0)
        let outcomes = machine.cancelAll(now: self.t0)
        #expect(outcomes.map(\.id) == [a, b])
        #expect(outcomes.allSatisfy { $0.end == .cancelled })
        #expect(machine.pendingCount == 0)
    }

    @Test func knownServersExpireAndAreBounded() {
        var machine = self.machine {
            $0.maxKnownServers = 2
            $0.knownServerLifetime = .seconds(10)
        }
        machine.heard(from: "a", now: self.t0)
        machine.heard(from: "b", now: self.t0 + .seconds(1))
        machine.heard(from: "me", now: self.t0)
        #expect(machine.knownServers(now: self.t0 + .seconds(1)) == ["a", "b"])
        // A third: the one heard from longest ago goes.
        machine.heard(from: "c", now: self.t0 + .seconds(2))
        #expect(machine.knownServers(now: self.t0 + .seconds(2)) == ["b", "c"])
        // Past their lifetime, servers are no longer named.
        #expect(machine.knownServers(now: self.t0 + .seconds(12)) == ["c"])
        #expect(machine.knownServers(now: self.t0 + .seconds(13)).isEmpty)
    }
}
