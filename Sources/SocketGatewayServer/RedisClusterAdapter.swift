import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis

/// The clustered mode: every gateway operation is applied locally, then published on python-socketio's Redis
/// channel; what the other servers and workers publish is applied to this server's clients.
///
/// Remote messages are applied in arrival order by one task. They follow python-socketio's
/// `AsyncPubSubManager`: `emit` (room null / string / list, `skip_sid` null / string / list, binary,
/// `callback`), `enter_room` / `leave_room` / `disconnect` for clients connected here, `close_room`, and
/// `callback` messages addressed to this host. Every `skip_sid` entry is treated as a room (a sid is a room),
/// so a gateway's `excluding` rooms travel in `skip_sid`; python-socketio servers skip only matching sids.
final class RedisClusterAdapter: ClusterAdapter {
    let channel: SocketIOPubSubChannel
    let configuration: SocketServerRedisConfiguration
    /// How long a client here has to ack an emit that a remote server sent with a callback.
    let remoteAckTimeout: Duration
    private let logger: Logger
    private let inbox: AsyncStream<PubSubMessage>
    private let inboxContinuation: AsyncStream<PubSubMessage>.Continuation
    private let state = NIOLockedValueBox(State())

    private struct State {
        var gateway: SocketGateway?
        var consumer: Task<Void, Never>?
        var nextAckID: Int64 = 1
        var waiters: [Int64: CheckedContinuation<[JSONValue], any Error>] = [:]
    }

    /// Creates the adapter; nothing connects until `start(gateway:)`.
    /// - Throws: `RedisError` when the URL cannot be parsed.
    init(
        configuration: SocketServerRedisConfiguration,
        remoteAckTimeout: Duration = .seconds(60),
        logger: Logger
    ) throws(RedisError) {
        let url = try RedisURL(parsing: configuration.url)
        self.configuration = configuration
        self.remoteAckTimeout = remoteAckTimeout
        let (inbox, continuation) = AsyncStream.makeStream(
            of: PubSubMessage.self,
            bufferingPolicy: .bufferingNewest(100_000)
        )
        self.inbox = inbox
        self.inboxContinuation = continuation
        // Reconnect quickly: deliveries resume within about a second of Redis coming back.
        let backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1))
        let publisherConfiguration = RedisPublisherConfiguration(
            channel: configuration.channel,
            connectTimeout: .seconds(1),
            replyTimeout: .seconds(5),
            outboxCapacity: configuration.outboxCapacity,
            backoff: backoff
        )
        let subscriberConfiguration = RedisSubscriberConfiguration(
            connectTimeout: .seconds(1),
            backoff: backoff,
            pingInterval: .seconds(1),
            pingTimeout: .seconds(1)
        )
        var logger = logger
        let hostID = PubSubHostID.generate()
        logger[metadataKey: "socketgateway.host_id"] = "\(hostID)"
        self.logger = logger
        self.channel = SocketIOPubSubChannel(
            url: url,
            channel: configuration.channel,
            hostID: hostID,
            publisherConfiguration: publisherConfiguration,
            subscriberConfiguration: subscriberConfiguration,
            logger: logger
        ) { message in
            continuation.yield(message)
        }
    }

    var modeDescription: String {
        "clustered through Redis \(self.channel.subscriber.url.redacted), channel '\(self.channel.channel)', host_id \(self.channel.hostID)"
    }

    var health: ClusterHealth {
        let subscriber = self.channel.health
        let publisher = self.channel.publisher.currentStatus
        return ClusterHealth(
            mode: .redis(channel: self.channel.channel),
            hostID: self.channel.hostID,
            redisConnected: subscriber.connected,
            lastMessageAge: subscriber.lastMessageAge,
            reconnects: subscriber.reconnects,
            lastError: subscriber.lastError,
            publisherConnected: publisher.connected,
            droppedFromOutbox: publisher.droppedFromOutbox
        )
    }

    func start(gateway: SocketGateway) {
        let inbox = self.inbox
        let consumer = Task {
            for await message in inbox {
                await self.apply(message, to: gateway)
            }
        }
        self.state.withLockedValue {
            $0.gateway = gateway
            $0.consumer = consumer
        }
        self.channel.start()
    }

    func shutdown() async {
        await self.channel.shutdown(drainTimeout: self.configuration.publishTimeout)
        self.inboxContinuation.finish()
        let (consumer, waiters) = self.state.withLockedValue { state in
            let result = (state.consumer, state.waiters)
            state.consumer = nil
            state.gateway = nil
            state.waiters = [:]
            return result
        }
        for (_, waiter) in waiters {
            waiter.resume(throwing: CancellationError())
        }
        await consumer?.value
    }

    // MARK: Publishing this server's operations

    func emitted(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        local: EmitResult
    ) async -> EmitResult {
        let message = PubSubMessage.emit(
            event,
            arguments: arguments,
            to: target,
            options: options,
            hostID: self.channel.hostID
        )
        return await self.publish(message, localDeliveries: local.localDeliveries, what: "emit \(event)")
    }

    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
        let hostID = self.channel.hostID
        let message: PubSubMessage
        switch operation {
        case .joinRoom(let sid, let room, let namespace):
            // As python-socketio: a client connected here is handled here; otherwise ask the others.
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .enterRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
        case .leaveRoom(let sid, let room, let namespace):
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .leaveRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
        case .disconnect(let sid, let namespace):
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .disconnect(sid: sid, namespace: namespace, hostID: hostID)
        case .closeRoom(let room, let namespace):
            message = .closeRoom(room: room, namespace: namespace, hostID: hostID)
        }
        return await self.publish(message, localDeliveries: localMatches, what: message.method)
    }

    func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        sid: String,
        namespace: String,
        timeout: Duration
    ) async throws -> [JSONValue]? {
        let id = self.state.withLockedValue { state -> Int64 in
            defer { state.nextAckID &+= 1 }
            return state.nextAckID
        }
        let message = PubSubMessage.emit(
            PubSubEmit(
                event: event,
                arguments: arguments,
                namespace: namespace,
                room: .one(sid),
                callback: PubSubCallback(room: .one(sid), namespace: namespace, id: id),
                hostID: self.channel.hostID
            )
        )
        let eventLoop = self.channel.publisher.eventLoop
        return try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<[JSONValue], any Error>) in
            self.state.withLockedValue { $0.waiters[id] = continuation }
            eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(throwing: SocketAckError(code: .timeout, event: event, sid: sid, namespace: namespace))
            }
            self.channel.publish(message) { progress in
                if case .failed(let error) = progress {
                    self.logger.warning("emit with ack not published", metadata: ["error": "\(error)"])
                    let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                    waiter?.resume(
                        throwing: SocketAckError(code: .notConnected, event: event, sid: sid, namespace: namespace)
                    )
                }
            }
        }
    }

    /// Publishes `message`, waiting at most `publishTimeout`.
    private func publish(_ message: PubSubMessage, localDeliveries: Int, what: String) async -> EmitResult {
        let publisher = self.channel.publisher
        let timeout = TimeAmount(self.configuration.publishTimeout)
        let outcome = await withUnsafeContinuation { (continuation: UnsafeContinuation<PublishWait, Never>) in
            publisher.eventLoop.execute {
                let waiter = PublishWaiter(continuation)
                waiter.timer = publisher.eventLoop.scheduleTask(in: timeout) { waiter.finish(.timedOut) }
                self.channel.publish(message) { waiter.finish(.progress($0)) }
            }
        }
        switch outcome {
        case .progress(.published(let subscribers)):
            return EmitResult(outcome: .published, localDeliveries: localDeliveries, redisSubscribers: subscribers)
        case .progress(.queued(let reason)):
            return EmitResult(
                outcome: .queued,
                localDeliveries: localDeliveries,
                reason: "Redis unreachable, held in the outbox: \(reason)"
            )
        case .progress(.failed(let error)):
            self.logger.warning("\(what) not published to the cluster", metadata: ["error": "\(error)"])
            return EmitResult(outcome: .failed, localDeliveries: localDeliveries, reason: error.description)
        case .timedOut:
            let reason = "Redis did not answer within \(self.configuration.publishTimeout)"
            if self.configuration.outboxCapacity > 0 {
                return EmitResult(
                    outcome: .queued,
                    localDeliveries: localDeliveries,
                    reason: reason + "; the message stays queued"
                )
            }
            return EmitResult(
                outcome: .failed,
                localDeliveries: localDeliveries,
                reason: reason + "; it may still be published"
            )
        }
    }

    // MARK: Applying the other hosts' messages

    private func apply(_ message: PubSubMessage, to gateway: SocketGateway) async {
        switch message {
        case .emit(let emit):
            let rooms: [String]? = emit.room == .none ? nil : emit.room.names
            let excluding = Set(emit.skipSid.names)
            if let callback = emit.callback {
                await self.deliverWithCallback(
                    emit,
                    callback: callback,
                    rooms: rooms,
                    excluding: excluding,
                    gateway: gateway
                )
            } else {
                let packet = SocketIOWire.event(
                    namespace: emit.namespace,
                    event: emit.event,
                    arguments: emit.arguments,
                    ackID: nil
                )
                let deliveries = await gateway.deliver(
                    packet,
                    namespace: emit.namespace,
                    rooms: rooms,
                    excluding: excluding
                )
                gateway.metrics.deliveries.increment(by: Int64(deliveries))
            }
        case .enterRoom(let sid, let room, let namespace, _):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace) {
                await connection.join(room)
            }
        case .leaveRoom(let sid, let room, let namespace, _):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace) {
                await connection.leave(room)
            }
        case .disconnect(let sid, let namespace, _):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace) {
                await connection.disconnect()
            }
        case .closeRoom(let room, let namespace, _):
            for shard in gateway.shards.all {
                await shard.run { $0.close(room: room, namespace: namespace) }
            }
        case .callback(_, let sid, let namespace, let id, let arguments):
            let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            guard let waiter else {
                self.logger.debug(
                    "callback for an unknown or expired ack",
                    metadata: ["sid": "\(sid)", "namespace": "\(namespace)", "id": "\(id)"]
                )
                return
            }
            waiter.resume(returning: arguments)
        }
    }

    /// A remote server emitted with a callback: each recipient here gets the event with an ack id, and its ack
    /// is published back to the emitting host as a `callback` message (python-socketio's `_return_callback`).
    private func deliverWithCallback(
        _ emit: PubSubEmit,
        callback: PubSubCallback,
        rooms: [String]?,
        excluding: Set<String>,
        gateway: SocketGateway
    ) async {
        var recipients: [SocketConnection] = []
        for shard in gateway.shards.all {
            recipients +=
                await shard.run { $0.recipients(namespace: emit.namespace, rooms: rooms, excluding: excluding) } ?? []
        }
        let callbackSid = callback.room.names.first ?? ""
        let timeout = self.remoteAckTimeout
        for connection in recipients {
            Task {
                do {
                    let answer = try await connection.emitWithAck(
                        emit.event,
                        arguments: emit.arguments,
                        timeout: timeout
                    )
                    self.channel.publish(
                        .callback(
                            hostID: emit.hostID,
                            sid: callbackSid,
                            namespace: callback.namespace,
                            id: callback.id,
                            arguments: answer
                        ),
                        completion: nil
                    )
                } catch {
                    self.logger.debug("no ack for a remote emit", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

private enum PublishWait: Sendable {
    case progress(PublishProgress)
    case timedOut
}

/// Resumes a publish wait once, with the outcome or the timeout; confined to the publisher's event loop.
private final class PublishWaiter: @unchecked Sendable {
    private var continuation: UnsafeContinuation<PublishWait, Never>?
    var timer: Scheduled<Void>?

    init(_ continuation: UnsafeContinuation<PublishWait, Never>) {
        self.continuation = continuation
    }

    func finish(_ outcome: PublishWait) {
        guard let continuation = self.continuation else { return }
        self.continuation = nil
        self.timer?.cancel()
        self.timer = nil
        continuation.resume(returning: outcome)
    }
}
