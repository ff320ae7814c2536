import NIOCore
import SocketGatewayCore

/// The Engine.IO session logic without I/O: transports, upgrade, heartbeat, polling buffer.
///
/// Each input is a `mutating func` returning what the session must do; `EngineIOSession` runs the actions.
/// Time comes in as `now` so tests drive the heartbeat without waiting.
struct EngineIOSessionStateMachine {
    struct Limits: Equatable {
        var pingInterval: TimeAmount
        var pingTimeout: TimeAmount
        var upgradeTimeout: TimeAmount
        var maxBufferedBytes: Int
        var allowUpgrades: Bool
        /// How long a GET that arrives after the probe waits for the `5` before it is answered with a noop.
        var probeNoopDelay: TimeAmount = .milliseconds(100)
        /// The most packets one polling GET response carries; the rest wait for the next GET.
        var maxPacketsPerPollingResponse: Int = 16
    }

    enum Transport: Equatable { case polling, websocket }

    /// Which WebSocket connection a frame came from.
    enum WebSocketRole: Equatable { case main, probe, other }

    private enum Phase: Equatable {
        case open
        /// A second (WebSocket) transport is attached and may complete the upgrade.
        case upgrading(probed: Bool)
        case closed
    }

    private enum Heartbeat: Equatable {
        case waitingToPing(NIODeadline)
        case awaitingPong(NIODeadline)
    }

    /// What to do with a long-polling GET.
    enum GetReply: Equatable {
        /// Answer 200 with these packets.
        case packets([EngineIOPacket])
        /// Keep the request until there is something to send.
        case park
        /// Answer 400 with this Engine.IO error.
        case reject(EngineIOHTTPError)
    }

    enum Action: Equatable {
        /// (Re)arm the single heartbeat timer.
        case scheduleHeartbeat(NIODeadline)
        case scheduleUpgradeTimeout(NIODeadline)
        case cancelUpgradeTimeout
        /// Arm the timer that answers a GET parked during the probe with a noop.
        case scheduleProbeNoop(NIODeadline)
        /// Answer the parked GET with an error (it arrived during the probe and the upgrade completed).
        case rejectPendingGet(EngineIOHTTPError)
        /// Answer the parked GET with these packets (as one payload).
        case completePendingGet([EngineIOPacket])
        /// Answer the request being handled.
        case replyToGet(GetReply)
        /// Answer the POST being handled: `ok`, or an error status.
        case replyToPost(EngineIOHTTPError?)
        /// Write packets to the main WebSocket (the flush happens once per tick).
        case writeWebSocket([EngineIOPacket])
        /// Write a packet to the probing WebSocket at once.
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

    /// What to do after queueing an outbound message.
    enum EnqueueAction: Equatable {
        case none
        /// The message was queued for the WebSocket.
        case writeWebSocket
        case completePendingGet([EngineIOPacket])
        case close(EngineIOCloseReason)
    }

    private(set) var transport: Transport
    private var phase: Phase
    private var heartbeat: Heartbeat
    private(set) var hasPendingGet = false
    /// When the parked GET was read.
    private var pendingGetArrival = NIODeadline.uptimeNanoseconds(0)
    /// The parked GET arrived after the probe WebSocket was attached (the client should not poll any more).
    private var pendingGetArrivedDuringProbe = false
    /// Closed by the application over polling with no GET parked: the next GET that reaches this session still gets
    /// the close packet (it may get here before the endpoint forgets the session).
    private var closePacketOwed = false
    /// A POST has started (head received) and not yet been handled.
    private var postInProgress = false
    private var buffer: [EngineIOPacket] = []
    /// What each buffered packet counts towards `bufferedBytes` (parallel to `buffer`).
    private var bufferCosts: [Int] = []
    private(set) var bufferedBytes = 0
    let limits: Limits

    init(transport: Transport, limits: Limits, now: NIODeadline) {
        self.transport = transport
        self.limits = limits
        self.phase = .open
        self.heartbeat = .waitingToPing(now + limits.pingInterval)
    }

    var isOpen: Bool { self.phase != .closed }

    /// The first deadline to arm after the handshake.
    var initialHeartbeatDeadline: NIODeadline {
        switch self.heartbeat {
        case .waitingToPing(let deadline), .awaitingPong(let deadline): deadline
        }
    }

    // MARK: heartbeat

    mutating func heartbeatTimerFired(now: NIODeadline) -> [Action] {
        guard self.phase != .closed else { return [] }
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
        switch self.transport {
        case .websocket:
            return [.writeWebSocket([packet])]
        case .polling:
            self.appendToBuffer(packet, cost: EngineIOPollingPayload.encodedRecordLength(packet))
            return self.flushPollingIfPossible()
        }
    }

    private mutating func flushPollingIfPossible() -> [Action] {
        guard self.hasPendingGet, !self.buffer.isEmpty, self.phase != .upgrading(probed: true) else { return [] }
        self.hasPendingGet = false
        self.pendingGetArrivedDuringProbe = false
        return [.completePendingGet(self.takePollingBatch())]
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

    /// Queues application packets. For WebSocket the caller writes its (pre-encoded) bytes itself.
    /// - Parameters:
    ///   - packets: the packets, used only for the polling buffer.
    ///   - byteCount: bytes they occupy (for the slow-client limit).
    mutating func enqueue(_ packets: @autoclosure () -> [EngineIOPacket], byteCount: Int) -> EnqueueAction {
        guard self.phase != .closed else { return .none }
        switch self.transport {
        case .websocket:
            return .writeWebSocket
        case .polling:
            let packets = packets()
            if packets.count == 1 {
                self.appendToBuffer(packets[0], cost: byteCount)
            } else if !packets.isEmpty {
                // Spread `byteCount` over the packets (record lengths for the later ones, the rest to the first),
                // so a response cut between them keeps the accounting exact.
                let base = self.buffer.count
                self.buffer.append(contentsOf: packets)
                self.bufferCosts.append(contentsOf: repeatElement(0, count: packets.count))
                var remaining = byteCount
                for offset in packets.indices.dropFirst().reversed() {
                    let cost = min(EngineIOPollingPayload.encodedRecordLength(packets[offset]), remaining)
                    self.bufferCosts[base + offset - packets.startIndex] = cost
                    remaining -= cost
                }
                self.bufferCosts[base] = remaining
                self.bufferedBytes += byteCount
            }
            if self.bufferedBytes > self.limits.maxBufferedBytes {
                let actions = self.close(.slowClient)
                if case .completePendingGet(let packets) = actions.first { return .completePendingGet(packets) }
                return .close(.slowClient)
            }
            let actions = self.flushPollingIfPossible()
            if case .completePendingGet(let packets) = actions.first { return .completePendingGet(packets) }
            return .none
        }
    }

    // MARK: polling requests

    /// A long-polling GET.
    /// - Parameters:
    ///   - now: the current time.
    ///   - arrival: when the request was read (GETs hop from other event loops, so they may be handled out of order).
    mutating func getReceived(now: NIODeadline, arrival: NIODeadline? = nil) -> [Action] {
        let arrival = arrival ?? now
        if case .awaitingPong(let deadline) = self.heartbeat, now >= deadline, self.phase != .closed {
            // The timeout timer is due but has not run yet: the session is over either way.
            var actions = self.close(.pingTimeout)
            actions.insert(.replyToGet(.reject(.unknownSession)), at: 0)
            return actions
        }
        if self.phase == .closed {
            if self.closePacketOwed {
                self.closePacketOwed = false
                return [.replyToGet(.packets([.close]))]
            }
            return [.replyToGet(.reject(.unknownSession))]
        }
        guard self.transport == .polling else { return [.replyToGet(.reject(.badRequest))] }
        if case .upgrading(let probed) = self.phase, !self.hasPendingGet {
            // A GET sent after the client opened its probe WebSocket. If the client's `5` is already on the way
            // (over the other connection), this GET gets 400 when it lands; otherwise a noop ends it shortly
            // after the probe, as with the reference server's periodic noop.
            self.hasPendingGet = true
            self.pendingGetArrival = arrival
            self.pendingGetArrivedDuringProbe = true
            if probed { return [.replyToGet(.park), .scheduleProbeNoop(now + self.limits.probeNoopDelay)] }
            return [.replyToGet(.park)]
        }
        if self.hasPendingGet {
            // Two concurrent GETs: the protocol says close the session. The one read first is treated as the
            // pending poll (it gets the close packet), the later one as the intruder (400).
            if arrival < self.pendingGetArrival {
                self.hasPendingGet = false
                self.pendingGetArrivedDuringProbe = false
                var actions: [Action] = [.replyToGet(.packets([.close])), .rejectPendingGet(.badRequest)]
                actions.append(contentsOf: self.close(.transportError))
                return actions
            }
            var actions: [Action] = [.replyToGet(.reject(.badRequest))]
            actions.append(contentsOf: self.close(.transportError))
            return actions
        }
        if self.buffer.isEmpty {
            self.hasPendingGet = true
            self.pendingGetArrival = arrival
            return [.replyToGet(.park)]
        }
        return [.replyToGet(.packets(self.takePollingBatch()))]
    }

    /// The timer armed by `scheduleProbeNoop` fired.
    mutating func probeNoopTimerFired() -> [Action] {
        guard self.hasPendingGet, self.pendingGetArrivedDuringProbe, self.phase == .upgrading(probed: true) else { return [] }
        self.hasPendingGet = false
        self.pendingGetArrivedDuringProbe = false
        return [.completePendingGet([.noop])]
    }

    /// The parked GET's connection went away before it was answered. As the reference server: the session closes
    /// with a transport error (the client cannot know which packets the GET carried).
    mutating func pendingGetAborted() -> [Action] {
        guard self.hasPendingGet, self.phase != .closed else { return [] }
        self.hasPendingGet = false
        self.pendingGetArrivedDuringProbe = false
        return self.close(.transportError)
    }

    /// Packets handed to a GET (`completePendingGet`, `replyToGet(.packets)`) could not be written: its connection
    /// had gone, though the server had not yet noticed when it took them from the buffer. They are lost, so the
    /// session closes with a transport error, as for an aborted GET; the client learns it from its next request.
    /// Once the session has moved to a WebSocket, the old GET's fate no longer matters.
    mutating func getAnswerUndelivered() -> [Action] {
        guard self.phase != .closed, self.transport == .polling else { return [] }
        return self.close(.transportError)
    }

    /// A POST's head arrived. Two overlapping POSTs break packet ordering: the protocol says close the session.
    mutating func postStarted() -> [Action] {
        guard self.phase != .closed else { return [] }
        if self.postInProgress { return self.close(.transportError) }
        self.postInProgress = true
        return []
    }

    /// The started POST's connection went away before its body was complete.
    mutating func postAbandoned() {
        self.postInProgress = false
    }

    mutating func postReceived(_ decoded: Result<[EngineIOPacket], EngineIOCodecError>, now: NIODeadline) -> [Action] {
        self.postInProgress = false
        guard self.phase != .closed else { return [.replyToPost(.unknownSession)] }
        guard self.transport == .polling else { return [.replyToPost(.badRequest)] }
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

    // MARK: WebSocket

    /// A WebSocket carrying this session's sid completed its HTTP upgrade.
    mutating func webSocketAttached(now: NIODeadline) -> [Action] {
        guard self.phase == .open, self.transport == .polling, self.limits.allowUpgrades else {
            return [.rejectWebSocket]
        }
        self.phase = .upgrading(probed: false)
        return [.scheduleUpgradeTimeout(now + self.limits.upgradeTimeout)]
    }

    mutating func webSocketReceived(
        _ decoded: Result<EngineIOPacket, EngineIOCodecError>,
        from role: WebSocketRole,
        now: NIODeadline
    ) -> [Action] {
        guard self.phase != .closed else { return [] }
        switch role {
        case .other:
            return []
        case .probe:
            guard case .upgrading = self.phase, case .success(let packet) = decoded else {
                return self.abortUpgrade()
            }
            switch packet {
            case .ping(probe: true):
                self.phase = .upgrading(probed: true)
                var actions: [Action] = [.writeProbe(.pong(probe: true))]
                if self.hasPendingGet {
                    if self.pendingGetArrivedDuringProbe {
                        actions.append(.scheduleProbeNoop(now + self.limits.probeNoopDelay))
                    } else {
                        // The long-poll the client had running before it started the upgrade.
                        self.hasPendingGet = false
                        actions.append(.completePendingGet([.noop]))
                    }
                }
                return actions
            case .upgrade:
                self.phase = .open
                self.transport = .websocket
                var actions: [Action] = [.cancelUpgradeTimeout]
                if self.hasPendingGet {
                    self.hasPendingGet = false
                    if self.pendingGetArrivedDuringProbe {
                        self.pendingGetArrivedDuringProbe = false
                        actions.append(.rejectPendingGet(.badRequest))
                    } else {
                        actions.append(.completePendingGet([.noop]))
                    }
                }
                actions.append(.promoteProbe)
                if !self.buffer.isEmpty { actions.append(.writeWebSocket(self.takeBuffer())) }
                return actions
            case .noop:
                return []
            default:
                return self.abortUpgrade()
            }
        case .main:
            guard self.transport == .websocket else { return [] }
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

    private mutating func abortUpgrade() -> [Action] {
        guard case .upgrading = self.phase else { return [] }
        self.phase = .open
        self.pendingGetArrivedDuringProbe = false
        var actions: [Action] = [.cancelUpgradeTimeout, .closeProbe]
        actions.append(contentsOf: self.flushPollingIfPossible())
        return actions
    }

    /// A WebSocket of this session closed.
    mutating func webSocketClosed(role: WebSocketRole) -> [Action] {
        guard self.phase != .closed else { return [] }
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
        guard self.phase != .closed else { return [] }
        let getParked = self.hasPendingGet
        var actions = self.close(reason)
        if self.transport == .polling, !getParked, reason != .forcedServerShutdown {
            self.closePacketOwed = true
            actions.insert(.lingerWithClosePacket, at: 0)
        }
        return actions
    }

    mutating func close(_ reason: EngineIOCloseReason) -> [Action] {
        guard self.phase != .closed else { return [] }
        var actions: [Action] = []
        if self.hasPendingGet {
            self.hasPendingGet = false
            self.pendingGetArrivedDuringProbe = false
            actions.append(.completePendingGet([reason == .clientClose ? .noop : .close]))
        }
        self.phase = .closed
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
        case badRequest = 400, forbidden = 403, payloadTooLarge = 413, upgradeRequired = 426, serviceUnavailable = 503
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
    static let unsupportedWebSocketVersion = Self(status: .upgradeRequired, code: 3, message: "Unsupported WebSocket version")
}
