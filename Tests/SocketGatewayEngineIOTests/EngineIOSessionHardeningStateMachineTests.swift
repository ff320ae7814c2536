import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayEngineIO

/// The session state machine under the failures an attacker-style review found, at synthetic times.
@Suite struct EngineIOSessionHardeningStateMachineTests {
    typealias Machine = EngineIOSessionStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let limits = Machine.Limits(
        pingInterval: .seconds(25),
        pingTimeout: .seconds(20),
        upgradeTimeout: .seconds(10),
        maxBufferedBytes: 1000,
        allowUpgrades: true
    )

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }
    func text(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

    @Test func answerHandedToAGetWhoseConnectionIsGoneClosesTheSession() {
        // The lost-reply race: the GET's connection closed, but the POST's answer reached the session first and
        // was handed to that GET. The abort report then finds no parked GET; the failed write must close.
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.park)])
        #expect(
            machine.postReceived(.success([.message(self.text("40/zzlive,"))]), now: self.at(60))
                == [.deliver(.text(self.text("40/zzlive,"))), .replyToPost(nil)]
        )
        let reply = EngineIOPacket.message(self.text("40/zzlive,{\"sid\":\"x\"}"))
        #expect(
            machine.enqueue([reply], pollingCost: 10, webSocketCost: 10)
                == .completePendingGet([reply], holdUntilPostAnswered: true)
        )
        // Too late: the GET was answered already.
        #expect(machine.pendingGetAborted() == [])
        #expect(machine.isOpen)
        // The write found the connection gone.
        #expect(machine.getAnswerUndelivered() == [.close(.transportError)])
        #expect(!machine.isOpen)
        #expect(machine.getReceived(now: self.at(100)) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func undeliveredAnswerEndsANewlyParkedGetWithTheClosePacket() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.park)])
        #expect(
            machine.enqueue([.message(self.text("a"))], pollingCost: 2, webSocketCost: 2)
                == .completePendingGet([.message(self.text("a"))])
        )
        // The client's next GET parks before the failure report comes back.
        #expect(machine.getReceived(now: self.at(20)) == [.replyToGet(.park)])
        #expect(machine.getAnswerUndelivered() == [.completePendingGet([.close]), .close(.transportError)])
    }

    @Test func getAbortedWhileParkedClosesWithATransportError() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.park)])
        #expect(machine.pendingGetAborted() == [.close(.transportError)])
        // Nothing is handed to a GET after that.
        #expect(machine.enqueue([.message(self.text("late"))], pollingCost: 5, webSocketCost: 5) == .none)
    }

    @Test func undeliveredAnswerAfterTheUpgradeIsIgnored() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.webSocketAttached(now: self.at(10))
        _ = machine.webSocketReceived(.success(.ping(probe: true)), from: .probe, now: self.at(20))
        _ = machine.webSocketReceived(.success(.upgrade), from: .probe, now: self.at(30))
        #expect(machine.transport == .websocket)
        #expect(machine.getAnswerUndelivered() == [])
        #expect(machine.isOpen)
    }

    @Test func applicationCloseOverPollingOwesTheNextGetTheClosePacket() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        _ = machine.enqueue([.message(self.text("queued"))], pollingCost: 7, webSocketCost: 7)
        #expect(machine.closeByApplication(.parseError) == [.lingerWithClosePacket, .close(.parseError)])
        // The first GET that still reaches the session gets the close packet; after that the sid is unknown.
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.packets([.close]))])
        #expect(machine.getReceived(now: self.at(20)) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func applicationCloseWithAParkedGetAnswersIt() {
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(machine.getReceived(now: self.at(10)) == [.replyToGet(.park)])
        #expect(machine.closeByApplication(.serverClose) == [.completePendingGet([.close]), .close(.serverClose)])
        #expect(machine.getReceived(now: self.at(20)) == [.replyToGet(.reject(.unknownSession))])
    }

    @Test func internalClosesAndWebSocketClosesOweNothing() {
        // A ping timeout must still answer a late GET with 400 (the protocol test suite checks it).
        var polling = Machine(transport: .polling, limits: self.limits, now: self.start)
        #expect(polling.close(.pingTimeout) == [.close(.pingTimeout)])
        #expect(polling.getReceived(now: self.at(10)) == [.replyToGet(.reject(.unknownSession))])
        var webSocket = Machine(transport: .websocket, limits: self.limits, now: self.start)
        #expect(webSocket.closeByApplication(.parseError) == [.close(.parseError)])
    }

    @Test func slowPollingClientBufferIsReleasedOnClose() {
        // Server-side sends with no GET to take them: closed at the limit, buffer emptied.
        var machine = Machine(transport: .polling, limits: self.limits, now: self.start)
        var action = Machine.EnqueueAction.none
        for _ in 0..<11 where action == .none {
            let packet = EngineIOPacket.message(self.text(String(repeating: "x", count: 99)))
            action = machine.enqueue([packet], pollingCost: 100, webSocketCost: 100)
        }
        #expect(action == .run([.close(.slowClient)]))
        #expect(machine.bufferedBytes == 0)
        #expect(!machine.isOpen)
    }
}
