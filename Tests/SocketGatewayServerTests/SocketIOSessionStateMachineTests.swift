import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

@Suite struct SocketIOSessionStateMachineTests {
    typealias Machine = SocketIOSessionStateMachine
    /// A test clock: deadlines are synthetic, nothing sleeps.
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let known: (String) -> Bool = { $0 == "/" || $0 == "/custom" }
    /// Every event has a handler but `unhandled`.
    let handled: (String, String) -> Bool = { _, event in event != "unhandled" }
    var limits = Machine.Limits(maxPendingClientAcks: 4, maxRefusedConnects: 3)

    private func connected(_ namespaces: [String] = ["/"]) -> Machine {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        for (index, namespace) in namespaces.enumerated() {
            #expect(
                machine.received(
                    .connect(namespace: namespace, auth: nil),
                    now: self.start,
                    namespaceExists: self.known,
                    handlesEvent: self.handled
                ) == .authenticate(namespace: namespace, auth: nil)
            )
            #expect(
                machine.authenticationCompleted(namespace: namespace, accepted: true, sid: "sid\(index)")
                    == .accept(namespace: namespace, sid: "sid\(index)")
            )
        }
        return machine
    }

    @Test func connectTimeoutClosesTheSession() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        #expect(machine.expire(now: self.start + .milliseconds(999)).isEmpty)
        let actions = machine.expire(now: self.start + .milliseconds(1000))
        #expect(actions.count == 1)
        guard case .closeSession(let error) = actions.first else {
            Issue.record("expected closeSession, got \(actions)")
            return
        }
        #expect(error.code == .connectTimeout)
        #expect(machine.isClosed)
        #expect(
            machine.received(
                .connect(namespace: "/", auth: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
    }

    @Test func connectBeforeTimeoutCancelsIt() {
        var machine = self.connected()
        #expect(machine.pendingConnectDeadline == nil)
        #expect(machine.expire(now: self.start + .seconds(10)).isEmpty)
        #expect(!machine.isClosed)
    }

    @Test func unknownNamespaceIsRefusedAndTimeoutStillRuns() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        #expect(
            machine.received(
                .connect(namespace: "/random", auth: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .sendConnectError(namespace: "/random", refusal: .invalidNamespace)
        )
        #expect(machine.pendingConnectDeadline != nil)
        #expect(machine.expire(now: self.start + .seconds(1)).count == 1)
    }

    @Test func authRefusedSendsUnauthorized() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        let auth: JSONValue = ["token": "bad"]
        #expect(
            machine.received(
                .connect(namespace: "/", auth: auth),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .authenticate(namespace: "/", auth: auth)
        )
        #expect(
            machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x")
                == .action(.sendConnectError(namespace: "/", refusal: .unauthorized))
        )
        #expect(machine.sid(in: "/") == nil)
        // Events for a namespace the client is not connected to are ignored.
        #expect(
            machine.received(
                .event(namespace: "/", arguments: ["e"], ackID: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
    }

    @Test func refusedOrSlowAuthenticationDoesNotStopTheConnectTimeout() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        _ = machine.received(
            .connect(namespace: "/", auth: nil),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        #expect(
            machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x")
                == .action(.sendConnectError(namespace: "/", refusal: .unauthorized))
        )
        _ = machine.received(
            .connect(namespace: "/custom", auth: nil),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        // Still authenticating /custom when the timeout fires: the session closes.
        #expect(machine.expire(now: self.start + .seconds(1)).count == 1)
        #expect(machine.isClosed)
        #expect(machine.authenticationCompleted(namespace: "/custom", accepted: true, sid: "y") == .action(.none))
    }

    @Test func authAcceptedConnects() {
        let machine = self.connected(["/", "/custom"])
        #expect(machine.sid(in: "/") == "sid0")
        #expect(machine.sid(in: "/custom") == "sid1")
        #expect(machine.connectedNamespaces.sorted() == ["/", "/custom"])
    }

    @Test func authResultAfterClientLeftIsIgnored() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        _ = machine.received(
            .connect(namespace: "/", auth: nil),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        #expect(
            machine.received(
                .disconnect(namespace: "/"),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
        #expect(machine.authenticationCompleted(namespace: "/", accepted: true, sid: "s") == .action(.none))
    }

    @Test func duplicateConnectChangesNothing() {
        var machine = self.connected()
        #expect(
            machine.received(
                .connect(namespace: "/", auth: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
        #expect(machine.sid(in: "/") == "sid0")
    }

    @Test func eventsAreDispatchedWithTheirAckID() {
        var machine = self.connected()
        #expect(
            machine.received(
                .event(namespace: "/", arguments: ["message", 1], ackID: 456),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["message", 1], ackID: 456)
        )
    }

    @Test func clientDisconnectLeavesOnlyThatNamespace() {
        var machine = self.connected(["/", "/custom"])
        #expect(
            machine.received(
                .disconnect(namespace: "/custom"),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .closeConnection(namespace: "/custom", sid: "sid1", pendingAcks: [], cause: .client)
        )
        #expect(machine.connectedNamespaces == ["/"])
        #expect(
            machine.received(
                .event(namespace: "/", arguments: ["x"], ackID: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["x"], ackID: nil)
        )
        #expect(!machine.isClosed)
    }

    @Test func serverAckRoundTrip() {
        var machine = self.connected()
        let first = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        let second = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        #expect(first == 0)
        #expect(second == 1)
        #expect(machine.allocateAck(namespace: "/", sid: "other", deadline: self.start) == nil)
        #expect(
            machine.received(
                .ack(namespace: "/", id: 1, arguments: ["ok"]),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .resolveAck(namespace: "/", sid: "sid0", id: 1, arguments: ["ok"])
        )
        // A second answer, or an answer nobody asked for, is ignored.
        #expect(
            machine.received(
                .ack(namespace: "/", id: 1, arguments: []),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
        #expect(
            machine.received(
                .ack(namespace: "/", id: 99, arguments: []),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
    }

    @Test func ackTimeout() {
        var machine = self.connected()
        let id = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .milliseconds(200))!
        let later = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .milliseconds(900))!
        #expect(machine.expire(now: self.start + .milliseconds(199)).isEmpty)
        #expect(machine.expire(now: self.start + .milliseconds(200)) == [.failAck(namespace: "/", sid: "sid0", id: id)])
        // The late answer finds nobody waiting.
        #expect(
            machine.received(
                .ack(namespace: "/", id: id, arguments: []),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
        #expect(machine.expire(now: self.start + .seconds(1)) == [.failAck(namespace: "/", sid: "sid0", id: later)])
    }

    @Test func disconnectFailsPendingAcks() {
        var machine = self.connected(["/", "/custom"])
        _ = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        _ = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        #expect(
            machine.serverDisconnect(namespace: "/", sid: "sid0")
                == .closeConnection(namespace: "/", sid: "sid0", pendingAcks: [0, 1], cause: .server)
        )
        #expect(machine.serverDisconnect(namespace: "/", sid: "sid0") == .none)
        #expect(
            machine.sessionClosed() == [
                .closeConnection(namespace: "/custom", sid: "sid1", pendingAcks: [], cause: .session)
            ]
        )
        #expect(machine.isClosed)
    }

    @Test func protocolErrorClosesOnce() {
        var machine = self.connected()
        let error = SocketIOSessionError(code: .protocolViolation, detail: "unknown packet type")
        #expect(machine.protocolError(error) == .closeSession(error))
        #expect(machine.closingError == error)
        #expect(machine.protocolError(error) == .none)
        #expect(
            machine.received(
                .event(namespace: "/", arguments: ["x"], ackID: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) == .none
        )
        #expect(
            machine.sessionClosed() == [.closeConnection(namespace: "/", sid: "sid0", pendingAcks: [], cause: .session)]
        )
    }

    // MARK: Acks the client asks for

    private func event(_ name: String, ackID: UInt64?, namespace: String = "/") -> Machine.Inbound {
        .event(namespace: namespace, arguments: [.string(name)], ackID: ackID)
    }

    @Test func ackIDsOfUnhandledEventsAreNotRecorded() {
        var machine = self.connected()
        for id in UInt64(1)...1000 {
            #expect(
                machine.received(
                    self.event("unhandled", ackID: id),
                    now: self.start,
                    namespaceExists: self.known,
                    handlesEvent: self.handled
                ) == .none
            )
        }
        #expect(machine.owedAckCount(namespace: "/", sid: "sid0") == 0)
        #expect(!machine.isClosed)
        // A handled event records its ack id until a handler answers it, once.
        #expect(
            machine.received(
                self.event("echo", ackID: 7),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
                == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["echo"], ackID: 7)
        )
        #expect(machine.owedAckCount(namespace: "/", sid: "sid0") == 1)
        #expect(machine.ackAnswered(namespace: "/", sid: "sid0", id: 7) == true)
        #expect(machine.ackAnswered(namespace: "/", sid: "sid0", id: 7) == false)
        #expect(machine.ackAnswered(namespace: "/", sid: "sid0", id: 8) == false, "never asked for")
        #expect(machine.ackAnswered(namespace: "/", sid: "other", id: 7) == false, "another connection's")
        #expect(machine.owedAckCount(namespace: "/", sid: "sid0") == 0)
    }

    @Test func pendingClientAcksAreBounded() {
        var machine = self.connected(["/", "/custom"])
        for id in UInt64(0)..<4 {
            #expect(
                machine.received(
                    self.event("hold", ackID: id),
                    now: self.start,
                    namespaceExists: self.known,
                    handlesEvent: self.handled
                )
                    == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["hold"], ackID: id)
            )
        }
        // Events without an ack id are not counted; the bound is per connection.
        #expect(
            machine.received(
                self.event("hold", ackID: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) != .none
        )
        #expect(
            machine.received(
                self.event("hold", ackID: 0, namespace: "/custom"),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) != .none
        )
        // An answer frees a place.
        #expect(machine.ackAnswered(namespace: "/", sid: "sid0", id: 0) == true)
        #expect(
            machine.received(
                self.event("hold", ackID: 4),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) != .none
        )
        let action = machine.received(
            self.event("hold", ackID: 5),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        guard case .closeSession(let error) = action else {
            Issue.record("expected closeSession, got \(action)")
            return
        }
        #expect(error.code == .tooManyPendingAcks)
        #expect(machine.isClosed)
    }

    @Test func duplicatePendingAckIDClosesTheSession() {
        var machine = self.connected()
        _ = machine.received(
            self.event("hold", ackID: 3),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        let action = machine.received(
            self.event("hold", ackID: 3),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        guard case .closeSession(let error) = action else {
            Issue.record("expected closeSession, got \(action)")
            return
        }
        #expect(error.code == .duplicateAckID)
        // Once answered, the id may be used again (a client's counter may wrap).
        var other = self.connected()
        _ = other.received(
            self.event("echo", ackID: 3),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        #expect(other.ackAnswered(namespace: "/", sid: "sid0", id: 3) == true)
        #expect(
            other.received(
                self.event("echo", ackID: 3),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            ) != .none
        )
        #expect(!other.isClosed)
    }

    // MARK: Event rate limit

    @Test func eventRateLimitClosesTheSessionAtSyntheticTimes() {
        var limits = self.limits
        limits.eventRate = SocketEventRateLimit(eventsPerSecond: 2, burst: 2)
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: limits)
        _ = machine.received(
            .connect(namespace: "/", auth: nil),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        _ = machine.authenticationCompleted(namespace: "/", accepted: true, sid: "sid0")
        func send(_ name: String, at offset: TimeAmount) -> Machine.Action {
            machine.received(
                self.event(name, ackID: nil),
                now: self.start + offset,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
        }
        #expect(send("a", at: .seconds(1)) != .none)
        // Unhandled events count too: the limit is on what the client sends.
        #expect(send("unhandled", at: .seconds(1)) == .none)
        #expect(!machine.isClosed)
        #expect(send("b", at: .milliseconds(1500)) != .none, "one token back after 500 ms")
        let action = send("c", at: .milliseconds(1500))
        guard case .closeSession(let error) = action else {
            Issue.record("expected closeSession, got \(action)")
            return
        }
        #expect(error.code == .eventRateExceeded)
        #expect(machine.isClosed)
    }

    @Test func noEventRateLimitByDefault() {
        var machine = self.connected()
        for _ in 0..<10_000 {
            _ = machine.received(
                self.event("a", ackID: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
        }
        #expect(!machine.isClosed)
    }

    // MARK: Refused CONNECTs

    @Test func refusedConnectsAreBoundedPerSession() {
        var machine = Machine(now: self.start, connectTimeout: .seconds(60), limits: self.limits)
        func connect(_ namespace: String) -> Machine.Action {
            machine.received(
                .connect(namespace: namespace, auth: ["token": "bad"]),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
        }
        #expect(connect("/") == .authenticate(namespace: "/", auth: ["token": "bad"]))
        #expect(
            machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x")
                == .action(.sendConnectError(namespace: "/", refusal: .unauthorized))
        )
        // Unknown namespaces count too.
        #expect(connect("/random") == .sendConnectError(namespace: "/random", refusal: .invalidNamespace))
        #expect(!machine.isClosed)
        _ = connect("/")
        let action = machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x")
        guard case .action(.sendConnectErrorAndClose(let namespace, let refusal, let error)) = action else {
            Issue.record("expected sendConnectErrorAndClose, got \(action)")
            return
        }
        #expect(namespace == "/" && refusal == .unauthorized && refusal.message == "Unauthorized")
        #expect(error.code == .tooManyRefusedConnects)
        #expect(machine.isClosed)
        #expect(machine.refusedConnects == 3)
        #expect(connect("/") == .none)
    }

    @Test func middlewareRefusalCarriesItsMessageAndDataAndCounts() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        let refusal = Machine.ConnectRefusal.refused(message: "banned", data: ["until": 5])
        #expect(refusal.message == "banned" && refusal.data == ["until": 5])
        #expect(Machine.ConnectRefusal.unauthorized.data == nil)
        for attempt in 1...3 {
            #expect(
                machine.received(
                    .connect(namespace: "/custom", auth: nil),
                    now: self.start,
                    namespaceExists: self.known,
                    handlesEvent: self.handled
                ) == .authenticate(namespace: "/custom", auth: nil)
            )
            let outcome = machine.authenticationCompleted(namespace: "/custom", refusal: refusal, sid: "x")
            if attempt < 3 {
                #expect(outcome == .action(.sendConnectError(namespace: "/custom", refusal: refusal)))
            } else {
                guard case .action(.sendConnectErrorAndClose(_, let last, let error)) = outcome else {
                    Issue.record("expected sendConnectErrorAndClose, got \(outcome)")
                    return
                }
                #expect(last == refusal && error.code == .tooManyRefusedConnects)
            }
            #expect(machine.sid(in: "/custom") == nil)
        }
        #expect(machine.refusedConnects == 3)
    }

    @Test func middlewareAcceptanceConnectsLikeAnAuthenticatedOne() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000), limits: self.limits)
        _ = machine.received(
            .connect(namespace: "/", auth: nil),
            now: self.start,
            namespaceExists: self.known,
            handlesEvent: self.handled
        )
        #expect(
            machine.authenticationCompleted(namespace: "/", refusal: nil, sid: "s1")
                == .accept(namespace: "/", sid: "s1")
        )
        #expect(machine.sid(in: "/") == "s1")
        #expect(machine.pendingConnectDeadline == nil)
        // A late answer for a namespace no longer authenticating changes nothing.
        #expect(
            machine.authenticationCompleted(namespace: "/", refusal: .unauthorized, sid: "s2") == .action(.none)
        )
        #expect(machine.sid(in: "/") == "s1")
    }

    @Test func acceptedConnectsDoNotCountAsRefused() {
        var machine = self.connected(["/", "/custom"])
        for _ in 0..<10 {
            _ = machine.received(
                .disconnect(namespace: "/custom"),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
            _ = machine.received(
                .connect(namespace: "/custom", auth: nil),
                now: self.start,
                namespaceExists: self.known,
                handlesEvent: self.handled
            )
            _ = machine.authenticationCompleted(namespace: "/custom", accepted: true, sid: "again")
        }
        #expect(machine.refusedConnects == 0)
        #expect(!machine.isClosed)
    }
}
