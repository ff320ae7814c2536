import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayEngineIO

/// Drives the pure session state machine with explicit times (a test clock: no waiting).
@Suite struct EngineIOSessionStateMachineTests {
    typealias Machine = EngineIOSessionStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let limits = Machine.Limits(
        pingInterval: .milliseconds(300),
        pingTimeout: .milliseconds(200),
        upgradeTimeout: .seconds(10),
        maxBufferedBytes: 100,
        allowUpgrades: true
    )

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }
    func text(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

    @Test func pollingHeartbeatPingsAndAcceptsPong() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.initialHeartbeatDeadline == self.at(300))
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        // Early wake-up: re-arm only.
        #expect(machine.heartbeatTimerFired(now: self.at(299)) == [.scheduleHeartbeat(self.at(300))])
        #expect(
            machine.heartbeatTimerFired(now: self.at(300))
                == [.scheduleHeartbeat(self.at(500)), .completePendingGet([.ping(probe: false)])]
        )
        #expect(
            machine.postReceived(.success([.pong(probe: false)]), now: self.at(350)) == [
                .scheduleHeartbeat(self.at(650)), .replyToPost(nil),
            ]
        )
        // The timeout deadline passed, but the pong re-armed the ping instead.
        #expect(machine.heartbeatTimerFired(now: self.at(650)) == [.scheduleHeartbeat(self.at(850))])
        #expect(machine.isOpen)
    }

    @Test func pingTimeoutClosesAtOnceEvenWithAQueuedPing() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.heartbeatTimerFired(now: self.at(300)) == [.scheduleHeartbeat(self.at(500))])
        #expect(machine.bufferedBytes == 1)
        #expect(machine.heartbeatTimerFired(now: self.at(500)) == [.close(.pingTimeout)])
        #expect(!machine.isOpen)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func webSocketHeartbeat() {
        var machine = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(
            machine.heartbeatTimerFired(now: self.at(300))
                == [.scheduleHeartbeat(self.at(500)), .writeWebSocket([.ping(probe: false)])]
        )
        #expect(
            machine.webSocketReceived(.success(.pong(probe: false)), from: .main, now: self.at(400)) == [
                .scheduleHeartbeat(self.at(700))
            ]
        )
        #expect(
            machine.heartbeatTimerFired(now: self.at(700)) == [
                .scheduleHeartbeat(self.at(900)), .writeWebSocket([.ping(probe: false)]),
            ]
        )
        #expect(machine.heartbeatTimerFired(now: self.at(900)) == [.close(.pingTimeout)])
    }

    @Test func duplicateGetClosesTheSession() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        #expect(
            machine.getReceived(now: self.start)
                == [.replyToGet(.reject(.badRequest)), .completePendingGet([.close]), .close(.transportError)]
        )
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func duplicateGetsAreOrderedByArrival() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        // The later GET was handled first (it did not have to hop event loops).
        #expect(machine.getReceived(now: self.at(6), arrival: self.at(5)) == [.replyToGet(.park)])
        #expect(
            machine.getReceived(now: self.at(7), arrival: self.at(0))
                == [.replyToGet(.packets([.close])), .rejectPendingGet(.badRequest), .close(.transportError)]
        )
    }

    @Test func bufferedMessagesGoOutInOneGet() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        for word in ["test1", "test2", "test3"] {
            #expect(machine.enqueue([.message(self.text(word))], pollingCost: 6, webSocketCost: 6) == .none)
        }
        #expect(
            machine.getReceived(now: self.start)
                == [
                    .replyToGet(
                        .packets([
                            .message(self.text("test1")), .message(self.text("test2")), .message(self.text("test3")),
                        ])
                    )
                ]
        )
        #expect(machine.bufferedBytes == 0)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        #expect(
            machine.enqueue([.message(self.text("x"))], pollingCost: 2, webSocketCost: 2)
                == .completePendingGet([.message(self.text("x"))])
        )
    }

    @Test func pollingResponsesCarryAtMostTheConfiguredPacketCount() {
        var limits = self.limits
        limits.maxBufferedBytes = 10_000
        limits.maxPacketsPerPollingResponse = 3
        var machine = Machine(transport: .polling, limits: limits, now: self.start)
        let messages = (0..<7).map { EngineIOPacket.message(self.text("m\($0)")) }
        for message in messages {
            #expect(machine.enqueue([message], pollingCost: 10, webSocketCost: 10) == .none)
        }
        #expect(machine.bufferedBytes == 70)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.packets(Array(messages[0..<3])))])
        #expect(machine.bufferedBytes == 40)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.packets(Array(messages[3..<6])))])
        #expect(machine.bufferedBytes == 10)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.packets([messages[6]]))])
        #expect(machine.bufferedBytes == 0)
        // A parked GET is completed with one batch; the rest waits for the next GET.
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        let attachment = EngineIOPacket.binaryMessage(ByteBuffer(bytes: [1, 2, 3]))
        let group = [messages[0], attachment, attachment, attachment]
        #expect(machine.enqueue(group, pollingCost: 40, webSocketCost: 40) == .completePendingGet(Array(group[0..<3])))
        // The packet left behind keeps its share of the 40 bytes (its record length, `bAQID`).
        #expect(machine.bufferedBytes == 5)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.packets([attachment]))])
        #expect(machine.bufferedBytes == 0)
    }

    @Test func packetLimitDoesNotSplitTheUpgradeHandOver() {
        var limits = self.limits
        limits.maxBufferedBytes = 10_000
        limits.maxPacketsPerPollingResponse = 2
        var machine = Machine(transport: .polling, limits: limits, now: self.start)
        let messages = (0..<5).map { EngineIOPacket.message(self.text("m\($0)")) }
        for message in messages { _ = machine.enqueue([message], pollingCost: 3, webSocketCost: 3) }
        #expect(machine.webSocketAttached(now: self.start) == [.scheduleUpgradeTimeout(self.start + .seconds(10))])
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.start) == [
                .writeProbe(.pong(probe: true))
            ]
        )
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.start)
                == [.cancelUpgradeTimeout, .promoteProbe, .writeWebSocket(messages)]
        )
        // The frames count towards the slow-client limit until the session hands them to the socket.
        #expect(machine.bufferedBytes == messages.reduce(0) { $0 + WebSocketFrameBytes.frameLength(for: $1) })
        machine.webSocketOutboxFlushed()
        #expect(machine.bufferedBytes == 0)
    }

    @Test func postDeliversAndClientCloseEndsPendingGetWithNoop() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(
            machine.postReceived(
                .success([.message(self.text("a")), .binaryMessage(ByteBuffer(bytes: [1]))]),
                now: self.start
            )
                == [.deliver(.text(self.text("a"))), .deliver(.binary(ByteBuffer(bytes: [1]))), .replyToPost(nil)]
        )
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        // The GET's answer waits for the POST's (the session releases it when the POST's answer is written).
        #expect(
            machine.postReceived(.success([.close]), now: self.start)
                == [.replyToPost(nil), .completePendingGet([.noop], holdUntilPostAnswered: true), .close(.clientClose)]
        )
        #expect(machine.postAnswerWritten() == [.releaseGetAnswerHeldForPost])
    }

    @Test func overlappingPostsCloseTheSession() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.postStarted() == [])
        #expect(machine.postReceived(.success([.noop]), now: self.start) == [.replyToPost(nil)])
        #expect(machine.postStarted() == [])
        #expect(machine.postStarted() == [.close(.transportError)])
        #expect(machine.postReceived(.success([.noop]), now: self.start) == [.replyToPost(.unknownSession)])
    }

    @Test func clientCloseWithoutParkedGetLingers() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(
            machine.postReceived(.success([.close]), now: self.start)
                == [.replyToPost(nil), .lingerForInFlightGet, .close(.clientClose)]
        )
    }

    @Test func invalidPostClosesTheSession() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        let error = EngineIOCodecError(code: .unknownPacketType, context: "test")
        #expect(
            machine.postReceived(.failure(error), now: self.start) == [.replyToPost(.badRequest), .close(.parseError)]
        )
        var other = Machine(transport: .polling, limits: self.limits, now: self.start)
        let tooLarge = EngineIOCodecError(code: .payloadTooLarge, context: "test")
        #expect(
            other.postReceived(.failure(tooLarge), now: self.start) == [
                .replyToPost(.payloadTooLarge), .close(.payloadTooLarge),
            ]
        )
    }

    @Test func slowPollingClientIsClosed() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.enqueue([.message(self.text("x"))], pollingCost: 60, webSocketCost: 60) == .none)
        #expect(
            machine.enqueue([.message(self.text("y"))], pollingCost: 60, webSocketCost: 60)
                == .run([.close(.slowClient)])
        )
        #expect(!machine.isOpen)
    }

    @Test func upgradeWithProbe() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.enqueue([.message(self.text("queued"))], pollingCost: 7, webSocketCost: 7) == .none)
        #expect(machine.webSocketAttached(now: self.at(10)) == [.scheduleUpgradeTimeout(self.at(10_010))])
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(20))
                == [.writeProbe(.pong(probe: true))]
        )
        // Queued packets still go over polling during the upgrade (as with the reference server).
        #expect(machine.getReceived(now: self.at(21)) == [.replyToGet(.packets([.message(self.text("queued"))]))])
        // A GET with nothing to carry waits briefly for the `5`, then gets a noop so the client can pause polling.
        #expect(machine.getReceived(now: self.at(22)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(122))])
        #expect(machine.probeNoopTimerFired(now: self.at(122)) == [.completePendingGet([.noop])])
        #expect(machine.probeNoopTimerFired(now: self.at(123)) == [])
        #expect(machine.enqueue([.message(self.text("later"))], pollingCost: 6, webSocketCost: 7) == .none)
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(130))
                == [.cancelUpgradeTimeout, .promoteProbe, .writeWebSocket([.message(self.text("later"))])]
        )
        #expect(machine.transport == .websocket)
        // (Past the window in which a refusal is ordered behind the probe answer.)
        #expect(machine.getReceived(now: self.at(1_130)) == [.replyToGet(.reject(.badRequest))])
        #expect(
            machine.postReceived(.success([.message(self.text("x"))]), now: self.at(40)) == [.replyToPost(.badRequest)]
        )
        #expect(machine.enqueue([.message(self.text("x"))], pollingCost: 2, webSocketCost: 2) == .writeWebSocket)
        #expect(
            machine.webSocketReceived(.success(.message(self.text("hi"))), from: .main, now: self.at(50)) == [
                .deliver(.text(self.text("hi")))
            ]
        )
        // A second WebSocket with the same sid after the upgrade is refused.
        #expect(machine.webSocketAttached(now: self.at(60)) == [.rejectWebSocket])
        #expect(machine.isOpen)
    }

    @Test func getRacingTheUpgradePacketGets400() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.webSocketAttached(now: self.start)
        _ = machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.start)
        #expect(machine.getReceived(now: self.at(1)) == [.replyToGet(.park), .scheduleProbeNoop(self.at(101))])
        // `3probe` is not written yet: the refusal waits for it.
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(2))
                == [
                    .cancelUpgradeTimeout, .rejectPendingGet(.badRequest, deferral: .untilProbeAnswered), .promoteProbe,
                ]
        )
        #expect(machine.probeNoopTimerFired(now: self.at(101)) == [])
        #expect(machine.probeAnswerWritten(now: self.at(3)) == [.releaseRefusalsHeldForProbe(at: self.at(28))])
    }

    @Test func getBetweenAttachAndProbeWaitsForTheUpgrade() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.webSocketAttached(now: self.start)
        #expect(machine.getReceived(now: self.at(1)) == [.replyToGet(.park)])
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(2))
                == [.writeProbe(.pong(probe: true)), .scheduleProbeNoop(self.at(102))]
        )
        #expect(machine.probeAnswerWritten(now: self.at(2)) == [])
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(3))
                == [
                    .cancelUpgradeTimeout, .rejectPendingGet(.badRequest, deferral: .until(self.at(27))), .promoteProbe,
                ]
        )
    }

    @Test func getAfterTheTimeoutDeadlineClosesEvenBeforeTheTimerRuns() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        // The ping timer ran 3 ms late; the timeout still counts from when the ping was due.
        #expect(machine.heartbeatTimerFired(now: self.at(303)) == [.scheduleHeartbeat(self.at(500))])
        #expect(
            machine.getReceived(now: self.at(500)) == [.replyToGet(.reject(.unknownSession)), .close(.pingTimeout)]
        )
    }

    @Test func probeEndsAPendingGetWithNoop() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
        _ = machine.webSocketAttached(now: self.start)
        #expect(
            machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.start)
                == [.writeProbe(.pong(probe: true)), .completePendingGet([.noop])]
        )
        // A ping during the probe waits in the buffer and goes to the WebSocket after the upgrade.
        #expect(machine.heartbeatTimerFired(now: self.at(300)) == [.scheduleHeartbeat(self.at(500))])
        #expect(
            machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(310))
                == [.cancelUpgradeTimeout, .promoteProbe, .writeWebSocket([.ping(probe: false)])]
        )
    }

    @Test func failedUpgradeFallsBackToPolling() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.webSocketAttached(now: self.start)
        #expect(
            machine.webSocketReceived(.success(.message(self.text("x"))), from: .probe, now: self.start) == [
                .cancelUpgradeTimeout, .closeProbe,
            ]
        )
        #expect(machine.transport == .polling)
        _ = machine.webSocketAttached(now: self.start)
        #expect(machine.upgradeTimeoutFired() == [.cancelUpgradeTimeout, .closeProbe])
        _ = machine.webSocketAttached(now: self.start)
        #expect(machine.webSocketClosed(role: .probe) == [.cancelUpgradeTimeout, .closeProbe])
        #expect(machine.isOpen)
        #expect(machine.getReceived(now: self.start) == [.replyToGet(.park)])
    }

    @Test func webSocketInvalidPacketOrCloseEndsTheSession() {
        var machine = Machine(transport: .websocket, limits: self.limits, now: self.start)
        let error = EngineIOCodecError(code: .unknownPacketType, context: "test")
        #expect(machine.webSocketReceived(.failure(error), from: .main, now: self.start) == [.close(.parseError)])
        var other = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(other.webSocketReceived(.success(.close), from: .main, now: self.start) == [.close(.clientClose)])
        var third = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(third.webSocketClosed(role: .main) == [.close(.transportClose)])
        #expect(third.close(.serverClose) == [])
    }

    @Test func upgradeRefusedWhenDisabled() {
        var limits = self.limits
        limits.allowUpgrades = false
        var machine = Machine(transport: .polling, limits: limits, now: self.start)
        #expect(machine.webSocketAttached(now: self.start) == [.rejectWebSocket])
    }
}
