import NIOCore
import SocketGatewayCore

/// The Engine.IO session logic without I/O: transports, upgrade, heartbeat, polling buffer, the slow-client limit,
/// and the order in which answers to the client's HTTP requests may leave.
///
/// Each input is a `mutating func` returning what the session must do; `EngineIOSession` runs the actions and holds
/// the requests (a parked GET, answers held back), but decides nothing. Time comes in as `now`, so tests drive the
/// heartbeat, the upgrade and the ordering rules without waiting.
///
/// The session's lifecycle is one enum, `State`, whose cases carry only what is meaningful in them (a parked GET
/// exists only while polling carries the session, the upgrade's progress only while upgrading, ...). Three things
/// span states and stay beside it: the heartbeat, the outbound queue and its byte count, and the answer to the
/// last POST (which may still be on its way when the session upgrades or closes).
struct EngineIOSessionStateMachine {
    struct Limits: Equatable {
        var pingInterval: TimeAmount
        var pingTimeout: TimeAmount
        var upgradeTimeout: TimeAmount
        /// The slow-client limit: bytes queued for one client (the polling buffer, or WebSocket frames not yet
        /// handed to the socket) beyond which the session closes with `slowClient`.
        var maxBufferedBytes: Int
        var allowUpgrades: Bool
        /// How long a GET that arrives after the probe waits before it is answered with a noop (the reference
        /// server's 100 ms "check" that lets the client pause polling and send `5`).
        var probeNoopDelay: TimeAmount = .milliseconds(100)
        /// The most packets one polling GET response carries; the rest wait for the next GET.
        var maxPacketsPerPollingResponse: Int = 16
        /// How long after an upgrade a GET refused because of it is still ordered behind the probe answer.
        var postUpgradeOrderingWindow: TimeAmount = .seconds(1)
        /// The pause between `3probe` being written and a GET refused because of the upgrade being answered: the
        /// client reads its two sockets in no particular order, and sent the GET after the probe.
        var probeOrderingGrace: TimeAmount = .milliseconds(25)
    }

    enum Transport: Equatable { case polling, websocket }

    /// Which WebSocket connection a frame came from.
    enum WebSocketRole: Equatable { case main, probe, other }

    /// The session's lifecycle.
    private enum State {
        /// Long-polling carries the session.
        case polling(Polling)
        /// Long-polling still carries the session; a WebSocket is attached and may take over.
        case upgrading(Polling, Upgrade)
        /// The WebSocket carries the session; `upgrade` is set when it took over from long-polling.
        case webSocket(upgrade: CompletedUpgrade?)
        case closed(Closed)
    }

    /// The HTTP requests of a long-polling session.
    private struct Polling {
        /// The long-polling GET parked until there is something to send.
        var parkedGet: ParkedGet?
        /// A POST has started (head received) and not yet been handled.
        var postInProgress = false
    }

    private struct ParkedGet {
        /// When the request was read.
        var arrival: NIODeadline
        /// The client sent it after attaching its probe WebSocket: if the client's `5` overtakes it, it is refused.
        var sentDuringUpgrade: Bool
        /// After the probe: when it is answered with a noop so the client can pause polling and send `5`.
        var noopDeadline: NIODeadline?
    }

    private enum Upgrade {
        /// The WebSocket is attached; the client has not sent `2probe` yet.
        case awaitingProbe
        /// `3probe` was handed to the WebSocket; waiting for `5`.
        case probed(ProbeAnswer)
    }

    /// Where the `3probe` answer is.
    private enum ProbeAnswer {
        /// Handed to the WebSocket, not yet written. `refusalsHeld`: GET refusals wait for it.
        case inFlight(refusalsHeld: Bool)
        case written(at: NIODeadline)
    }

    private struct CompletedUpgrade {
        /// When the `5` arrived.
        var at: NIODeadline
        /// nil when the client upgraded without a probe.
        var probeAnswer: ProbeAnswer?
    }

    private struct Closed {
        /// The transport that carried the session when it closed.
        var transport: Transport
        /// Closed by the application over polling with no GET parked: the next GET that reaches this session
        /// still gets the close packet (it may get here before the endpoint forgets the session).
        var owesClosePacket: Bool
    }

    /// The answer to the last POST, which a GET answer must not overtake.
    private enum PostAnswer {
        case none
        /// Handed to the POST's connection, not yet written. `getAnswerHeld`: a GET answer waits for it.
        case inFlight(getAnswerHeld: Bool)
    }

    private enum Heartbeat: Equatable {
        case waitingToPing(NIODeadline)
        case awaitingPong(NIODeadline)
    }

    /// When a refused GET may be answered.
    enum Deferral: Equatable {
        /// Once `3probe` has been written (`probeAnswerWritten`), and the session says when
        /// (`releaseRefusalsHeldForProbe`).
        case untilProbeAnswered
        /// At this time.
        case until(NIODeadline)
    }

    /// What to do with a long-polling GET.
    enum GetReply: Equatable {
        /// Answer 200 with these packets; when `holdUntilPostAnswered`, only once `releaseGetAnswerHeldForPost`.
        case packets([EngineIOPacket], holdUntilPostAnswered: Bool = false)
        /// Keep the request until there is something to send.
        case park
        /// Answer 400 with this Engine.IO error.
        case reject(EngineIOHTTPError)
        /// Answer 400 with this error later: the client must see `3probe` first.
        case rejectDeferred(EngineIOHTTPError, Deferral)
    }

    enum Action: Equatable {
        /// (Re)arm the single heartbeat timer.
        case scheduleHeartbeat(NIODeadline)
        case scheduleUpgradeTimeout(NIODeadline)
        /// Cancel the upgrade timeout and the probe noop timer.
        case cancelUpgradeTimeout
        /// Arm the timer that answers a GET parked during the probe with a noop (replacing an earlier one).
        case scheduleProbeNoop(NIODeadline)
        /// Answer the parked GET with an error, at once or deferred (it raced the client's `5`).
        case rejectPendingGet(EngineIOHTTPError, deferral: Deferral? = nil)
        /// Answer the parked GET with these packets (as one payload); when `holdUntilPostAnswered`, only once
        /// `releaseGetAnswerHeldForPost`.
        case completePendingGet([EngineIOPacket], holdUntilPostAnswered: Bool = false)
        /// Send the GET answer held for the POST's answer, which has now been written.
        case releaseGetAnswerHeldForPost
        /// Send the GET refusals held until `3probe` was written, at this time.
        case releaseRefusalsHeldForProbe(at: NIODeadline)
        /// Answer the request being handled.
        case replyToGet(GetReply)
        /// Answer the POST being handled: `ok`, or an error status. Report with `postAnswerWritten` when it is out.
        case replyToPost(EngineIOHTTPError?)
        /// Write packets to the main WebSocket (the flush happens once per tick; report it with
        /// `webSocketOutboxFlushed`).
        case writeWebSocket([EngineIOPacket])
        /// Write a packet to the probing WebSocket at once; report with `probeAnswerWritten` when it is out.
        case writeProbe(EngineIOPacket)
        /// The probing WebSocket becomes the session's transport.
        case promoteProbe
        /// Close the probing WebSocket (the session stays).
        case closeProbe
        /// Close a WebSocket that may not join this session (after its handshake).
        case rejectWebSocket
        /// Hand a message to the application.
        case deliver(EngineIOMessage)
        /// Tear down: cancel timers, close transports, notify the application.
        case close(EngineIOCloseReason)
        /// The client closed over polling with no GET parked here: its in-flight GET (sent alongside the close)
        /// may still arrive and should end with a noop rather than a 400.
        case lingerForInFlightGet
        /// The application closed the polling session with no GET parked: the client's next GET gets the close
        /// packet (as the reference server's orderly close does), not `400 Session ID unknown`.
        case lingerWithClosePacket
    }

    /// What to do after queueing an outbound message (the common cases need no array).
    enum EnqueueAction: Equatable {
        case none
        /// Queue the message's frames for the WebSocket.
        case writeWebSocket
        /// Answer the parked GET with these packets (see `Action.completePendingGet`).
        case completePendingGet([EngineIOPacket], holdUntilPostAnswered: Bool = false)
        /// Run these actions (the message is not written: e.g. the client is too slow and the session closes).
        case run([Action])
    }

    private var state: State
    private var heartbeat: Heartbeat
    private var postAnswer = PostAnswer.none
    /// Packets waiting for a GET (polling and upgrading only; handed to the WebSocket when the upgrade completes).
    private var buffer: [EngineIOPacket] = []
    /// What each buffered packet counts towards `bufferedBytes` (parallel to `buffer`).
    private var bufferCosts: [Int] = []
    /// Bytes queued for the client, checked against `Limits.maxBufferedBytes`: the polling buffer, or, over
    /// WebSocket, frames queued since the session last handed its outbox to the socket.
    private(set) var bufferedBytes = 0
    let limits: Limits

    init(transport: Transport, limits: Limits, now: NIODeadline) {
        self.limits = limits
        self.state = transport == .polling ? .polling(Polling()) : .webSocket(upgrade: nil)
        self.heartbeat = .waitingToPing(now + limits.pingInterval)
    }

    var isOpen: Bool {
        if case .closed = self.state { return false }
        return true
    }

    /// The transport carrying the session (the last one, once closed).
    var transport: Transport {
        switch self.state {
        case .polling, .upgrading: .polling
        case .webSocket: .websocket
        case .closed(let closed): closed.transport
        }
    }

    /// Whether a long-polling GET is parked here.
    var hasPendingGet: Bool {
        switch self.state {
        case .polling(let polling), .upgrading(let polling, _): polling.parkedGet != nil
        case .webSocket, .closed: false
        }
    }

    /// The first deadline to arm after the handshake.
    var initialHeartbeatDeadline: NIODeadline {
        switch self.heartbeat {
        case .waitingToPing(let deadline), .awaitingPong(let deadline): deadline
        }
    }

    // MARK: heartbeat

    mutating func heartbeatTimerFired(now: NIODeadline) -> [Action] {
        guard self.isOpen else { return [] }
        switch self.heartbeat {
        case .waitingToPing(let deadline):
            guard now >= deadline else { return [.scheduleHeartbeat(deadline)] }
            // Count the timeout from when the ping was due, so timer latency does not stretch it (unless the
            // loop was stalled, in which case the client gets its full pingTimeout from now).
            let base = now - deadline < .milliseconds(10) ? deadline : now
            let timeout = base + self.limits.pingTimeout
            self.heartbeat = .awaitingPong(timeout)
            var actions = self.send(.ping(probe: false))
            actions.insert(.scheduleHeartbeat(timeout), at: 0)
            return actions
        case .awaitingPong(let deadline):
            guard now >= deadline else { return [.scheduleHeartbeat(deadline)] }
            return self.close(.pingTimeout)
        }
    }

    private mutating func pongReceived(now: NIODeadline) -> [Action] {
        guard case .awaitingPong = self.heartbeat else { return [] }
        let next = now + self.limits.pingInterval
        self.heartbeat = .waitingToPing(next)
        return [.scheduleHeartbeat(next)]
    }

    // MARK: outbound

    /// Queues a control packet on the current transport.
    private mutating func send(_ packet: EngineIOPacket) -> [Action] {
        switch self.state {
        case .webSocket:
            self.bufferedBytes += WebSocketFrameBytes.frameLength(for: packet)
            return [.writeWebSocket([packet])]
        case .polling, .upgrading:
            self.appendToBuffer(packet, cost: EngineIOPollingPayload.encodedRecordLength(packet))
            return self.flushPollingIfPossible()
        case .closed:
            return []
        }
    }

    /// Answers the parked GET with queued packets. While upgrading too: as with the reference server, packets flow
    /// over polling until the client pauses it (it stops sending GETs), then wait for the WebSocket.
    private mutating func flushPollingIfPossible() -> [Action] {
        guard !self.buffer.isEmpty, self.takeParkedGet() != nil else { return [] }
        return self.answerParkedGet(self.takePollingBatch())
    }

    /// Forgets the parked GET (the caller answers it).
    private mutating func takeParkedGet() -> ParkedGet? {
        switch self.state {
        case .polling(var polling):
            guard let parked = polling.parkedGet else { return nil }
            polling.parkedGet = nil
            self.state = .polling(polling)
            return parked
        case .upgrading(var polling, let upgrade):
            guard let parked = polling.parkedGet else { return nil }
            polling.parkedGet = nil
            self.state = .upgrading(polling, upgrade)
            return parked
        case .webSocket, .closed:
            return nil
        }
    }

    /// The actions answering the (just taken) parked GET with `packets`, held behind a POST answer in flight.
    private mutating func answerParkedGet(_ packets: [EngineIOPacket]) -> [Action] {
        let (release, hold) = self.holdBehindPostAnswer()
        let answer = Action.completePendingGet(packets, holdUntilPostAnswered: hold)
        return release ? [.releaseGetAnswerHeldForPost, answer] : [answer]
    }

    /// A GET answer is about to be given: whether it must wait for the POST answer in flight, and whether an
    /// earlier held answer must be released first (only a misbehaving client has two; neither is left hanging).
    private mutating func holdBehindPostAnswer() -> (releaseEarlier: Bool, hold: Bool) {
        guard case .inFlight(let held) = self.postAnswer else { return (false, false) }
        self.postAnswer = .inFlight(getAnswerHeld: true)
        return (held, true)
    }

    private mutating func appendToBuffer(_ packet: EngineIOPacket, cost: Int) {
        self.buffer.append(packet)
        self.bufferCosts.append(cost)
        self.bufferedBytes += cost
    }

    /// Takes the packets for one polling response: at most `maxPacketsPerPollingResponse` (clients such as
    /// python-engineio refuse longer payloads), the rest stay queued for the next GET.
    private mutating func takePollingBatch() -> [EngineIOPacket] {
        let limit = max(self.limits.maxPacketsPerPollingResponse, 1)
        guard self.buffer.count > limit else { return self.takeBuffer() }
        let packets = Array(self.buffer[..<limit])
        self.bufferedBytes -= self.bufferCosts[..<limit].reduce(0, +)
        self.buffer.removeFirst(limit)
        self.bufferCosts.removeFirst(limit)
        return packets
    }

    /// Takes every queued packet.
    private mutating func takeBuffer() -> [EngineIOPacket] {
        let packets = self.buffer
        self.buffer.removeAll(keepingCapacity: true)
        self.bufferCosts.removeAll(keepingCapacity: true)
        self.bufferedBytes = 0
        return packets
    }

    /// Queues application packets. For WebSocket the caller writes its (pre-encoded) frames itself.
    /// - Parameters:
    ///   - packets: the packets, used only for the polling buffer.
    ///   - pollingCost: what they count towards the slow-client limit in the polling buffer.
    ///   - webSocketCost: what their frames count towards it over WebSocket.
    mutating func enqueue(
        _ packets: @autoclosure () -> [EngineIOPacket],
        pollingCost: Int,
        webSocketCost: Int
    ) -> EnqueueAction {
        switch self.state {
        case .closed:
            return .none
        case .webSocket:
            self.bufferedBytes += webSocketCost
            if self.bufferedBytes > self.limits.maxBufferedBytes { return .run(self.close(.slowClient)) }
            return .writeWebSocket
        case .polling, .upgrading:
            let packets = packets()
            if packets.count == 1 {
                self.appendToBuffer(packets[0], cost: pollingCost)
            } else if !packets.isEmpty {
                // Spread the cost over the packets (record lengths for the later ones, the rest to the first),
                // so a response cut between them keeps the accounting exact.
                let base = self.buffer.count
                self.buffer.append(contentsOf: packets)
                self.bufferCosts.append(contentsOf: repeatElement(0, count: packets.count))
                var remaining = pollingCost
                for offset in packets.indices.dropFirst().reversed() {
                    let cost = min(EngineIOPollingPayload.encodedRecordLength(packets[offset]), remaining)
                    self.bufferCosts[base + offset - packets.startIndex] = cost
                    remaining -= cost
                }
                self.bufferCosts[base] = remaining
                self.bufferedBytes += pollingCost
            }
            if self.bufferedBytes > self.limits.maxBufferedBytes { return .run(self.close(.slowClient)) }
            let actions = self.flushPollingIfPossible()
            switch actions.count {
            case 0: return .none
            case 1:
                guard case .completePendingGet(let packets, let hold) = actions[0] else { return .run(actions) }
                return .completePendingGet(packets, holdUntilPostAnswered: hold)
            default: return .run(actions)
            }
        }
    }

    /// The session handed its WebSocket outbox to the socket: those bytes no longer count as queued here (the
    /// socket's own buffer is bounded by its writability).
    mutating func webSocketOutboxFlushed() {
        guard case .webSocket = self.state else { return }
        self.bufferedBytes = 0
    }

    // MARK: polling requests

    /// A long-polling GET.
    /// - Parameters:
    ///   - now: the current time.
    ///   - arrival: when the request was read (GETs hop from other event loops, so they may be handled out of order).
    mutating func getReceived(now: NIODeadline, arrival: NIODeadline? = nil) -> [Action] {
        let arrival = arrival ?? now
        if case .awaitingPong(let deadline) = self.heartbeat, now >= deadline, self.isOpen {
            // The timeout timer is due but has not run yet: the session is over either way.
            var actions = self.close(.pingTimeout)
            actions.insert(.replyToGet(.reject(.unknownSession)), at: 0)
            return actions
        }
        let polling: Polling
        switch self.state {
        case .closed(var closed):
            guard closed.owesClosePacket else { return [.replyToGet(.reject(.unknownSession))] }
            closed.owesClosePacket = false
            self.state = .closed(closed)
            let (release, hold) = self.holdBehindPostAnswer()
            let answer = Action.replyToGet(.packets([.close], holdUntilPostAnswered: hold))
            return release ? [.releaseGetAnswerHeldForPost, answer] : [answer]
        case .webSocket(let upgrade):
            return [.replyToGet(self.refusalAfterUpgrade(upgrade, now: now))]
        case .polling(let value), .upgrading(let value, _):
            polling = value
        }
        if let parked = polling.parkedGet {
            // Two concurrent GETs: the protocol says close the session. The one read first is treated as the
            // pending poll (it gets the close packet), the later one as the intruder (400).
            if arrival < parked.arrival {
                _ = self.takeParkedGet()
                var actions: [Action] = [.replyToGet(.packets([.close])), .rejectPendingGet(.badRequest)]
                actions.append(contentsOf: self.close(.transportError))
                return actions
            }
            var actions: [Action] = [.replyToGet(.reject(.badRequest))]
            actions.append(contentsOf: self.close(.transportError))
            return actions
        }
        if !self.buffer.isEmpty {
            let (release, hold) = self.holdBehindPostAnswer()
            let answer = Action.replyToGet(.packets(self.takePollingBatch(), holdUntilPostAnswered: hold))
            return release ? [.releaseGetAnswerHeldForPost, answer] : [answer]
        }
        var parked = ParkedGet(arrival: arrival, sentDuringUpgrade: false, noopDeadline: nil)
        switch self.state {
        case .upgrading(var polling, let upgrade):
            // A GET sent after the client opened its probe WebSocket. If the client's `5` is already on the way
            // (over the other connection), this GET is refused when it lands; otherwise, once probed, a noop ends
            // it shortly, as with the reference server's periodic noop, so the client can pause polling.
            parked.sentDuringUpgrade = true
            if case .probed = upgrade { parked.noopDeadline = now + self.limits.probeNoopDelay }
            polling.parkedGet = parked
            self.state = .upgrading(polling, upgrade)
            if let deadline = parked.noopDeadline { return [.replyToGet(.park), .scheduleProbeNoop(deadline)] }
            return [.replyToGet(.park)]
        default:
            var polling = polling
            polling.parkedGet = parked
            self.state = .polling(polling)
            return [.replyToGet(.park)]
        }
    }

    /// How a GET is refused once the WebSocket carries the session: right after an upgrade, only once the client
    /// has had `3probe` (it sent the GET after the probe, and reads the two sockets in no particular order).
    private mutating func refusalAfterUpgrade(_ upgrade: CompletedUpgrade?, now: NIODeadline) -> GetReply {
        guard let upgrade, now - upgrade.at < self.limits.postUpgradeOrderingWindow,
            let deferral = self.deferralBehindProbeAnswer(now: now)
        else { return .reject(.badRequest) }
        return .rejectDeferred(.badRequest, deferral)
    }

    /// When a refusal may leave so that it follows `3probe` (nil: at once). Records a refusal held for it.
    private mutating func deferralBehindProbeAnswer(now: NIODeadline) -> Deferral? {
        guard case .webSocket(var upgrade?) = self.state, let probeAnswer = upgrade.probeAnswer else { return nil }
        switch probeAnswer {
        case .inFlight:
            upgrade.probeAnswer = .inFlight(refusalsHeld: true)
            self.state = .webSocket(upgrade: upgrade)
            return .untilProbeAnswered
        case .written(let at):
            let deadline = at + self.limits.probeOrderingGrace
            return deadline > now ? .until(deadline) : nil
        }
    }

    /// The timer armed by `scheduleProbeNoop` fired: a GET parked during the upgrade gets a noop.
    mutating func probeNoopTimerFired(now: NIODeadline) -> [Action] {
        guard case .upgrading(let polling, .probed) = self.state, let parked = polling.parkedGet,
            let deadline = parked.noopDeadline
        else { return [] }
        guard now >= deadline else { return [.scheduleProbeNoop(deadline)] }
        _ = self.takeParkedGet()
        return self.answerParkedGet([.noop])
    }

    /// The parked GET's connection went away before it was answered. As the reference server: the session closes
    /// with a transport error (the client cannot know which packets the GET carried).
    mutating func pendingGetAborted() -> [Action] {
        guard self.takeParkedGet() != nil else { return [] }
        return self.close(.transportError)
    }

    /// Packets handed to a GET (`completePendingGet`, `replyToGet(.packets)`) could not be written: its connection
    /// had gone, though the server had not yet noticed when it took them from the buffer. They are lost, so the
    /// session closes with a transport error, as for an aborted GET; the client learns it from its next request.
    /// Once the session has moved to a WebSocket, the old GET's fate no longer matters.
    mutating func getAnswerUndelivered() -> [Action] {
        switch self.state {
        case .polling, .upgrading: return self.close(.transportError)
        case .webSocket, .closed: return []
        }
    }

    /// A POST's head arrived. Two overlapping POSTs break packet ordering: the protocol says close the session.
    mutating func postStarted() -> [Action] {
        switch self.state {
        case .polling(var polling):
            if polling.postInProgress { return self.close(.transportError) }
            polling.postInProgress = true
            self.state = .polling(polling)
        case .upgrading(var polling, let upgrade):
            if polling.postInProgress { return self.close(.transportError) }
            polling.postInProgress = true
            self.state = .upgrading(polling, upgrade)
        case .webSocket, .closed:
            // Refused with 400 (or 400 Session ID unknown) once its body is in.
            break
        }
        return []
    }

    /// The started POST's connection went away before its body was complete.
    mutating func postAbandoned() {
        self.postEnded()
    }

    private mutating func postEnded() {
        switch self.state {
        case .polling(var polling):
            polling.postInProgress = false
            self.state = .polling(polling)
        case .upgrading(var polling, let upgrade):
            polling.postInProgress = false
            self.state = .upgrading(polling, upgrade)
        case .webSocket, .closed:
            break
        }
    }

    /// A POST's body is in. Its answer (`replyToPost`, always returned) goes out first; GET answers wait for it
    /// until `postAnswerWritten`: a client that sees the reply to its POST on the GET before the POST's own answer
    /// may give up on the POST (python-engineio then never sends its close packet, and waits for the GET).
    mutating func postReceived(_ decoded: Result<[EngineIOPacket], EngineIOCodecError>, now: NIODeadline) -> [Action] {
        self.postEnded()
        // (A GET answer already held for an earlier POST's answer stays held.)
        if case .none = self.postAnswer { self.postAnswer = .inFlight(getAnswerHeld: false) }
        switch self.state {
        case .closed: return [.replyToPost(.unknownSession)]
        case .webSocket: return [.replyToPost(.badRequest)]
        case .polling, .upgrading: break
        }
        let packets: [EngineIOPacket]
        switch decoded {
        case .success(let value):
            packets = value
        case .failure(let error):
            var actions: [Action] = [.replyToPost(error.code == .payloadTooLarge ? .payloadTooLarge : .badRequest)]
            actions.append(contentsOf: self.close(error.code == .payloadTooLarge ? .payloadTooLarge : .parseError))
            return actions
        }
        var actions: [Action] = []
        for packet in packets {
            switch packet {
            case .pong:
                actions.append(contentsOf: self.pongReceived(now: now))
            case .message(let text):
                actions.append(.deliver(.text(text)))
            case .binaryMessage(let bytes):
                actions.append(.deliver(.binary(bytes)))
            case .close:
                actions.append(.replyToPost(nil))
                if !self.hasPendingGet { actions.append(.lingerForInFlightGet) }
                actions.append(contentsOf: self.close(.clientClose))
                return actions
            case .ping, .noop, .upgrade:
                continue
            case .open:
                actions.append(.replyToPost(.badRequest))
                actions.append(contentsOf: self.close(.parseError))
                return actions
            }
        }
        actions.append(.replyToPost(nil))
        return actions
    }

    /// The answer to the last POST has been written (or its connection is gone): a GET answer held for it goes.
    mutating func postAnswerWritten() -> [Action] {
        guard case .inFlight(let held) = self.postAnswer else { return [] }
        self.postAnswer = .none
        return held ? [.releaseGetAnswerHeldForPost] : []
    }

    // MARK: WebSocket

    /// A WebSocket carrying this session's sid completed its HTTP upgrade.
    mutating func webSocketAttached(now: NIODeadline) -> [Action] {
        guard case .polling(let polling) = self.state, self.limits.allowUpgrades else { return [.rejectWebSocket] }
        self.state = .upgrading(polling, .awaitingProbe)
        return [.scheduleUpgradeTimeout(now + self.limits.upgradeTimeout)]
    }

    mutating func webSocketReceived(
        _ decoded: Result<EngineIOPacket, EngineIOCodecError>,
        from role: WebSocketRole,
        now: NIODeadline
    ) -> [Action] {
        guard self.isOpen else { return [] }
        switch role {
        case .other:
            return []
        case .probe:
            guard case .upgrading(var polling, let upgrade) = self.state, case .success(let packet) = decoded else {
                return self.abortUpgrade()
            }
            switch packet {
            case .ping(probe: true):
                var actions: [Action] = [.writeProbe(.pong(probe: true))]
                if var parked = polling.parkedGet {
                    if parked.sentDuringUpgrade {
                        let deadline = now + self.limits.probeNoopDelay
                        parked.noopDeadline = deadline
                        polling.parkedGet = parked
                        actions.append(.scheduleProbeNoop(deadline))
                    } else {
                        // The long-poll the client had running before it started the upgrade.
                        polling.parkedGet = nil
                        self.state = .upgrading(polling, .probed(.inFlight(refusalsHeld: false)))
                        actions.append(contentsOf: self.answerParkedGet([.noop]))
                        return actions
                    }
                }
                self.state = .upgrading(polling, .probed(.inFlight(refusalsHeld: false)))
                return actions
            case .upgrade:
                let probeAnswer: ProbeAnswer?
                if case .probed(let answer) = upgrade { probeAnswer = answer } else { probeAnswer = nil }
                self.state = .webSocket(upgrade: CompletedUpgrade(at: now, probeAnswer: probeAnswer))
                var actions: [Action] = [.cancelUpgradeTimeout]
                if let parked = polling.parkedGet {
                    if parked.sentDuringUpgrade {
                        // It raced the `5`: refused, after the probe answer (the order the client sent them in).
                        actions.append(
                            .rejectPendingGet(.badRequest, deferral: self.deferralBehindProbeAnswer(now: now))
                        )
                    } else {
                        let (release, hold) = self.holdBehindPostAnswer()
                        if release { actions.append(.releaseGetAnswerHeldForPost) }
                        actions.append(.completePendingGet([.noop], holdUntilPostAnswered: hold))
                    }
                }
                actions.append(.promoteProbe)
                if !self.buffer.isEmpty {
                    let packets = self.takeBuffer()
                    self.bufferedBytes = packets.reduce(0) { $0 + WebSocketFrameBytes.frameLength(for: $1) }
                    actions.append(.writeWebSocket(packets))
                }
                return actions
            case .noop:
                return []
            default:
                return self.abortUpgrade()
            }
        case .main:
            guard case .webSocket = self.state else { return [] }
            switch decoded {
            case .failure(let error):
                return self.close(error.code == .payloadTooLarge ? .payloadTooLarge : .parseError)
            case .success(let packet):
                switch packet {
                case .pong:
                    return self.pongReceived(now: now)
                case .message(let text):
                    return [.deliver(.text(text))]
                case .binaryMessage(let bytes):
                    return [.deliver(.binary(bytes))]
                case .close:
                    return self.close(.clientClose)
                case .ping, .noop, .upgrade:
                    return []
                case .open:
                    return self.close(.parseError)
                }
            }
        }
    }

    /// `3probe` has been written to the probing WebSocket (or could not be): GET refusals held for it may go,
    /// after `probeOrderingGrace`.
    mutating func probeAnswerWritten(now: NIODeadline) -> [Action] {
        switch self.state {
        case .upgrading(let polling, .probed(.inFlight)):
            self.state = .upgrading(polling, .probed(.written(at: now)))
            return []
        case .webSocket(var upgrade?):
            guard case .inFlight(let held)? = upgrade.probeAnswer else { return [] }
            upgrade.probeAnswer = .written(at: now)
            self.state = .webSocket(upgrade: upgrade)
            return held ? [.releaseRefusalsHeldForProbe(at: now + self.limits.probeOrderingGrace)] : []
        default:
            return []
        }
    }

    private mutating func abortUpgrade() -> [Action] {
        guard case .upgrading(var polling, _) = self.state else { return [] }
        if var parked = polling.parkedGet {
            parked.sentDuringUpgrade = false
            parked.noopDeadline = nil
            polling.parkedGet = parked
        }
        self.state = .polling(polling)
        var actions: [Action] = [.cancelUpgradeTimeout, .closeProbe]
        actions.append(contentsOf: self.flushPollingIfPossible())
        return actions
    }

    /// A WebSocket of this session closed.
    mutating func webSocketClosed(role: WebSocketRole) -> [Action] {
        guard self.isOpen else { return [] }
        switch role {
        case .main: return self.close(.transportClose)
        case .probe: return self.abortUpgrade()
        case .other: return []
        }
    }

    mutating func upgradeTimeoutFired() -> [Action] {
        self.abortUpgrade()
    }

    /// The main WebSocket could not keep up (its socket stopped being writable past the limit).
    mutating func webSocketBackpressureExceeded() -> [Action] {
        self.close(.slowClient)
    }

    // MARK: closing

    /// The application closes the session (a Socket.IO protocol error, the connect timeout, a server disconnect).
    /// Over polling the client must learn it from the close packet: a parked GET gets it at once, else the next one.
    mutating func closeByApplication(_ reason: EngineIOCloseReason) -> [Action] {
        guard self.isOpen else { return [] }
        let owesClosePacket = self.transport == .polling && !self.hasPendingGet && reason != .forcedServerShutdown
        var actions = self.close(reason)
        if owesClosePacket {
            self.state = .closed(Closed(transport: .polling, owesClosePacket: true))
            actions.insert(.lingerWithClosePacket, at: 0)
        }
        return actions
    }

    mutating func close(_ reason: EngineIOCloseReason) -> [Action] {
        guard self.isOpen else { return [] }
        var actions: [Action] = []
        let transport = self.transport
        if self.takeParkedGet() != nil {
            actions.append(contentsOf: self.answerParkedGet([reason == .clientClose ? .noop : .close]))
        }
        self.state = .closed(Closed(transport: transport, owesClosePacket: false))
        self.buffer.removeAll()
        self.bufferCosts.removeAll()
        self.bufferedBytes = 0
        actions.append(.close(reason))
        return actions
    }
}

/// The Engine.IO HTTP errors: `400 {"code":N,"message":"…"}` (413 for an oversized body).
struct EngineIOHTTPError: Error, Hashable, Sendable {
    var status: HTTPStatusCode
    var code: Int
    var message: String

    enum HTTPStatusCode: Int, Sendable {
        case badRequest = 400
        case forbidden = 403
        case payloadTooLarge = 413
        case upgradeRequired = 426
        case serviceUnavailable = 503
    }

    static let transportUnknown = Self(status: .badRequest, code: 0, message: "Transport unknown")
    static let unknownSession = Self(status: .badRequest, code: 1, message: "Session ID unknown")
    static let badHandshakeMethod = Self(status: .badRequest, code: 2, message: "Bad handshake method")
    static let badRequest = Self(status: .badRequest, code: 3, message: "Bad request")
    static let unsupportedProtocolVersion = Self(status: .badRequest, code: 5, message: "Unsupported protocol version")
    static let payloadTooLarge = Self(status: .payloadTooLarge, code: 3, message: "Payload too large")
    /// Refused by the server's policy (the reference server's code 4, as for `allowRequest`), here because too many
    /// sessions are waiting to connect: 503, the client may retry.
    static let tooManyPendingSessions = Self(
        status: .serviceUnavailable,
        code: 4,
        message: "Too many sessions waiting to connect"
    )
    /// A WebSocket upgrade from an origin the CORS policy does not list (Engine.IO's "Forbidden").
    static let forbidden = Self(status: .forbidden, code: 4, message: "Forbidden")
    /// A WebSocket upgrade asking for another version than 13 (answered with `Sec-WebSocket-Version: 13`).
    static let unsupportedWebSocketVersion = Self(
        status: .upgradeRequired,
        code: 3,
        message: "Unsupported WebSocket version"
    )
}
