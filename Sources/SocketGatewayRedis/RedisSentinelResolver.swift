import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The NIO shell of one `RedisSentinelDiscovery`: connects to the sentinels it names (through `RedisConnector`, like
/// every Redis connection), writes what it says, feeds it the replies, and completes with the primary's URL.
///
/// Confined to `eventLoop`; it keeps itself alive through its timer and its connect callbacks until the discovery
/// is over, and is bounded by the discovery's per-sentinel timeout.
final class RedisSentinelResolver: RedisConnectionDelegate, @unchecked Sendable {
    /// Where the primary is, and which sentinel said so.
    struct Primary: Sendable {
        var url: RedisURL
        var sentinel: RedisSentinelEndpoint.Node
    }

    private let url: RedisURL
    private let endpoint: RedisSentinelEndpoint
    private let eventLoop: any EventLoop
    private let connectTimeout: TimeAmount
    private let promise: EventLoopPromise<Primary>
    private var discovery: RedisSentinelDiscovery
    private var channel: (any Channel)?
    private var timer: Scheduled<Void>?

    private init(url: RedisURL, endpoint: RedisSentinelEndpoint, eventLoop: any EventLoop, timeout: TimeAmount) {
        self.url = url
        self.endpoint = endpoint
        self.eventLoop = eventLoop
        self.connectTimeout = timeout
        self.promise = eventLoop.makePromise()
        self.discovery = RedisSentinelDiscovery(endpoint: endpoint, timeout: timeout, redactedURL: url.redacted)
    }

    /// Asks the sentinels of `url` for the primary's address.
    /// - Parameters:
    ///   - url: A sentinel URL (its endpoint is `endpoint`).
    ///   - timeout: How long one sentinel may take to connect and answer.
    /// - Returns: The primary's URL (`url`'s user, password and database at the address a sentinel gave) and the
    ///   sentinel that gave it, or a failed future with a `RedisError` (`.primaryNotFound`) that says what each
    ///   sentinel answered.
    static func primary(
        of url: RedisURL,
        endpoint: RedisSentinelEndpoint,
        eventLoop: any EventLoop,
        timeout: TimeAmount
    ) -> EventLoopFuture<Primary> {
        let resolver = RedisSentinelResolver(url: url, endpoint: endpoint, eventLoop: eventLoop, timeout: timeout)
        eventLoop.execute {
            resolver.run(resolver.discovery.start(now: .now()))
        }
        return resolver.promise.futureResult
    }

    private func run(_ action: RedisSentinelDiscovery.Action) {
        self.eventLoop.assertInEventLoop()
        switch action {
        case .nothing:
            return
        case .connect(let index, let node, let deadline):
            self.closeChannel()
            self.timer?.cancel()
            self.timer = self.eventLoop.scheduleTask(deadline: deadline) {
                self.run(self.discovery.tick(now: .now()))
            }
            RedisConnector.connect(
                url: self.url.sentinel(node, of: self.endpoint),
                eventLoop: self.eventLoop,
                connectTimeout: self.connectTimeout,
                delegate: self,
                generation: UInt64(index)
            ).whenComplete { result in
                switch result {
                case .success(let channel):
                    let action = self.discovery.connected(index: index, now: .now())
                    if case .send = action {
                        self.channel = channel
                    } else {
                        channel.close(promise: nil)
                    }
                    self.run(action)
                case .failure(let error):
                    self.run(self.discovery.connectFailed(index: index, error: Self.reason(error), now: .now()))
                }
            }
        case .send(let commands):
            guard let channel = self.channel else { return }
            RedisConnector.send(commands, on: channel)
        case .found(let host, let port, let index):
            self.finish()
            self.promise.succeed(
                Primary(url: self.url.primary(host: host, port: port), sentinel: self.endpoint.sentinels[index])
            )
        case .failed(let error):
            self.finish()
            self.promise.fail(error)
        }
    }

    /// The socket error in words ("connection refused"), not NIO's list of the addresses tried (there is one).
    private static func reason(_ error: any Error) -> any Error {
        let socketError = (error as? NIOConnectionError)?.connectionErrors.first?.error ?? error
        guard let ioError = socketError as? IOError else { return socketError }
        let text = String(cString: strerror(ioError.errnoCode)).lowercased()
        return RedisError(code: .connectionFailed, message: "\(text), errno \(ioError.errnoCode)")
    }

    private func finish() {
        self.timer?.cancel()
        self.timer = nil
        self.closeChannel()
    }

    private func closeChannel() {
        self.channel?.close(promise: nil)
        self.channel = nil
    }

    func connection(_ generation: UInt64, received value: RESPValue) {
        self.run(self.discovery.received(value, index: Int(generation), now: .now()))
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.run(self.discovery.closed(index: Int(generation), error: error, now: .now()))
    }
}

/// Watches the sentinel that named the primary for `+switch-master` while one data connection is open, and calls
/// `onSwitch` when the primary it names moves: a failover. Without it a client stays on the old primary until the
/// sentinels demote it and kill its clients, which can take the sentinels' INFO period (10 s).
///
/// Best effort: if the sentinel cannot be reached or goes away, the watch just ends (the ROLE check and the
/// sentinels' own client kill still move the client). It ends when the data connection closes, and after one switch.
final class RedisSentinelWatcher: RedisConnectionDelegate, @unchecked Sendable {
    private let primaryName: String
    private let onSwitch: @Sendable (_ host: String, _ port: Int) -> Void
    private var channel: (any Channel)?
    private var over = false

    private init(primaryName: String, onSwitch: @escaping @Sendable (_ host: String, _ port: Int) -> Void) {
        self.primaryName = primaryName
        self.onSwitch = onSwitch
    }

    /// Starts watching sentinel `node` of `url` until `dataConnection` closes.
    /// - Parameter onSwitch: Called on `eventLoop`, at most once, with the new primary's address.
    static func watch(
        url: RedisURL,
        endpoint: RedisSentinelEndpoint,
        node: RedisSentinelEndpoint.Node,
        eventLoop: any EventLoop,
        connectTimeout: TimeAmount,
        until dataConnection: EventLoopFuture<Void>,
        onSwitch: @escaping @Sendable (_ host: String, _ port: Int) -> Void
    ) {
        let watcher = RedisSentinelWatcher(primaryName: endpoint.primaryName, onSwitch: onSwitch)
        let commands = RedisSentinelDiscovery(endpoint: endpoint, timeout: connectTimeout, redactedURL: "")
            .watchCommands
        dataConnection.whenComplete { _ in watcher.end() }
        RedisConnector.connect(
            url: url.sentinel(node, of: endpoint),
            eventLoop: eventLoop,
            connectTimeout: connectTimeout,
            delegate: watcher,
            generation: 0
        ).whenSuccess { channel in
            guard !watcher.over else {
                channel.close(promise: nil)
                return
            }
            watcher.channel = channel
            RedisConnector.send(commands, on: channel)
        }
    }

    private func end() {
        self.over = true
        self.channel?.close(promise: nil)
        self.channel = nil
    }

    func connection(_ generation: UInt64, received value: RESPValue) {
        guard !self.over,
            let (host, port) = RedisSentinelDiscovery.switchedPrimary(in: value, primaryName: self.primaryName)
        else { return }
        self.end()
        self.onSwitch(host, port)
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.channel = nil
    }
}

extension RedisConnectionShell {
    /// `openConnection` for a sentinel URL: asks the sentinels where the primary is (again on every attempt: a
    /// failover moves it), connects there (the handshake's ROLE checks that it is still the primary), and watches
    /// the sentinel that named it for a failover while the connection is open. The outcome goes to the machine as
    /// in `openConnection`.
    func openConnection(generation: UInt64, through endpoint: RedisSentinelEndpoint) {
        RedisSentinelResolver.primary(
            of: self.url,
            endpoint: endpoint,
            eventLoop: self.eventLoop,
            timeout: TimeAmount(self.connectTimeout)
        ).flatMap { primary in
            RedisConnector.connect(
                url: primary.url,
                eventLoop: self.eventLoop,
                connectTimeout: TimeAmount(self.connectTimeout),
                delegate: self,
                generation: generation
            ).map { ($0, primary.sentinel) }
        }.whenComplete { result in
            switch result {
            case .success(let (channel, sentinel)):
                let action = self.machine.connected(generation: generation, now: .now())
                guard action != .discardConnection else {
                    channel.close(promise: nil)
                    return
                }
                self.channel = channel
                self.watchForFailover(generation: generation, of: channel, on: sentinel, of: endpoint)
                self.run(action)
            case .failure(let error):
                self.run(self.machine.connectFailed(generation: generation, error: error, now: .now()))
            }
        }
    }

    /// Drops connection `generation` when the sentinel that named its node announces that the primary moved
    /// (`+switch-master`), so the client asks the sentinels again (`RedisSentinelWatcher`).
    private func watchForFailover(
        generation: UInt64,
        of channel: any Channel,
        on sentinel: RedisSentinelEndpoint.Node,
        of endpoint: RedisSentinelEndpoint
    ) {
        RedisSentinelWatcher.watch(
            url: self.url,
            endpoint: endpoint,
            node: sentinel,
            eventLoop: self.eventLoop,
            connectTimeout: TimeAmount(self.connectTimeout),
            until: channel.closeFuture
        ) { host, port in
            guard self.machine.generation == generation else { return }
            let error = RedisError(
                code: .notPrimary,
                message: "sentinel \(sentinel) announced a failover: the primary is now \(host):\(port)",
                redactedURL: self.url.redacted
            )
            self.run(self.machine.abandon(error, now: .now()))
        }
    }
}
