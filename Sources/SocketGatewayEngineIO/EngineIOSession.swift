import Logging
package import NIOCore
import SocketGatewayCore

/// One Engine.IO session. Mutable state is confined to `eventLoop`; call the methods below on it (calls from
/// elsewhere are moved onto it, at the cost of a hop).
package final class EngineIOSession: @unchecked Sendable {
    /// The session id: 16 random bytes, base64url.
    package let id: String
    /// The event loop that owns this session's state.
    package let eventLoop: any EventLoop
    /// The HTTP request that opened the session.
    package let request: EngineIOHandshakeRequest
    /// Storage for the layer above (e.g. the Socket.IO client state); touch only on `eventLoop`.
    package var applicationState: AnyObject?

    let endpoint: EngineIOEndpoint
    private var stateMachine: EngineIOSessionStateMachine
    private var pendingGet: PollingRequestHandle?
    private var mainWebSocket: (any EngineIOWebSocketConnection)?
    private var probeWebSocket: (any EngineIOWebSocketConnection)?
    /// The ping/pong timer. A scheduled callback, not a task: every session has one for its whole life, and a
    /// task costs a promise, a future and a closure each time it is rescheduled.
    private var heartbeatTimer: NIOScheduledCallback?
    private var upgradeTimer: Scheduled<Void>?
    private var probeNoopTimer: Scheduled<Void>?
    /// A GET answer the state machine holds back until the POST's answer has been written
    /// (`releaseGetAnswerHeldForPost`).
    private var getAnswerHeldForPost: (handle: PollingRequestHandle, body: ByteBuffer, carriesData: Bool)?
    /// GET refusals the state machine holds back until `3probe` has been written (`releaseRefusalsHeldForProbe`).
    private var refusalsHeldForProbe: [(handle: PollingRequestHandle, error: EngineIOHTTPError)] = []
    private var outbox: [ByteBuffer] = []
    /// The array the last flush handed to the socket, kept (empty) so outbox and spare swap roles and a flush
    /// allocates nothing.
    private var spareOutbox: [ByteBuffer] = []
    private var flushScheduled = false
    /// Counted among the endpoint's pending sessions until established or closed.
    private var pending = true

    init(
        id: String,
        eventLoop: any EventLoop,
        request: EngineIOHandshakeRequest,
        transport: EngineIOSessionStateMachine.Transport,
        endpoint: EngineIOEndpoint,
        now: NIODeadline
    ) {
        self.id = id
        self.eventLoop = eventLoop
        self.request = request
        self.endpoint = endpoint
        let configuration = endpoint.configuration
        self.stateMachine = EngineIOSessionStateMachine(
            transport: transport,
            limits: .init(
                pingInterval: TimeAmount(configuration.pingInterval),
                pingTimeout: TimeAmount(configuration.pingTimeout),
                upgradeTimeout: TimeAmount(configuration.upgradeTimeout),
                maxBufferedBytes: configuration.maxBufferedBytesPerSession,
                allowUpgrades: configuration.allowUpgrades && configuration.transports.contains(.websocket),
                maxPacketsPerPollingResponse: configuration.maxPacketsPerPollingResponse
            ),
            now: now
        )
    }

    /// The transport currently carrying the session.
    package var transport: EngineIOTransportKind {
        self.stateMachine.transport == .polling ? .polling : .websocket
    }

    /// Whether the session is still open.
    package var isOpen: Bool { self.stateMachine.isOpen }

    /// The bytes waiting for this client: the polling buffer, frames not yet handed to the WebSocket, and what
    /// the WebSocket's channel holds that the socket has not taken (on `eventLoop`).
    func bufferedBytesForBudget() -> Int {
        self.eventLoop.assertInEventLoop()
        var total = self.stateMachine.bufferedBytes
        if let main = self.mainWebSocket {
            total += main.unsentBytes(on: self.eventLoop)
        }
        return total
    }

    /// Whether a message sent now goes out at once rather than waiting (for volatile emits, which are dropped
    /// otherwise): over long-polling a GET is parked and nothing is buffered; over WebSocket nothing waits for the
    /// socket (neither in the outbox nor in the channel) and the channel is writable. On `eventLoop`.
    package var canTakeMessageNow: Bool {
        self.eventLoop.assertInEventLoop()
        guard self.stateMachine.isOpen else { return false }
        switch self.stateMachine.transport {
        case .polling:
            return self.stateMachine.hasPendingGet && self.stateMachine.bufferedBytes == 0
        case .websocket:
            guard let webSocket = self.mainWebSocket, webSocket.isWritable else { return false }
            return self.bufferedBytesForBudget() == 0
        }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if self.eventLoop.inEventLoop {
            body()
        } else {
            self.eventLoop.execute(body)
        }
    }

    // MARK: sending API

    /// Queues one Engine.IO MESSAGE whose payload (after the "4") is `payload`.
    ///
    /// The same ByteBuffer may be given to many sessions. Writes are flushed once per event-loop tick.
    package func sendMessage(_ payload: ByteBuffer) {
        guard self.eventLoop.inEventLoop else {
            self.eventLoop.execute { self.sendMessage(payload) }
            return
        }
        let packet = EngineIOPacket.message(payload)
        let recordLength = payload.readableBytes + 1
        self.handleEnqueue(
            self.stateMachine.enqueue(
                [packet],
                pollingCost: recordLength,
                webSocketCost: WebSocketFrameBytes.headerLength(payloadLength: recordLength) + recordLength
            ),
            frames: { self.outgoing(WebSocketFrameBytes.frame(for: packet)) }
        )
    }

    /// Frames built for this session alone, compressed if its WebSocket agreed to permessage-deflate.
    private func outgoing(_ frames: ByteBuffer) -> ByteBuffer {
        self.mainWebSocket?.outgoing(frames) ?? frames
    }

    /// Queues a message encoded once for many recipients (fan-out fast path).
    package func send(_ message: EngineIOOutboundMessage) {
        guard self.eventLoop.inEventLoop else {
            self.eventLoop.execute { self.send(message) }
            return
        }
        let byteCount = message.webSocketFrames.readableBytes
        self.handleEnqueue(
            self.stateMachine.enqueue(message.packets, pollingCost: byteCount, webSocketCost: byteCount),
            frames: { message.webSocketFrames(for: self.mainWebSocket) }
        )
    }

    /// Queues a message as ``send(_:)`` does, on `eventLoop`, and leaves the WebSocket flush to `batch`: a caller
    /// that writes to many sessions in one go (a batch of deliveries) flushes each once, when the batch ends,
    /// instead of each session scheduling a flush task of its own.
    package func send(_ message: EngineIOOutboundMessage, flushingIn batch: EngineIOFlushBatch) {
        self.eventLoop.assertInEventLoop()
        let byteCount = message.webSocketFrames.readableBytes
        let action = self.stateMachine.enqueue(message.packets, pollingCost: byteCount, webSocketCost: byteCount)
        if case .writeWebSocket = action {
            self.appendToOutbox(message.webSocketFrames(for: self.mainWebSocket), flushingIn: batch)
        } else {
            self.handleEnqueue(action, frames: { message.webSocketFrames(for: self.mainWebSocket) })
        }
    }

    /// Queues one binary Engine.IO message.
    package func sendBinary(_ bytes: ByteBuffer) {
        guard self.eventLoop.inEventLoop else {
            self.eventLoop.execute { self.sendBinary(bytes) }
            return
        }
        let packet = EngineIOPacket.binaryMessage(bytes)
        self.handleEnqueue(
            self.stateMachine.enqueue(
                [packet],
                pollingCost: EngineIOPollingPayload.encodedRecordLength(packet),
                webSocketCost: WebSocketFrameBytes.frameLength(for: packet)
            ),
            frames: { self.outgoing(WebSocketFrameBytes.frame(for: packet)) }
        )
    }

    /// Tells the endpoint the session is established (for Socket.IO: a namespace accepted the client), so it no
    /// longer counts against ``EngineIOConfiguration/maxPendingSessions``. Calls after the first do nothing.
    package func markEstablished() {
        self.onLoop {
            guard self.pending else { return }
            self.pending = false
            self.endpoint.pendingSessionEnded()
        }
    }

    /// Closes the session; the application's `sessionClosed` is called with `reason`.
    ///
    /// Over long-polling the client is told with the close packet: on its parked GET, or on its next one.
    package func close(reason: EngineIOCloseReason) {
        self.onLoop { self.run(self.stateMachine.closeByApplication(reason)) }
    }

    /// Closes the session for a fault the client was already told about (e.g. a 413 for its POST): a later GET
    /// gets `400 Session ID unknown`, as from the reference server.
    func terminate(reason: EngineIOCloseReason) {
        self.onLoop { self.run(self.stateMachine.close(reason)) }
    }

    private func handleEnqueue(_ action: EngineIOSessionStateMachine.EnqueueAction, frames: () -> ByteBuffer) {
        switch action {
        case .none:
            break
        case .writeWebSocket:
            self.appendToOutbox(frames())
        case .completePendingGet(let packets, let hold):
            self.completePendingGet(packets, holdUntilPostAnswered: hold)
        case .run(let actions):
            self.run(actions)
        }
    }

    // MARK: inputs from transports (on eventLoop)

    func start(handshakeFrameFor transport: EngineIOTransportKind) {
        self.eventLoop.assertInEventLoop()
        let open = EngineIOPacket.open(self.handshakeJSON(upgrades: transport == .polling))
        // The handshake is not counted towards the slow-client limit.
        self.handleEnqueue(
            self.stateMachine.enqueue([open], pollingCost: 0, webSocketCost: 0),
            frames: { self.outgoing(WebSocketFrameBytes.frame(for: open)) }
        )
        self.schedule(heartbeat: self.stateMachine.initialHeartbeatDeadline)
        self.endpoint.sessionOpened(self, transport: transport)
        self.endpoint.application.sessionOpened(self)
    }

    func setMainWebSocket(_ connection: any EngineIOWebSocketConnection) {
        self.mainWebSocket = connection
    }

    func handleGet(_ handle: PollingRequestHandle) {
        self.eventLoop.assertInEventLoop()
        let actions = self.stateMachine.getReceived(now: .now(), arrival: handle.arrival)
        self.endpoint.logger.trace("polling GET", metadata: ["engineio.sid": "\(self.id)", "actions": "\(actions)"])
        for action in actions {
            if case .replyToGet(let reply) = action {
                switch reply {
                case .park:
                    self.pendingGet = handle
                case .packets(let packets, let hold):
                    self.answerGet(handle, packets: packets, holdUntilPostAnswered: hold)
                case .reject(let error):
                    handle.reply(.error(error))
                case .rejectDeferred(let error, let deferral):
                    self.refuse(handle, error: error, deferral: deferral)
                }
            } else {
                self.run([action])
            }
        }
    }

    /// Refuses a GET now or when the state machine said (after `3probe`, which the client must see first).
    private func refuse(
        _ handle: PollingRequestHandle,
        error: EngineIOHTTPError,
        deferral: EngineIOSessionStateMachine.Deferral?
    ) {
        switch deferral {
        case nil:
            handle.reply(.error(error))
        case .until(let deadline):
            self.eventLoop.scheduleTask(deadline: deadline) { handle.reply(.error(error)) }
        case .untilProbeAnswered:
            self.refusalsHeldForProbe.append((handle, error))
        }
    }

    func pendingGetAborted(_ handle: PollingRequestHandle) {
        self.eventLoop.assertInEventLoop()
        guard let pending = self.pendingGet, pending === handle else { return }
        self.pendingGet = nil
        self.run(self.stateMachine.pendingGetAborted())
    }

    func handlePost(_ body: ByteBuffer, handle: PollingRequestHandle) {
        self.eventLoop.assertInEventLoop()
        let decoded: Result<[EngineIOPacket], EngineIOCodecError>
        do {
            decoded = .success(
                try EngineIOPollingPayload.decode(body, maxPayload: self.endpoint.configuration.maxPayload)
            )
        } catch {
            self.endpoint.protocolError(sid: self.id, transport: .polling, error: error)
            decoded = .failure(error)
        }
        let actions = self.stateMachine.postReceived(decoded, now: .now())
        // Answer the POST before acting on its packets; the state machine holds back GET answers until
        // `postAnswerWritten`.
        let postReply = actions.lazy.compactMap { action -> PollingReply? in
            guard case .replyToPost(let error) = action else { return nil }
            return error.map { .error($0) } ?? .ok
        }.first
        if let postReply {
            let eventLoop = self.eventLoop
            handle.reply(postReply) { _ in
                eventLoop.execute { self.run(self.stateMachine.postAnswerWritten()) }
            }
        }
        for action in actions {
            if case .replyToPost = action { continue }
            self.run([action])
        }
    }

    /// Hands packets to a GET. If its connection turns out to be gone, the packets are lost with it: the session
    /// then closes (as for a GET aborted while parked), so the client learns it from its next request rather than
    /// waiting for an answer that never comes.
    /// (A lost noop loses nothing, e.g. the one ending the old GET of a client that has just upgraded.)
    private func deliverGetAnswer(_ handle: PollingRequestHandle, body: ByteBuffer, carriesData: Bool) {
        guard carriesData else {
            handle.reply(.payload(body))
            return
        }
        // Weak: the connection keeps this report until the client's next request, which may outlive the session.
        let eventLoop = self.eventLoop
        handle.reply(.payload(body)) { [weak self] delivered in
            guard !delivered, let self else { return }
            eventLoop.execute { self.getAnswerUndelivered() }
        }
    }

    private func getAnswerUndelivered() {
        self.eventLoop.assertInEventLoop()
        self.endpoint.logger.debug(
            "polling answer undelivered: the GET's connection is gone",
            metadata: ["engineio.sid": "\(self.id)"]
        )
        self.run(self.stateMachine.getAnswerUndelivered())
    }

    /// Answers a GET with packets, or holds the answer until the state machine releases it.
    private func answerGet(_ handle: PollingRequestHandle, packets: [EngineIOPacket], holdUntilPostAnswered: Bool) {
        let body = EngineIOPollingPayload.encode(packets)
        let carriesData = packets.contains { $0 != .noop }
        if holdUntilPostAnswered {
            if let earlier = self.getAnswerHeldForPost {
                // The machine releases an earlier answer first; never leave one hanging regardless.
                self.deliverGetAnswer(earlier.handle, body: earlier.body, carriesData: earlier.carriesData)
            }
            self.getAnswerHeldForPost = (handle, body, carriesData)
        } else {
            self.deliverGetAnswer(handle, body: body, carriesData: carriesData)
        }
    }

    func postStarted() {
        self.eventLoop.assertInEventLoop()
        self.run(self.stateMachine.postStarted())
    }

    func postAbandoned() {
        self.eventLoop.assertInEventLoop()
        self.stateMachine.postAbandoned()
    }

    func webSocketAttached(_ connection: any EngineIOWebSocketConnection) {
        self.eventLoop.assertInEventLoop()
        let actions = self.stateMachine.webSocketAttached(now: .now())
        self.endpoint.logger.trace(
            "websocket attached",
            metadata: ["engineio.sid": "\(self.id)", "actions": "\(actions)"]
        )
        if actions.first == .rejectWebSocket {
            connection.close()
            return
        }
        self.probeWebSocket = connection
        self.run(actions)
    }

    private func role(of connection: any EngineIOWebSocketConnection) -> EngineIOSessionStateMachine.WebSocketRole {
        if connection === self.mainWebSocket { return .main }
        if connection === self.probeWebSocket { return .probe }
        return .other
    }

    func webSocketReceived(
        _ decoded: Result<EngineIOPacket, EngineIOCodecError>,
        from connection: any EngineIOWebSocketConnection
    ) {
        self.eventLoop.assertInEventLoop()
        let role = self.role(of: connection)
        if role == .other { return }
        if case .failure(let error) = decoded, role == .main, self.stateMachine.isOpen {
            self.endpoint.protocolError(sid: self.id, transport: .websocket, error: error)
        }
        let actions = self.stateMachine.webSocketReceived(decoded, from: role, now: .now())
        self.endpoint.logger.trace(
            "websocket packet",
            metadata: [
                "engineio.sid": "\(self.id)", "role": "\(role)", "packet": "\(decoded)", "actions": "\(actions)",
            ]
        )
        self.run(actions)
    }

    func webSocketClosed(_ connection: any EngineIOWebSocketConnection) {
        self.eventLoop.assertInEventLoop()
        let role = self.role(of: connection)
        if role == .probe { self.probeWebSocket = nil }
        self.run(self.stateMachine.webSocketClosed(role: role))
    }

    func webSocketFailed(_ connection: any EngineIOWebSocketConnection, reason: EngineIOCloseReason) {
        self.eventLoop.assertInEventLoop()
        switch self.role(of: connection) {
        case .main: self.run(self.stateMachine.close(reason))
        case .probe, .other: self.webSocketClosed(connection)
        }
    }

    func webSocketUnwritable(_ connection: any EngineIOWebSocketConnection) {
        self.eventLoop.assertInEventLoop()
        guard self.role(of: connection) == .main else { return }
        self.run(self.stateMachine.webSocketBackpressureExceeded())
    }

    // MARK: running actions

    private func run(_ actions: [EngineIOSessionStateMachine.Action]) {
        for action in actions {
            switch action {
            case .scheduleHeartbeat(let deadline):
                self.schedule(heartbeat: deadline)
            case .scheduleUpgradeTimeout(let deadline):
                self.upgradeTimer?.cancel()
                self.upgradeTimer = self.eventLoop.scheduleTask(deadline: deadline) { [self] in
                    self.upgradeTimer = nil
                    self.run(self.stateMachine.upgradeTimeoutFired())
                }
            case .cancelUpgradeTimeout:
                self.upgradeTimer?.cancel()
                self.upgradeTimer = nil
                self.probeNoopTimer?.cancel()
                self.probeNoopTimer = nil
            case .scheduleProbeNoop(let deadline):
                self.probeNoopTimer?.cancel()
                self.probeNoopTimer = self.eventLoop.scheduleTask(deadline: deadline) { [self] in
                    self.probeNoopTimer = nil
                    self.run(self.stateMachine.probeNoopTimerFired(now: .now()))
                }
            case .rejectPendingGet(let error, let deferral):
                if let handle = self.pendingGet {
                    self.pendingGet = nil
                    self.refuse(handle, error: error, deferral: deferral)
                }
            case .completePendingGet(let packets, let hold):
                self.completePendingGet(packets, holdUntilPostAnswered: hold)
            case .releaseGetAnswerHeldForPost:
                if let held = self.getAnswerHeldForPost {
                    self.getAnswerHeldForPost = nil
                    self.deliverGetAnswer(held.handle, body: held.body, carriesData: held.carriesData)
                }
            case .releaseRefusalsHeldForProbe(let deadline):
                let held = self.refusalsHeldForProbe
                self.refusalsHeldForProbe.removeAll()
                self.eventLoop.scheduleTask(deadline: deadline) {
                    for refusal in held { refusal.handle.reply(.error(refusal.error)) }
                }
            case .replyToGet, .replyToPost:
                // Answered by the caller that owns the request.
                break
            case .writeWebSocket(let packets):
                for packet in packets { self.appendToOutbox(WebSocketFrameBytes.frame(for: packet)) }
            case .writeProbe(let packet):
                let promise = self.eventLoop.makePromise(of: Void.self)
                // Runs on `eventLoop` (the promise's), whichever loop the probe's channel is on.
                promise.futureResult.whenComplete { _ in
                    self.run(self.stateMachine.probeAnswerWritten(now: .now()))
                }
                if let probe = self.probeWebSocket {
                    probe.write([WebSocketFrameBytes.frame(for: packet)], promise: promise)
                } else {
                    promise.succeed()
                }
            case .promoteProbe:
                self.mainWebSocket = self.probeWebSocket
                self.probeWebSocket = nil
                self.endpoint.logger.debug("upgraded to websocket", metadata: ["engineio.sid": "\(self.id)"])
            case .closeProbe:
                self.probeWebSocket?.close()
                self.probeWebSocket = nil
            case .rejectWebSocket:
                break
            case .deliver(let message):
                if self.pending, !self.endpoint.application.marksSessionsEstablished { self.markEstablished() }
                self.endpoint.application.session(self, didReceive: message)
            case .close(let reason):
                self.tearDown(reason)
            case .lingerForInFlightGet:
                self.endpoint.linger(sid: self.id)
            case .lingerWithClosePacket:
                self.endpoint.lingerWithClosePacket(sid: self.id)
            }
        }
    }

    private func completePendingGet(_ packets: [EngineIOPacket], holdUntilPostAnswered: Bool) {
        guard let handle = self.pendingGet else { return }
        self.pendingGet = nil
        self.answerGet(handle, packets: packets, holdUntilPostAnswered: holdUntilPostAnswered)
    }

    private func schedule(heartbeat deadline: NIODeadline) {
        self.heartbeatTimer?.cancel()
        // Throws only once the loop is shutting down, which closes the session anyway.
        self.heartbeatTimer = try? self.eventLoop.scheduleCallback(
            at: deadline,
            handler: HeartbeatCallback(session: self)
        )
    }

    fileprivate func heartbeatTimerFired() {
        self.heartbeatTimer = nil
        self.run(self.stateMachine.heartbeatTimerFired(now: .now()))
    }

    /// Queues frames for the main WebSocket; the state machine has counted them towards the slow-client limit.
    /// With a `batch`, the flush is left to it (see ``EngineIOFlushBatch``); otherwise a task on `eventLoop` does it.
    private func appendToOutbox(_ bytes: ByteBuffer, flushingIn batch: EngineIOFlushBatch? = nil) {
        guard self.mainWebSocket != nil else { return }
        self.outbox.append(bytes)
        if !self.flushScheduled {
            self.flushScheduled = true
            if let batch {
                batch.add(self)
            } else {
                self.eventLoop.execute { self.flushOutbox() }
            }
        }
    }

    /// Hands the outbox to the WebSocket and flushes it (once per tick or batch; see `appendToOutbox`).
    fileprivate func flushOutbox() {
        self.flushScheduled = false
        guard !self.outbox.isEmpty else { return }
        // Swap rather than copy: `let buffers = outbox; outbox.removeAll(keepingCapacity: true)` made the array
        // non-unique and so allocated a new one per flush, i.e. one allocation per recipient per tick in a fan-out.
        // Anything appended while writing (or a teardown) sees an empty outbox, as before.
        swap(&self.outbox, &self.spareOutbox)
        self.stateMachine.webSocketOutboxFlushed()
        self.mainWebSocket?.write(self.spareOutbox)
        self.spareOutbox.removeAll(keepingCapacity: true)
    }

    private func tearDown(_ reason: EngineIOCloseReason) {
        self.heartbeatTimer?.cancel()
        self.heartbeatTimer = nil
        self.upgradeTimer?.cancel()
        self.upgradeTimer = nil
        self.probeNoopTimer?.cancel()
        self.probeNoopTimer = nil
        if let pending = self.pendingGet {
            // The state machine answered every GET it knew of; this one must not hang either.
            self.pendingGet = nil
            self.deliverGetAnswer(pending, body: EngineIOPollingPayload.encode([.close]), carriesData: true)
        }
        // Whatever is already queued for the WebSocket still goes out before the close frame, unless the client is
        // dropped for not reading it.
        let buffers = reason == .slowClient ? [] : self.outbox
        self.outbox.removeAll()
        if let main = self.mainWebSocket {
            main.write(buffers)
            main.close(reason: reason)
        }
        self.mainWebSocket = nil
        self.probeWebSocket?.close()
        self.probeWebSocket = nil
        if self.pending {
            self.pending = false
            self.endpoint.pendingSessionEnded()
        }
        self.endpoint.sessionClosed(self, reason: reason)
        self.endpoint.application.sessionClosed(self, reason: reason)
    }

    private func handshakeJSON(upgrades: Bool) -> ByteBuffer {
        let configuration = self.endpoint.configuration
        let upgradeList = upgrades && self.stateMachine.limits.allowUpgrades ? "[\"websocket\"]" : "[]"
        // The sid is base64url, so it needs no JSON escaping.
        let text =
            "{\"sid\":\"\(self.id)\",\"upgrades\":\(upgradeList),\"pingInterval\":\(configuration.pingInterval.engineIOMilliseconds),"
            + "\"pingTimeout\":\(configuration.pingTimeout.engineIOMilliseconds),\"maxPayload\":\(configuration.maxPayload)}"
        return ByteBuffer(string: text)
    }
}

/// Calls the session back when its heartbeat deadline passes.
private struct HeartbeatCallback: NIOScheduledCallbackHandler, Sendable {
    let session: EngineIOSession

    func handleScheduledCallback(eventLoop: some EventLoop) {
        self.session.heartbeatTimerFired()
    }
}

/// The sessions written to during one batch of work on one event loop (e.g. the deliveries of one drain of a
/// shard's inbox), each flushed once when the batch ends: one `writev` per session per batch, and no flush task
/// per session. What a session queued is written in the order it was queued, as with its own flush task.
///
/// Confined to one event loop: make one per loop-confined owner and call ``flush()`` on that loop.
package final class EngineIOFlushBatch {
    private var sessions: [EngineIOSession] = []

    /// An empty batch.
    package init() {}

    /// Whether no session waits for its flush.
    package var isEmpty: Bool { self.sessions.isEmpty }

    fileprivate func add(_ session: EngineIOSession) {
        self.sessions.append(session)
    }

    /// Flushes every session added since the last call, in the order they were added.
    package func flush() {
        guard !self.sessions.isEmpty else { return }
        for session in self.sessions {
            session.eventLoop.assertInEventLoop()
            session.flushOutbox()
        }
        self.sessions.removeAll(keepingCapacity: true)
    }
}
