import NIOCore
import Testing

@testable import SocketGatewayServer

/// The recovery state at synthetic times: sessions kept within the window, the log of emitted packets, the
/// replay's filter, and every bound failing cleanly into a fresh session.
@Suite struct ConnectionRecoveryStateMachineTests {
    typealias Machine = ConnectionRecoveryStateMachine<String>
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let window = TimeAmount.seconds(120)

    private func machine(_ adjust: (inout Machine.Limits) -> Void = { _ in }) -> Machine {
        var limits = Machine.Limits(maxDisconnectionDuration: self.window)
        adjust(&limits)
        return Machine(limits: limits, offsetPrefix: "run1-")
    }

    private func session(
        _ pid: String = "p1",
        rooms: [String] = ["s1", "blue"],
        user: String? = "u1"
    ) -> Machine.Session {
        Machine.Session(sid: "s1", pid: pid, namespace: "/", userID: user, rooms: rooms)
    }

    /// Logs `packet` and returns its offset.
    @discardableResult
    private func log(
        _ machine: inout Machine,
        _ packet: String,
        rooms: [String]? = nil,
        excluding: Set<String> = [],
        namespace: String = "/",
        bytes: Int = 10,
        at now: NIODeadline
    ) -> String {
        let (counter, offset) = machine.nextOffset()
        machine.log(
            packet,
            counter: counter,
            bytes: bytes,
            namespace: namespace,
            rooms: rooms,
            excluding: excluding,
            now: now
        )
        return offset
    }

    /// Claims `pid` with `offset` and replays; the packets, or the refusal.
    private func recover(
        _ machine: inout Machine,
        pid: String = "p1",
        offset: String,
        user: String? = "u1",
        at now: NIODeadline
    ) -> Result<[String], RefusalError> {
        switch machine.claim(pid: pid, offset: offset, namespace: "/", userID: user, now: now) {
        case .refused(let refusal):
            return .failure(RefusalError(refusal: refusal))
        case .claimed(let session, let last):
            #expect(session.sid == "s1")
            switch machine.missedPackets(of: session, after: last, now: now) {
            case .refused(let refusal): return .failure(RefusalError(refusal: refusal))
            case .replay(let missed, _): return .success(missed)
            }
        }
    }

    struct RefusalError: Error, Equatable {
        var refusal: Machine.Refusal
    }

    @Test func recoversTheSessionsMissedPacketsInOrder() {
        var machine = self.machine()
        let seen = self.log(&machine, "before", at: self.start)
        #expect(machine.persist(self.session(), now: self.start + .seconds(1)) == .persisted)
        self.log(&machine, "one", rooms: ["blue"], at: self.start + .seconds(2))
        self.log(&machine, "other room", rooms: ["red"], at: self.start + .seconds(3))
        self.log(&machine, "other namespace", namespace: "/admin", at: self.start + .seconds(3))
        self.log(&machine, "two", at: self.start + .seconds(4))
        self.log(&machine, "to its sid", rooms: ["s1"], at: self.start + .seconds(5))
        #expect(
            self.recover(&machine, offset: seen, at: self.start + .seconds(6))
                == .success(["one", "two", "to its sid"])
        )
        // Claimed once: the same pid again gets a fresh session.
        #expect(
            self.recover(&machine, offset: seen, at: self.start + .seconds(7))
                == .failure(.init(refusal: .unknownSession))
        )
        #expect(machine.sessionCount == 0)
    }

    @Test func packetsTheClientReceivedBeforeItsOffsetAreNotReplayed() {
        var machine = self.machine()
        self.log(&machine, "a", at: self.start)
        let last = self.log(&machine, "b", at: self.start)
        self.log(&machine, "c", at: self.start)
        #expect(machine.persist(self.session(), now: self.start) == .persisted)
        #expect(self.recover(&machine, offset: last, at: self.start) == .success(["c"]))
    }

    /// socket.io's rule for every combination of a packet's rooms and exclusions against a session in [s1, blue]:
    /// included when addressed to the namespace or to one of its rooms, and none of its rooms is excluded.
    @Test func theReplayFilterMatchesSocketIOsRuleForEveryCombination() {
        let roomChoices: [[String]?] = [nil, ["blue"], ["red"], ["blue", "red"], ["s1"], []]
        let exclusionChoices: [Set<String>] = [[], ["blue"], ["red"], ["s1", "red"]]
        let sessionRooms: Set<String> = ["s1", "blue"]
        for rooms in roomChoices {
            for excluding in exclusionChoices {
                var machine = self.machine()
                let seen = self.log(&machine, "seen", at: self.start)
                _ = machine.persist(self.session(), now: self.start)
                self.log(&machine, "packet", rooms: rooms, excluding: excluding, at: self.start)
                let included = rooms.map { !$0.filter(sessionRooms.contains).isEmpty } ?? true
                let expected = included && excluding.isDisjoint(with: sessionRooms) ? ["packet"] : []
                #expect(
                    self.recover(&machine, offset: seen, at: self.start) == .success(expected),
                    "rooms \(String(describing: rooms)), excluding \(excluding)"
                )
            }
        }
    }

    /// Every disconnection age around the window's edge, in nanoseconds: within it (the edge included) the session
    /// is recovered; a nanosecond later it is expired, and later still swept (unknown).
    @Test func theWindowIsExactToTheNanosecond() {
        let edge = self.window.nanoseconds
        for age: Int64 in [0, 1, edge / 2, edge - 1, edge, edge + 1, edge * 2] {
            var machine = self.machine()
            let seen = self.log(&machine, "seen", at: self.start)
            _ = machine.persist(self.session(), now: self.start)
            let outcome = self.recover(&machine, offset: seen, at: self.start + .nanoseconds(age))
            if age <= edge {
                #expect(outcome == .success([]), "age \(age)")
            } else {
                #expect(outcome == .failure(.init(refusal: .expired)), "age \(age)")
            }
        }
        // Swept by any later call once expired: then the pid is unknown.
        var machine = self.machine()
        let seen = self.log(&machine, "seen", at: self.start)
        _ = machine.persist(self.session(), now: self.start)
        self.log(&machine, "later", at: self.start + self.window + .nanoseconds(1))
        #expect(machine.sessionCount == 0)
        #expect(
            self.recover(&machine, offset: seen, at: self.start + self.window + .nanoseconds(1))
                == .failure(.init(refusal: .unknownSession))
        )
    }

    @Test func onlyTheSameNamespaceAndUserClaimTheSession() {
        var machine = self.machine()
        let seen = self.log(&machine, "seen", at: self.start)
        _ = machine.persist(self.session(), now: self.start)
        #expect(self.recover(&machine, offset: seen, user: "u2", at: self.start) == .failure(.init(refusal: .mismatch)))
        #expect(self.recover(&machine, offset: seen, user: nil, at: self.start) == .failure(.init(refusal: .mismatch)))
        #expect(
            machine.claim(pid: "p1", offset: seen, namespace: "/admin", userID: "u1", now: self.start)
                .refusal == .mismatch
        )
        // The owner still gets it.
        #expect(self.recover(&machine, offset: seen, at: self.start) == .success([]))
    }

    /// Without authentication (`skipMiddlewares`: no middleware ran) the pid claims the session whatever the
    /// user, with the user and data it was kept with; the namespace must still match, the session is still
    /// claimed once, and a late claim is still refused.
    @Test func aClaimWithoutAuthenticationIgnoresTheUserButNotTheNamespaceOrTheWindow() {
        var machine = self.machine()
        let seen = self.log(&machine, "seen", at: self.start)
        var kept = self.session()
        kept.user = AuthenticatedUser(id: "u1")
        kept.data[Flag.self] = true
        _ = machine.persist(kept, now: self.start)
        #expect(
            machine.claim(
                pid: "p1",
                offset: seen,
                namespace: "/admin",
                userID: nil,
                authenticated: false,
                now: self.start
            )
            .refusal == .mismatch
        )
        guard
            case .claimed(let session, let last) = machine.claim(
                pid: "p1",
                offset: seen,
                namespace: "/",
                userID: nil,
                authenticated: false,
                now: self.start + .seconds(1)
            )
        else {
            Issue.record("not claimed")
            return
        }
        #expect(session.user?.id == "u1" && session.data[Flag.self] == true && machine.counter(of: seen) == last)
        #expect(
            machine.claim(pid: "p1", offset: seen, namespace: "/", userID: nil, authenticated: false, now: self.start)
                .refusal == .unknownSession
        )
        _ = machine.persist(kept, now: self.start)
        #expect(
            machine.claim(
                pid: "p1",
                offset: seen,
                namespace: "/",
                userID: nil,
                authenticated: false,
                now: self.start + self.window + .nanoseconds(1)
            ).refusal == .expired
        )
    }

    enum Flag: SocketDataKey { typealias Value = Bool }

    @Test func anOffsetThisRunDidNotIssueIsRefused() {
        for offset in ["run2-1", "run1-", "run1-zz", "run1-0", "1", "", "run1-!"] {
            var machine = self.machine()
            self.log(&machine, "seen", at: self.start)
            _ = machine.persist(self.session(), now: self.start)
            #expect(
                self.recover(&machine, offset: offset, at: self.start) == .failure(.init(refusal: .unknownOffset)),
                "offset \(offset)"
            )
        }
    }

    /// Packets leave the log by age: a client whose next packet was dropped cannot be brought up to date; one
    /// whose last packet was dropped but nothing after it still can (unlike socket.io, which needs its offset).
    @Test func packetsOlderThanTheWindowLeaveTheLog() {
        var machine = self.machine()
        let first = self.log(&machine, "a", at: self.start)
        let second = self.log(&machine, "b", at: self.start + .seconds(10))
        self.log(&machine, "c", at: self.start + .seconds(100))
        let late = self.start + self.window + .seconds(11)
        _ = machine.persist(self.session(), now: late)
        #expect(machine.loggedPackets == 1)
        #expect(self.recover(&machine, offset: second, at: late) == .success(["c"]))
        _ = machine.persist(self.session(), now: late)
        #expect(self.recover(&machine, offset: first, at: late) == .failure(.init(refusal: .packetsDropped)))
    }

    @Test func theLogKeepsAtMostMaxPacketsAndMaxPacketBytes() {
        var machine = self.machine { $0.maxPackets = 3 }
        var offsets: [String] = []
        for index in 0..<5 { offsets.append(self.log(&machine, "p\(index)", at: self.start)) }
        #expect(machine.loggedPackets == 3)
        _ = machine.persist(self.session(), now: self.start)
        #expect(self.recover(&machine, offset: offsets[0], at: self.start) == .failure(.init(refusal: .packetsDropped)))
        _ = machine.persist(self.session(), now: self.start)
        #expect(self.recover(&machine, offset: offsets[1], at: self.start) == .success(["p2", "p3", "p4"]))

        var bytes = self.machine { $0.maxPacketBytes = 25 }
        for index in 0..<5 { self.log(&bytes, "p\(index)", bytes: 10, at: self.start) }
        #expect(bytes.loggedPackets == 2)
        #expect(bytes.loggedBytes == 20)
    }

    @Test func aReplayBeyondMaxMissedPacketsFailsCleanly() {
        for missed in [2, 3] {
            var machine = self.machine { $0.maxMissedPackets = 2 }
            let seen = self.log(&machine, "seen", at: self.start)
            _ = machine.persist(self.session(), now: self.start)
            for index in 0..<missed { self.log(&machine, "m\(index)", at: self.start) }
            let outcome = self.recover(&machine, offset: seen, at: self.start)
            if missed <= 2 {
                #expect(outcome == .success(["m0", "m1"]))
            } else {
                #expect(outcome == .failure(.init(refusal: .tooManyMissedPackets)))
            }
        }
    }

    @Test func sessionsAreBoundedInNumberAndRooms() {
        var machine = self.machine {
            $0.maxSessions = 2
            $0.maxRoomsPerSession = 3
        }
        let seen = self.log(&machine, "seen", at: self.start)
        #expect(machine.persist(self.session("p1"), now: self.start) == .persisted)
        #expect(machine.persist(self.session("p2"), now: self.start + .seconds(1)) == .persisted)
        #expect(machine.persist(self.session("p3"), now: self.start + .seconds(2)) == .persistedDroppingOldest)
        #expect(machine.sessionCount == 2)
        // The dropped session is released (the server stops holding its rooms present), once.
        #expect(machine.takeReleased().map(\.pid) == ["p1"])
        #expect(machine.takeReleased().isEmpty)
        #expect(
            self.recover(&machine, pid: "p1", offset: seen, at: self.start + .seconds(3))
                == .failure(.init(refusal: .unknownSession))
        )
        #expect(self.recover(&machine, pid: "p2", offset: seen, at: self.start + .seconds(3)) == .success([]))
        #expect(
            machine.persist(self.session("p4", rooms: ["a", "b", "c", "d"]), now: self.start + .seconds(4))
                == .tooManyRooms
        )
        #expect(machine.sessionCount == 1)
    }

    /// A long run of emits and disconnects at advancing synthetic times: what is held never exceeds the bounds
    /// nor outlives the window.
    @Test func memoryStaysBoundedOverALongRun() {
        var machine = self.machine {
            $0.maxPackets = 500
            $0.maxSessions = 50
        }
        for step in 0..<20_000 {
            let now = self.start + .milliseconds(Int64(step) * 100)
            self.log(&machine, "p\(step)", at: now)
            if step % 7 == 0 { _ = machine.persist(self.session("p\(step)"), now: now) }
            #expect(machine.loggedPackets <= 500)
            #expect(machine.sessionCount <= 50)
        }
        // Quiet past the window: everything goes.
        _ = machine.takeReleased()
        machine.expire(now: self.start + .milliseconds(20_000 * 100) + self.window + .seconds(1))
        #expect(machine.takeReleased().count == 50, "every session that expired is released")
        #expect(machine.loggedPackets == 0)
        #expect(machine.loggedBytes == 0)
        #expect(machine.sessionCount == 0)
    }

    @Test func aSweepIsArmedOnceAndRunsUntilNothingIsHeld() {
        var machine = self.machine()
        #expect(machine.armSweep() == nil, "nothing held: nothing to sweep")
        self.log(&machine, "a", at: self.start)
        let first = self.start + self.window + .nanoseconds(1)
        #expect(machine.armSweep() == first)
        // Armed: later logs and persists do not arm again.
        self.log(&machine, "b", at: self.start + .seconds(10))
        _ = machine.persist(self.session(), now: self.start + .seconds(20))
        #expect(machine.armSweep() == nil)
        // A sweep that fires early drops nothing and re-arms for the same end.
        #expect(machine.sweep(now: first - .nanoseconds(1)) == first)
        #expect(machine.loggedPackets == 2)
        // At the oldest packet's end: it goes, the next end is the second packet's, then the session's.
        #expect(machine.sweep(now: first) == self.start + .seconds(10) + self.window + .nanoseconds(1))
        #expect(machine.loggedPackets == 1)
        let sessionEnd = self.start + .seconds(20) + self.window + .nanoseconds(1)
        #expect(machine.sweep(now: self.start + .seconds(10) + self.window + .nanoseconds(1)) == sessionEnd)
        #expect(machine.loggedPackets == 0 && machine.sessionCount == 1)
        // The last sweep empties the store and disarms; the session is released (its rooms' hold ends).
        #expect(machine.sweep(now: sessionEnd) == nil)
        #expect(machine.sessionCount == 0)
        #expect(machine.takeReleased().map(\.pid) == ["p1"])
        // The next log arms again.
        self.log(&machine, "c", at: sessionEnd)
        #expect(machine.armSweep() == sessionEnd + self.window + .nanoseconds(1))
    }
}

extension ConnectionRecoveryStateMachine.Claim {
    fileprivate var refusal: ConnectionRecoveryStateMachine<Packet>.Refusal? {
        if case .refused(let refusal) = self { return refusal }
        return nil
    }
}
