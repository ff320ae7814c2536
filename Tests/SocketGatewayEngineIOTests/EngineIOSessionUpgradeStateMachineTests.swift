import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayEngineIO

/// The polling → WebSocket upgrade, the order of answers across the client's connections, and the slow-client
/// limit, driven through the pure session state machine at synthetic times.
@Suite struct EngineIOSessionUpgradeStateMachineTests {
    typealias Machine = EngineIOSessionStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let limits = Machine.Limits(
        pingInterval: .seconds(25),
        pingTimeout: .seconds(20),
        upgradeTimeout: .seconds(10),
        maxBufferedBytes: 100,
        allowUpgrades: true
    )

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }
    func message(_ string: String) -> EngineIOPacket { .message(ByteBuffer(string: string)) }

    func enqueue(_ machine: inout Machine, _ packet: EngineIOPacket, cost: Int = 5) -> Machine.EnqueueAction {
        machine.enqueue([packet], pollingCost: cost, webSocketCost: cost)
    }

    /// A session whose client has attached its WebSocket and, when `probed`, sent `2probe` at 20 ms.
    func upgradingMachine(probed: Bool) -> Machine {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.webSocketAttached(now: self.at(10))
        if probed { _ = machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(20)) }
        return machine
    }

    // MARK: packets during the upgrade

    @Test(arguments: [false, true])
    func packetsQueuedDuringTheUpgradeGoToTheParkedGet(probed: Bool) {
        // The official JavaScript client's default mode: it POSTs its CONNECT and polls while it probes. The
        // CONNECT reply must not wait for the upgrade to finish.
        var machine = self.upgradingMachine(probed: probed)
        let park = machine.getReceived(now: self.at(30))
        #expect(park.first == .replyToGet(.park))
        let reply = self.message("0{\"sid\":\"a\"}")
        #expect(self.enqueue(&machine, reply) == .completePendingGet([reply]))
        #expect(machine.bufferedBytes == 0)
        // A GET finding packets queued takes them at once.
        let event = self.message("2[\"hello\"]")
        #expect(self.enqueue(&machine, event) == .none)
        #expect(machine.getReceived(now: self.at(40)) == [.replyToGet(.packets([event]))])
    }

    @Test func afterThePollingPausesTheRestGoesOverTheWebSocketOnceInOrder() {
        var machine = self.upgradingMachine(probed: true)
        let (first, second, third) = (self.message("1"), self.message("2"), self.message("3"))
        #expect(machine.getReceived(now: self.at(30)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(130))])
        #expect(self.enqueue(&machine, first) == .completePendingGet([first]))
        // The client's next GET gets the noop that lets it pause polling; then it sends no GET.
        #expect(machine.getReceived(now: self.at(35)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(135))])
        #expect(machine.probeNoopTimerFired(now: self.at(135)) == [.completePendingGet([.noop])])
        #expect(self.enqueue(&machine, second) == .none)
        #expect(self.enqueue(&machine, third) == .none)
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(140))
                == [.cancelUpgradeTimeout, .promoteProbe, .writeWebSocket([second, third])]
        )
        #expect(self.enqueue(&machine, first) == .writeWebSocket)
    }

    @Test func probeNoopTimerFiringEarlyOrLateForAnAnsweredGetDoesNothingWrong() {
        var machine = self.upgradingMachine(probed: true)
        #expect(machine.getReceived(now: self.at(30)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(130))])
        // Early: re-armed, the GET stays parked.
        #expect(machine.probeNoopTimerFired(now: self.at(129)) == [.scheduleProbeNoop(self.at(130))])
        #expect(machine.hasPendingGet)
        // The GET was answered with data meanwhile: the timer finds nothing to end.
        let packet = self.message("x")
        #expect(self.enqueue(&machine, packet) == .completePendingGet([packet]))
        #expect(machine.probeNoopTimerFired(now: self.at(130)) == [])
    }

    @Test func getParkedBeforeTheProbeIsEndedByItAndDataBeforeThatGoesOnIt() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(5)) == [.replyToGet(.park)])
        _ = machine.webSocketAttached(now: self.at(10))
        let packet = self.message("early")
        #expect(self.enqueue(&machine, packet) == .completePendingGet([packet]))
        #expect(machine.getReceived(now: self.at(15)) == [.replyToGet(.park)])
        // Parked after the WebSocket was attached: the probe gives it the usual 100 ms before the noop.
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(20))
                == [.writeProbe(.pong(probe: true)), .scheduleProbeNoop(self.at(120))]
        )
    }

    @Test func failedUpgradeKeepsTheParkedGetAsAnOrdinaryPoll() {
        var machine = self.upgradingMachine(probed: true)
        _ = machine.getReceived(now: self.at(30))
        #expect(machine.upgradeTimeoutFired() == [.cancelUpgradeTimeout, .closeProbe])
        // The noop timer no longer applies, and the GET is not refused by a later upgrade's `5`.
        #expect(machine.probeNoopTimerFired(now: self.at(130)) == [])
        _ = machine.webSocketAttached(now: self.at(200))
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(210))
                == [.writeProbe(.pong(probe: true)), .completePendingGet([.noop])]
        )
    }

    // MARK: refusals ordered behind the probe answer

    @Test func getsRefusedAfterTheUpgradeWaitForTheProbeAnswer() {
        var machine = self.upgradingMachine(probed: true)
        _ = machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(30))
        // `3probe` not written yet: refusals are held.
        let held = Machine.Action.replyToGet(.rejectDeferred(.badRequest, .untilProbeAnswered))
        #expect(machine.getReceived(now: self.at(31)) == [held])
        #expect(machine.getReceived(now: self.at(32)) == [held])
        #expect(machine.probeAnswerWritten(now: self.at(40)) == [.releaseRefusalsHeldForProbe(at: self.at(65))])
        #expect(machine.probeAnswerWritten(now: self.at(41)) == [])
        // Written: a refusal leaves once the grace period after it has passed.
        #expect(
            machine.getReceived(now: self.at(50)) == [.replyToGet(.rejectDeferred(.badRequest, .until(self.at(65))))]
        )
        #expect(machine.getReceived(now: self.at(65)) == [.replyToGet(.reject(.badRequest))])
        #expect(machine.getReceived(now: self.at(1_100)) == [.replyToGet(.reject(.badRequest))])
    }

    @Test func refusalsAfterTheOrderingWindowOrWithoutAProbeAreImmediate() {
        var machine = self.upgradingMachine(probed: true)
        _ = machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(30))
        // Past the window, even a probe answer never reported written does not hold a refusal.
        #expect(machine.getReceived(now: self.at(1_030)) == [.replyToGet(.reject(.badRequest))])
        var unprobed = self.upgradingMachine(probed: false)
        _ = unprobed.getReceived(now: self.at(15))
        #expect(
            unprobed.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(30))
                == [.cancelUpgradeTimeout, .rejectPendingGet(.badRequest), .promoteProbe]
        )
        #expect(unprobed.getReceived(now: self.at(31)) == [.replyToGet(.reject(.badRequest))])
        var webSocket = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(webSocket.getReceived(now: self.at(1)) == [.replyToGet(.reject(.badRequest))])
        #expect(webSocket.probeAnswerWritten(now: self.at(2)) == [])
    }

    // MARK: GET answers ordered behind the POST answer

    @Test func getAnswerCausedByAPostWaitsForThePostAnswer() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.park)])
        #expect(machine.postStarted() == [])
        #expect(
            machine.postReceived(.success([self.message("40")]), now: self.at(20))
                == [.deliver(.text(ByteBuffer(string: "40"))), .replyToPost(nil)]
        )
        let reply = self.message("40{\"sid\":\"s\"}")
        #expect(self.enqueue(&machine, reply) == .completePendingGet([reply], holdUntilPostAnswered: true))
        // A GET that finds data while the answer is still out is held too; the earlier one is released first.
        let more = self.message("more")
        #expect(self.enqueue(&machine, more) == .none)
        #expect(
            machine.getReceived(now: self.at(21))
                == [.releaseGetAnswerHeldForPost, .replyToGet(.packets([more], holdUntilPostAnswered: true))]
        )
        #expect(machine.postAnswerWritten() == [.releaseGetAnswerHeldForPost])
        #expect(machine.postAnswerWritten() == [])
        // Afterwards answers go at once.
        #expect(machine.getReceived(now: self.at(30)) == [.replyToGet(.park)])
        #expect(self.enqueue(&machine, more) == .completePendingGet([more]))
    }

    @Test func postAnswerWithNothingHeldReleasesNothing() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.postReceived(.success([.noop]), now: self.at(1)) == [.replyToPost(nil)])
        #expect(machine.postAnswerWritten() == [])
    }

    @Test func closePacketOwedToTheNextGetWaitsForThePostAnswerToo() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.postReceived(.success([self.message("4abc")]), now: self.at(1))
        #expect(machine.closeByApplication(.parseError) == [.lingerWithClosePacket, .close(.parseError)])
        #expect(machine.getReceived(now: self.at(2)) == [.replyToGet(.packets([.close], holdUntilPostAnswered: true))])
        #expect(machine.postAnswerWritten() == [.releaseGetAnswerHeldForPost])
    }

    @Test func heartbeatDuringTheUpgradeGoesToAParkedGetAndThePongComesOverTheWebSocket() {
        var limits = self.limits
        limits.pingInterval = .milliseconds(300)
        limits.pingTimeout = .milliseconds(200)
        var machine = Machine(transport: .polling, limits: limits, now: self.start)
        _ = machine.webSocketAttached(now: self.at(10))
        _ = machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(20))
        #expect(machine.getReceived(now: self.at(250)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(350))])
        #expect(
            machine.heartbeatTimerFired(now: self.at(300))
                == [.scheduleHeartbeat(self.at(500)), .completePendingGet([.ping(probe: false)])]
        )
        _ = machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(310))
        #expect(
            machine.webSocketReceived(.success(.pong(probe: false)), from: .main, now: self.at(320))
                == [.scheduleHeartbeat(self.at(620))]
        )
    }

    @Test func closingDuringTheUpgradeEndsTheParkedGetAndIgnoresWhatFollows() {
        var machine = self.upgradingMachine(probed: true)
        _ = machine.getReceived(now: self.at(30))
        #expect(machine.closeByApplication(.serverClose) == [.completePendingGet([.close]), .close(.serverClose)])
        #expect(machine.probeNoopTimerFired(now: self.at(130)) == [])
        #expect(machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(140)) == [])
        #expect(machine.probeAnswerWritten(now: self.at(141)) == [])
        #expect(machine.getReceived(now: self.at(150)) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func getLostDuringTheUpgradeClosesTheSession() {
        var aborted = self.upgradingMachine(probed: true)
        _ = aborted.getReceived(now: self.at(30))
        #expect(aborted.pendingGetAborted() == [.close(.transportError)])
        // Packets handed to a GET whose connection had gone are lost: closed, mid-upgrade too.
        var undelivered = self.upgradingMachine(probed: true)
        _ = undelivered.getReceived(now: self.at(30))
        let packet = self.message("lost")
        #expect(self.enqueue(&undelivered, packet) == .completePendingGet([packet]))
        #expect(undelivered.getAnswerUndelivered() == [.close(.transportError)])
    }

    @Test func secondGetDuringTheUpgradeClosesTheSession() {
        var machine = self.upgradingMachine(probed: true)
        _ = machine.getReceived(now: self.at(30))
        #expect(
            machine.getReceived(now: self.at(31))
                == [.replyToGet(.reject(.badRequest)), .completePendingGet([.close]), .close(.transportError)]
        )
    }

    @Test func upgradeWithoutProbeEndsAGetParkedBeforeTheAttachWithANoop() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.getReceived(now: self.at(5))
        _ = machine.webSocketAttached(now: self.at(10))
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(20))
                == [.cancelUpgradeTimeout, .completePendingGet([.noop]), .promoteProbe]
        )
    }

    // MARK: one slow-client limit for both transports

    @Test func slowWebSocketClientIsClosedByTheSameLimit() {
        var machine = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(self.enqueue(&machine, self.message("a"), cost: 60) == .writeWebSocket)
        #expect(machine.bufferedBytes == 60)
        // Handed to the socket: no longer queued here.
        machine.webSocketOutboxFlushed()
        #expect(machine.bufferedBytes == 0)
        #expect(self.enqueue(&machine, self.message("b"), cost: 60) == .writeWebSocket)
        #expect(self.enqueue(&machine, self.message("c"), cost: 60) == .run([.close(.slowClient)]))
        #expect(!machine.isOpen)
        #expect(machine.bufferedBytes == 0)
        #expect(self.enqueue(&machine, self.message("d"), cost: 1) == .none)
    }

    @Test func webSocketControlFramesCountTowardsTheLimit() {
        var machine = Machine(transport: .websocket, limits: self.limits, now: self.start)
        _ = machine.heartbeatTimerFired(now: self.at(25_000))
        // `2` in a two-byte-header text frame.
        #expect(machine.bufferedBytes == 3)
        #expect(self.enqueue(&machine, self.message("a"), cost: 97) == .writeWebSocket)
        #expect(self.enqueue(&machine, self.message("b"), cost: 1) == .run([.close(.slowClient)]))
    }

    @Test func pollingBufferHandedToTheWebSocketStillCountsUntilFlushed() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        let packet = self.message("queued")
        #expect(self.enqueue(&machine, packet, cost: 7) == .none)
        _ = machine.webSocketAttached(now: self.at(10))
        _ = machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(20))
        #expect(machine.bufferedBytes == WebSocketFrameBytes.frameLength(for: packet))
        #expect(machine.bufferedBytes == WebSocketFrameBytes.frame(for: packet).readableBytes)
        machine.webSocketOutboxFlushed()
        #expect(machine.bufferedBytes == 0)
    }

    @Test func slowPollingClientWithAParkedGetGetsTheClosePacket() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(1)) == [.replyToGet(.park)])
        #expect(
            self.enqueue(&machine, self.message("huge"), cost: 101)
                == .run([.completePendingGet([.close]), .close(.slowClient)])
        )
    }
}
