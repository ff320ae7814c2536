public import Logging
public import NIOCore
import NIOPosix

/// A general-purpose Redis connection: send any command (`LPUSH`, `BRPOP`, `GET`, …) and await its reply.
///
/// Commands are pipelined on one connection and their replies matched in order. The client connects lazily on
/// the first command (running AUTH / SELECT from the URL first; commands wait for their replies) and, after the
/// connection drops or a connect fails, reconnects on the next command, without backoff; commands in flight when it
/// drops fail with `.connectionClosed`. When Redis refuses AUTH or SELECT, what waits fails with that error. A
/// command that gets no reply within its timeout fails with `.timeout` and closes the connection, since later
/// replies could no longer be matched. A blocking command (`BRPOP key 1`) holds the connection for its duration, so give it its
/// own client and a timeout longer than the blocking time.
public final class RedisCommandClient: @unchecked Sendable {
    // All mutable state below is confined to `eventLoop`.

    /// The server this client talks to.
    public let url: RedisURL
    /// The event loop that owns the connection and all state.
    public let eventLoop: any EventLoop
    let connectTimeout: Duration
    private let logger: Logger

    /// One command waiting for its reply; `done` once answered, failed or timed out. Touched only on `eventLoop`.
    private final class Pending: @unchecked Sendable {
        let name: String
        let promise: EventLoopPromise<RESPValue>
        var done = false
        var timeoutTask: Scheduled<Void>?
        let errorReplyAsValue: Bool

        init(name: String, promise: EventLoopPromise<RESPValue>, errorReplyAsValue: Bool) {
            self.name = name
            self.promise = promise
            self.errorReplyAsValue = errorReplyAsValue
        }

        func complete(_ result: Result<RESPValue, RedisError>) {
            guard !self.done else { return }
            self.done = true
            self.timeoutTask?.cancel()
            self.timeoutTask = nil
            switch result {
            case .success(let value): self.promise.succeed(value)
            case .failure(let error): self.promise.fail(error)
            }
        }
    }

    /// Decides connect and handshake (AUTH, SELECT); this class does the I/O and matches replies to commands.
    var machine: RedisConnectionStateMachine
    /// The connection of the machine's current attempt, once open.
    var channel: (any Channel)?
    /// Commands submitted before the connection is ready, written once it is.
    private var waiting: [(arguments: [String], pending: Pending)] = []
    /// Commands written and not yet answered, in order.
    private var inFlight = CircularBuffer<Pending>()

    /// Creates a client. Nothing connects until the first command.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - connectTimeout: How long a TCP or unix-socket connect may take.
    ///   - eventLoop: The loop that owns the connection; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes are logged (the URL is logged redacted).
    public init(
        url: RedisURL,
        connectTimeout: Duration = .seconds(2),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger
    ) {
        self.url = url
        self.connectTimeout = connectTimeout
        self.eventLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        var logger = logger
        logger[metadataKey: "redis.url"] = "\(url.redacted)"
        self.logger = logger
        self.machine = RedisConnectionStateMachine(
            configuration: .init(
                handshake: RedisHandshakeStep.handshake(for: url),
                redactedURL: url.redacted,
                // No backoff and no retry: the caller decides; the next command connects again at once.
                afterConnectFailure: .becomeIdle,
                afterHandshakeRefused: .becomeIdle,
                afterConnectionLost: .becomeIdle
            )
        )
    }

    /// Sends one command and returns its reply.
    /// - Parameters:
    ///   - arguments: The command and its arguments, e.g. `["LPUSH", "jobs", payload]`.
    ///   - timeout: The longest to wait for the reply (for a blocking command, longer than its blocking time).
    /// - Returns: The reply; an error reply (`-ERR …`) is thrown instead.
    /// - Throws: `RedisError`: `.commandFailed` (Redis answered with an error), `.connectionFailed`,
    ///   `.connectionClosed`, `.authenticationFailed`, `.selectFailed`, `.timeout`, `.shutdown`.
    @discardableResult
    public func send(_ arguments: [String], timeout: Duration = .seconds(5)) async throws(RedisError) -> RESPValue {
        let name = arguments.first?.uppercased() ?? ""
        do {
            return try await self.submit(arguments, timeout: timeout, errorReplyAsValue: false).get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw self.error(
                .commandFailed,
                "\(name) failed: \(error)",
                command: name,
                underlying: error
            )
        }
    }

    /// Sends one command from any thread; the future completes on `eventLoop`.
    /// - Parameter errorReplyAsValue: Whether an error reply (`-MOVED …`) succeeds as `.error` (for callers that
    ///   read it, like the cluster's redirections) instead of failing with `.commandFailed`.
    package func submit(
        _ arguments: [String],
        timeout: Duration,
        errorReplyAsValue: Bool
    ) -> EventLoopFuture<RESPValue> {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        let pending = Pending(
            name: arguments[0].uppercased(),
            promise: self.eventLoop.makePromise(of: RESPValue.self),
            errorReplyAsValue: errorReplyAsValue
        )
        self.eventLoop.execute {
            self.submit(arguments, pending: pending, timeout: timeout)
        }
        return pending.promise.futureResult
    }

    /// Fails what is waiting with `.shutdown` and closes the connection. Later commands fail at once.
    public func shutdown() async {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute { self.close(promise) }
        try? await promise.futureResult.get()
    }

    /// Starts ``shutdown()`` without waiting for the connection to close.
    package func beginShutdown() {
        self.eventLoop.execute { self.close(nil) }
    }

    private func close(_ promise: EventLoopPromise<Void>?) {
        let reason = self.error(.shutdown, "the client was shut down")
        let action = self.machine.shutdown()
        let channel = self.channel
        self.channel = nil
        self.failEverything(with: reason)
        if case .shutDown(closeConnection: true) = action, let channel {
            channel.close(mode: .all).whenComplete { _ in promise?.succeed(()) }
        } else {
            promise?.succeed(())
        }
    }

    // MARK: - Event-loop-confined machinery

    private func submit(_ arguments: [String], pending: Pending, timeout: Duration) {
        self.eventLoop.assertInEventLoop()
        pending.timeoutTask = self.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            guard !pending.done else { return }
            let error = self.error(
                .timeout,
                "no reply to \(pending.name) within \(timeout); closing the connection",
                command: pending.name
            )
            pending.complete(.failure(error))
            self.run(self.machine.abandon(error, now: .now()))
        }
        switch self.machine.phase {
        case .closed:
            pending.complete(.failure(self.error(.shutdown, "the client was shut down", command: pending.name)))
        case .ready:
            guard let channel = self.channel else { return }
            self.write([(arguments, pending)], to: channel)
        case .connecting, .handshaking, .waitingToReconnect:
            self.waiting.append((arguments, pending))
        case .idle:
            self.waiting.append((arguments, pending))
            self.run(self.machine.start(now: .now()))
        }
    }

    /// Performs what the machine decided.
    func run(_ action: RedisConnectionStateMachine.Action) {
        switch action {
        case .nothing, .deliver, .discardConnection, .shutDown, .sendPing:
            break
        case .connect(let generation):
            self.openConnection(generation: generation)
        case .sendHandshake(let steps):
            guard let channel = self.channel else { return }
            RedisConnector.send(steps.lazy.map(\.arguments), on: channel)
        case .becomeReady:
            self.logger.debug("Redis command connection open")
            guard let channel = self.channel else { return }
            let waiting = self.waiting
            self.waiting = []
            self.write(waiting, to: channel)
        case .connectFailed(let reason, let closeConnection, _):
            if closeConnection { self.channel?.close(promise: nil) }
            self.channel = nil
            if reason.command != nil {
                self.logger.error("Redis refused the connection handshake", metadata: ["error": "\(reason)"])
            } else {
                self.logger.warning("Redis connect failed", metadata: ["error": "\(reason)"])
            }
            self.failEverything(with: reason)
        case .connectionLost(let reason, let closeConnection, _):
            if closeConnection { self.channel?.close(promise: nil) }
            self.channel = nil
            if !self.inFlight.isEmpty || !self.waiting.isEmpty {
                self.logger.warning("Redis command connection lost", metadata: ["error": "\(reason)"])
            }
            self.failEverything(with: reason)
        }
    }

    private func write(_ commands: [(arguments: [String], pending: Pending)], to channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: 128)
        for command in commands where !command.pending.done {
            RESPCommand.write(command.arguments, into: &buffer)
            self.inFlight.append(command.pending)
        }
        guard buffer.readableBytes > 0 else { return }
        channel.writeAndFlush(buffer, promise: nil)
    }

    private func failEverything(with error: RedisError) {
        let waiting = self.waiting
        self.waiting = []
        for entry in waiting { entry.pending.complete(.failure(error)) }
        while let pending = self.inFlight.popFirst() {
            pending.complete(.failure(error))
        }
    }

    private func error(
        _ code: RedisError.Code,
        _ message: String,
        command: String? = nil,
        underlying: (any Error)? = nil
    ) -> RedisError {
        RedisError(
            code: code,
            message: message,
            redactedURL: self.url.redacted,
            command: command,
            underlying: underlying
        )
    }
}

extension RedisCommandClient: RedisConnectionShell {
    func connection(_ generation: UInt64, received value: RESPValue) {
        let action = self.machine.received(value, generation: generation, now: .now())
        guard case .deliver = action else {
            self.run(action)
            return
        }
        guard let pending = self.inFlight.popFirst() else {
            let error = self.error(.protocolError, "Redis sent a reply nobody asked for: \(value)")
            self.run(self.machine.abandon(error, now: .now()))
            return
        }
        if case .error(let message) = value, !pending.errorReplyAsValue {
            pending.complete(
                .failure(
                    self.error(
                        .commandFailed,
                        "Redis answered \(pending.name) with an error: \(message)",
                        command: pending.name
                    )
                )
            )
        } else {
            pending.complete(.success(value))
        }
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.run(self.machine.connectionClosed(generation: generation, error: error, now: .now()))
    }
}
