import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

@Suite struct SocketIOSessionStateMachineTests {
    typealias Machine = SocketIOSessionStateMachine
    /// A test clock: deadlines are synthetic, nothing sleeps.
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let known: (String) -> Bool = { $0 == "/" || $0 == "/custom" }

    private func connected(_ namespaces: [String] = ["/"]) -> Machine {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        for (index, namespace) in namespaces.enumerated() {
            #expect(machine.received(.connect(namespace: namespace, auth: nil), namespaceExists: self.known) == .authenticate(namespace: namespace, auth: nil))
            #expect(machine.authenticationCompleted(namespace: namespace, accepted: true, sid: "sid\(index)") == .accept(namespace: namespace, sid: "sid\(index)"))
        }
        return machine
    }

    @Test func connectTimeoutClosesTheSession() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        #expect(machine.expire(now: self.start + .milliseconds(999)).isEmpty)
        let actions = machine.expire(now: self.start + .milliseconds(1000))
        #expect(actions.count == 1)
        guard case .closeSession(let error) = actions.first else {
            Issue.record("expected closeSession, got \(actions)")
            return
        }
        #expect(error.code == .connectTimeout)
        #expect(machine.isClosed)
        #expect(machine.received(.connect(namespace: "/", auth: nil), namespaceExists: self.known) == .none)
    }

    @Test func connectBeforeTimeoutCancelsIt() {
        var machine = self.connected()
        #expect(machine.pendingConnectDeadline == nil)
        #expect(machine.expire(now: self.start + .seconds(10)).isEmpty)
        #expect(!machine.isClosed)
    }

    @Test func unknownNamespaceIsRefusedAndTimeoutStillRuns() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        #expect(machine.received(.connect(namespace: "/random", auth: nil), namespaceExists: self.known) == .sendConnectError(namespace: "/random", message: "Invalid namespace"))
        #expect(machine.pendingConnectDeadline != nil)
        #expect(machine.expire(now: self.start + .seconds(1)).count == 1)
    }

    @Test func authRefusedSendsUnauthorized() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        let auth: JSONValue = ["token": "bad"]
        #expect(machine.received(.connect(namespace: "/", auth: auth), namespaceExists: self.known) == .authenticate(namespace: "/", auth: auth))
        #expect(machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x") == .sendConnectError(namespace: "/", message: "Unauthorized"))
        #expect(machine.sid(in: "/") == nil)
        // Events for a namespace the client is not connected to are ignored.
        #expect(machine.received(.event(namespace: "/", arguments: ["e"], ackID: nil), namespaceExists: self.known) == .none)
    }

    @Test func refusedOrSlowAuthenticationDoesNotStopTheConnectTimeout() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        _ = machine.received(.connect(namespace: "/", auth: nil), namespaceExists: self.known)
        #expect(machine.authenticationCompleted(namespace: "/", accepted: false, sid: "x") == .sendConnectError(namespace: "/", message: "Unauthorized"))
        _ = machine.received(.connect(namespace: "/custom", auth: nil), namespaceExists: self.known)
        // Still authenticating /custom when the timeout fires: the session closes.
        #expect(machine.expire(now: self.start + .seconds(1)).count == 1)
        #expect(machine.isClosed)
        #expect(machine.authenticationCompleted(namespace: "/custom", accepted: true, sid: "y") == .none)
    }

    @Test func authAcceptedConnects() {
        let machine = self.connected(["/", "/custom"])
        #expect(machine.sid(in: "/") == "sid0")
        #expect(machine.sid(in: "/custom") == "sid1")
        #expect(machine.connectedNamespaces.sorted() == ["/", "/custom"])
    }

    @Test func authResultAfterClientLeftIsIgnored() {
        var machine = Machine(now: self.start, connectTimeout: .milliseconds(1000))
        _ = machine.received(.connect(namespace: "/", auth: nil), namespaceExists: self.known)
        #expect(machine.received(.disconnect(namespace: "/"), namespaceExists: self.known) == .none)
        #expect(machine.authenticationCompleted(namespace: "/", accepted: true, sid: "s") == .none)
    }

    @Test func duplicateConnectChangesNothing() {
        var machine = self.connected()
        #expect(machine.received(.connect(namespace: "/", auth: nil), namespaceExists: self.known) == .none)
        #expect(machine.sid(in: "/") == "sid0")
    }

    @Test func eventsAreDispatchedWithTheirAckID() {
        var machine = self.connected()
        #expect(machine.received(.event(namespace: "/", arguments: ["message", 1], ackID: 456), namespaceExists: self.known)
            == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["message", 1], ackID: 456))
    }

    @Test func clientDisconnectLeavesOnlyThatNamespace() {
        var machine = self.connected(["/", "/custom"])
        #expect(machine.received(.disconnect(namespace: "/custom"), namespaceExists: self.known)
            == .closeConnection(namespace: "/custom", sid: "sid1", pendingAcks: [], cause: .client))
        #expect(machine.connectedNamespaces == ["/"])
        #expect(machine.received(.event(namespace: "/", arguments: ["x"], ackID: nil), namespaceExists: self.known)
            == .dispatchEvent(namespace: "/", sid: "sid0", arguments: ["x"], ackID: nil))
        #expect(!machine.isClosed)
    }

    @Test func serverAckRoundTrip() {
        var machine = self.connected()
        let first = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        let second = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        #expect(first == 0)
        #expect(second == 1)
        #expect(machine.allocateAck(namespace: "/", sid: "other", deadline: self.start) == nil)
        #expect(machine.received(.ack(namespace: "/", id: 1, arguments: ["ok"]), namespaceExists: self.known)
            == .resolveAck(namespace: "/", sid: "sid0", id: 1, arguments: ["ok"]))
        // A second answer, or an answer nobody asked for, is ignored.
        #expect(machine.received(.ack(namespace: "/", id: 1, arguments: []), namespaceExists: self.known) == .none)
        #expect(machine.received(.ack(namespace: "/", id: 99, arguments: []), namespaceExists: self.known) == .none)
    }

    @Test func ackTimeout() {
        var machine = self.connected()
        let id = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .milliseconds(200))!
        let later = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .milliseconds(900))!
        #expect(machine.expire(now: self.start + .milliseconds(199)).isEmpty)
        #expect(machine.expire(now: self.start + .milliseconds(200)) == [.failAck(namespace: "/", sid: "sid0", id: id)])
        // The late answer finds nobody waiting.
        #expect(machine.received(.ack(namespace: "/", id: id, arguments: []), namespaceExists: self.known) == .none)
        #expect(machine.expire(now: self.start + .seconds(1)) == [.failAck(namespace: "/", sid: "sid0", id: later)])
    }

    @Test func disconnectFailsPendingAcks() {
        var machine = self.connected(["/", "/custom"])
        _ = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        _ = machine.allocateAck(namespace: "/", sid: "sid0", deadline: self.start + .seconds(5))
        #expect(machine.serverDisconnect(namespace: "/", sid: "sid0")
            == .closeConnection(namespace: "/", sid: "sid0", pendingAcks: [0, 1], cause: .server))
        #expect(machine.serverDisconnect(namespace: "/", sid: "sid0") == .none)
        #expect(machine.sessionClosed() == [.closeConnection(namespace: "/custom", sid: "sid1", pendingAcks: [], cause: .session)])
        #expect(machine.isClosed)
    }

    @Test func protocolErrorClosesOnce() {
        var machine = self.connected()
        let error = SocketIOSessionError(code: .protocolViolation, detail: "unknown packet type")
        #expect(machine.protocolError(error) == .closeSession(error))
        #expect(machine.closingError == error)
        #expect(machine.protocolError(error) == .none)
        #expect(machine.received(.event(namespace: "/", arguments: ["x"], ackID: nil), namespaceExists: self.known) == .none)
        #expect(machine.sessionClosed() == [.closeConnection(namespace: "/", sid: "sid0", pendingAcks: [], cause: .session)])
    }
}
