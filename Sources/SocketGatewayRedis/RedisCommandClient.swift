public import Logging
public import NIOCore
import NIOPosix

/// A general-purpose Redis connection: send any command (`LPUSH`, `BRPOP`, `GET`, …) and await its reply.
///
/// Commands are pipelined on one connection and their replies matched in order. The client connects lazily on
/// the first command (running AUTH / SELECT from the URL first) and, after the connection drops, reconnects on
/// the next command; commands in flight when it drops fail with `.connectionClosed`. A command that gets no
/// reply within its timeout fails with `.timeout` and closes the connection, since later replies could no
/// longer be matched. A blocking command (`BRPOP key 1`) holds the connection for its duration, so give it its
/// own client and a timeout longer than the blocking time.
public final class RedisCommandClient: @unchecked Sendable {
    // All mutable state below is confined to `eventLoop`.

    /// The server this client talks to.
    public let url: RedisURL
    /// The event loop that owns the connection and all state.
    public let eventLoop: any EventLoop
    private let connectTimeout: Duration
    private let logger: Logger

    private enum State {
        case idle
        case connecting
        case ready(any Channel)
        case shutdown
    }

    /// One command waiting for its reply; `done` once answered, failed or timed out. Touched only on `eventLoop`.
    private final class Pending: @unchecked Sendable {
        let name: String
        let promise: EventLoopPromise<RESPValue>
        var done = false
        var timeoutTask: Scheduled<Void>?

        init(name: String, promise: EventLoopPromise<RESPValue>) {
            self.name = name
            self.promise = promise
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

    private enum InFlight {
        case handshake(RedisConnector.HandshakeStep)
        case command(Pending)
    }

    private var state: State = .idle
    private var generation: UInt64 = 0
    /// Commands submitted while connecting, written once the connection is open.
    private var waiting: [(arguments: [String], pending: Pending)] = []
    private var inFlight = CircularBuffer<InFlight>()
    private var closeReason: RedisError?

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
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        let pending = Pending(name: arguments[0].uppercased(), promise: self.eventLoop.makePromise(of: RESPValue.self))
        self.eventLoop.execute {
            self.submit(arguments, pending: pending, timeout: timeout)
        }
        do {
            return try await pending.promise.futureResult.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw self.error(
                .commandFailed,
                "\(pending.name) failed: \(error)",
                command: pending.name,
                underlying: error
            )
        }
    }

    /// Fails what is waiting with `.shutdown` and closes the connection. Later commands fail at once.
    public func shutdown() async {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute {
            let reason = self.error(.shutdown, "the client was shut down")
            let previous = self.state
            self.state = .shutdown
            self.generation &+= 1
            self.failEverything(with: reason)
            if case .ready(let channel) = previous {
                channel.close(mode: .all).whenComplete { _ in promise.succeed(()) }
            } else {
                promise.succeed(())
            }
        }
        try? await promise.futureResult.get()
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
            self.closeCurrentChannel(reason: error)
        }
        switch self.state {
        case .shutdown:
            pending.complete(.failure(self.error(.shutdown, "the client was shut down", command: pending.name)))
        case .ready(let channel):
            self.write([(arguments, pending)], to: channel)
        case .connecting:
            self.waiting.append((arguments, pending))
        case .idle:
            self.waiting.append((arguments, pending))
            self.connect()
        }
    }

    private func connect() {
        self.state = .connecting
        self.generation &+= 1
        let generation = self.generation
        RedisConnector.connect(
            url: self.url,
            eventLoop: self.eventLoop,
            connectTimeout: TimeAmount(self.connectTimeout),
            delegate: self,
            generation: generation
        ).whenComplete { result in
            guard generation == self.generation, case .connecting = self.state else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                self.state = .ready(channel)
                self.logger.debug("Redis command connection open")
                var buffer = channel.allocator.buffer(capacity: 256)
                for step in RedisConnector.handshakeCommands(for: self.url) {
                    RESPCommand.write(step.arguments, into: &buffer)
                    self.inFlight.append(.handshake(step))
                }
                if buffer.readableBytes > 0 { channel.write(buffer, promise: nil) }
                let waiting = self.waiting
                self.waiting = []
                self.write(waiting, to: channel)
            case .failure(let error):
                self.state = .idle
                let reason = self.error(
                    .connectionFailed,
                    "cannot connect to Redis: \(error); is redis-server running there?",
                    underlying: error
                )
                self.logger.warning("Redis connect failed", metadata: ["error": "\(reason)"])
                let waiting = self.waiting
                self.waiting = []
                for entry in waiting { entry.pending.complete(.failure(reason)) }
            }
        }
    }

    private func write(_ commands: [(arguments: [String], pending: Pending)], to channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: 128)
        for command in commands where !command.pending.done {
            RESPCommand.write(command.arguments, into: &buffer)
            self.inFlight.append(.command(command.pending))
        }
        guard buffer.readableBytes > 0 else { return }
        channel.writeAndFlush(buffer, promise: nil)
    }

    private func closeCurrentChannel(reason: RedisError) {
        guard case .ready(let channel) = self.state else { return }
        if self.closeReason == nil { self.closeReason = reason }
        channel.close(promise: nil)
    }

    private func failEverything(with error: RedisError) {
        let waiting = self.waiting
        self.waiting = []
        for entry in waiting { entry.pending.complete(.failure(error)) }
        while let entry = self.inFlight.popFirst() {
            if case .command(let pending) = entry { pending.complete(.failure(error)) }
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

extension RedisCommandClient: RedisConnectionDelegate {
    func connection(_ generation: UInt64, received value: RESPValue) {
        guard generation == self.generation else { return }
        guard let entry = self.inFlight.popFirst() else {
            self.closeCurrentChannel(
                reason: self.error(.protocolError, "Redis sent a reply nobody asked for: \(value)")
            )
            return
        }
        switch entry {
        case .handshake(let step):
            if case .error(let message) = value {
                let error = step.error(message: message, url: self.url)
                self.logger.error("Redis refused the connection handshake", metadata: ["error": "\(error)"])
                self.failEverything(with: error)
                self.closeCurrentChannel(reason: error)
            }
        case .command(let pending):
            if case .error(let message) = value {
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
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        guard generation == self.generation else { return }
        let reason =
            self.closeReason
            ?? (error as? RedisError)
            ?? self.error(.connectionClosed, "Redis closed the connection", underlying: error)
        self.closeReason = nil
        self.generation &+= 1
        if case .shutdown = self.state {
            self.failEverything(with: reason)
            return
        }
        self.state = .idle
        if !self.inFlight.isEmpty || !self.waiting.isEmpty {
            self.logger.warning("Redis command connection lost", metadata: ["error": "\(reason)"])
        }
        self.failEverything(with: reason)
    }
}
