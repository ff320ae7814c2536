import NIOCore
import Testing

@testable import SocketGatewayEngineIO

/// Drives the HTTP connection time limits with explicit times (no waiting).
@Suite struct HTTPConnectionTimeoutStateMachineTests {
    typealias Machine = HTTPConnectionTimeoutStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let timeouts = HTTPConnectionTimeouts(idle: .seconds(60), header: .seconds(10), body: .seconds(30))

    func at(_ seconds: Int64) -> NIODeadline { self.start + .seconds(seconds) }

    @Test func connectionThatSendsNothingTimesOutIdleWithoutAResponse() {
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        #expect(machine.connectionOpened() == .scheduleTimer(self.at(60)))
        // An early wake-up only re-arms.
        #expect(machine.timerFired(now: self.at(59)) == .scheduleTimer(self.at(60)))
        #expect(machine.timerFired(now: self.at(60)) == .close(.idle, respond: false))
        // Stopped: nothing more.
        #expect(machine.readCompleted(now: self.at(61)) == .none)
    }

    @Test func halfARequestLineTimesOutWithA408() {
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        _ = machine.connectionOpened()
        // A read that produced no request part started a head: the header limit counts from its first byte.
        #expect(machine.readCompleted(now: self.at(1)) == .scheduleTimer(self.at(11)))
        // More bytes of the same head do not extend it.
        #expect(machine.readCompleted(now: self.at(5)) == .none)
        #expect(machine.timerFired(now: self.at(11)) == .close(.header, respond: true))
    }

    @Test func tricklingBodyTimesOutFromTheEndOfTheHead() {
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        _ = machine.connectionOpened()
        machine.headReceived(now: self.at(2))
        #expect(machine.readCompleted(now: self.at(2)) == .scheduleTimer(self.at(32)))
        for second in 3..<32 {
            machine.bodyReceived()
            #expect(machine.readCompleted(now: self.at(Int64(second))) == .none)
        }
        #expect(machine.timerFired(now: self.at(32)) == .close(.body, respond: true))
    }

    @Test func requestBeingAnsweredHasNoTimeoutThenIdleStartsAfterTheResponse() {
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        #expect(machine.connectionOpened() == .scheduleTimer(self.at(60)))
        // A long-polling GET: head and end in one read, then parked far longer than any limit.
        machine.headReceived(now: self.at(1))
        machine.endReceived(now: self.at(1))
        #expect(machine.readCompleted(now: self.at(1)) == .none)
        // The idle timer armed at open fires while the GET is parked: nothing happens, nothing is re-armed.
        #expect(machine.timerFired(now: self.at(60)) == .none)
        #expect(machine.timerFired(now: self.at(200)) == .none)
        // Answered at 300 s: the keep-alive connection now gets its idle limit.
        #expect(machine.responseSent(now: self.at(300)) == .scheduleTimer(self.at(360)))
        #expect(machine.timerFired(now: self.at(360)) == .close(.idle, respond: false))
    }

    @Test func keepAliveRequestsPushTheIdleDeadlineWithoutReschedulingEachTime() {
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        #expect(machine.connectionOpened() == .scheduleTimer(self.at(60)))
        for second in stride(from: Int64(10), to: 50, by: 10) {
            machine.headReceived(now: self.at(second))
            machine.endReceived(now: self.at(second))
            #expect(machine.readCompleted(now: self.at(second)) == .none)
            // The armed timer (60 s) is earlier than the new idle deadline: it is re-armed when it fires.
            #expect(machine.responseSent(now: self.at(second)) == .none)
        }
        #expect(machine.timerFired(now: self.at(60)) == .scheduleTimer(self.at(100)))
        #expect(machine.timerFired(now: self.at(100)) == .close(.idle, respond: false))
    }

    @Test func noResponseIsWrittenWhenOneIsOwed() {
        // A head started while an earlier request is being answered cannot be answered with 408 (the response
        // would go to the earlier request): the connection is only closed.
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        _ = machine.connectionOpened()
        machine.headReceived(now: self.at(1))
        machine.endReceived(now: self.at(1))
        machine.headReceived(now: self.at(2))
        #expect(machine.readCompleted(now: self.at(2)) == .scheduleTimer(self.at(32)))
        #expect(machine.timerFired(now: self.at(32)) == .close(.body, respond: false))
    }

    @Test func stoppedMachineNeverCloses() {
        // After a WebSocket upgrade the heartbeat covers the connection.
        var machine = Machine(timeouts: self.timeouts, now: self.start)
        _ = machine.connectionOpened()
        machine.stop()
        #expect(machine.timerFired(now: self.at(1000)) == .none)
        #expect(machine.readCompleted(now: self.at(1000)) == .none)
    }
}
