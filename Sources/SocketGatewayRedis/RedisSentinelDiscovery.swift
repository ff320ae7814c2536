package import NIOCore
import SocketGatewayCore

/// Finding the primary through Redis Sentinel, without I/O: which sentinel to ask next, what to ask it, what its
/// answer means, and when to give up.
///
/// One discovery runs per connection attempt of a client on a `redis+sentinel://` URL (so a reconnect after a
/// failover asks again). The sentinels are asked in the URL's order: connect, `AUTH` when the sentinels have a
/// password, then `SENTINEL get-master-addr-by-name <name>`. The first address answered is the result; the client
/// then connects there and checks `ROLE` (`RedisHandshakeStep.verifyPrimary`). A sentinel that cannot be reached,
/// refuses, does not know the name, or does not answer within `timeout` of the attempt's start is skipped; when
/// every one was, the discovery fails with one `RedisError` (`.primaryNotFound`) that lists each one's reason, and
/// the connection machine backs off as for any failed connect.
///
/// ```
/// idle ──start──▶ connecting(i) ──connected──▶ querying(i) ──address──▶ done(found)
///                    │  ▲                          │
///                    │  └──── next sentinel ◀──────┘ refused / unknown name / closed / timeout
///                    └─ none left ─▶ done(failed)
/// ```
package struct RedisSentinelDiscovery {
    /// What the shell must do.
    package enum Action: Equatable {
        /// Nothing.
        case nothing
        /// Close the connection to the previous sentinel, if one is open, and connect to sentinel `index` (tag
        /// its callbacks with `index`); call `tick` at `deadline`.
        case connect(index: Int, node: RedisSentinelEndpoint.Node, deadline: NIODeadline)
        /// Write these commands, pipelined, to the sentinel just connected.
        case send([[String]])
        /// Close the sentinel connection: the primary is at `host:port` (from sentinel `index`).
        case found(host: String, port: Int, index: Int)
        /// Close the sentinel connection, if one is open: no sentinel gave an address.
        case failed(RedisError)

        /// Errors compare by code and message.
        package static func == (lhs: Self, rhs: Self) -> Bool {
            switch (lhs, rhs) {
            case (.nothing, .nothing):
                return true
            case (.connect(let a, let b, let c), .connect(let d, let e, let f)):
                return a == d && b == e && c == f
            case (.send(let left), .send(let right)):
                return left == right
            case (.found(let a, let b, let c), .found(let d, let e, let f)):
                return a == d && b == e && c == f
            case (.failed(let left), .failed(let right)):
                return left.code == right.code && left.message == right.message
            default:
                return false
            }
        }
    }

    private enum State {
        case idle
        case connecting(index: Int, deadline: NIODeadline)
        /// `repliesLeft` counts the replies still expected (AUTH's, then the query's).
        case querying(index: Int, repliesLeft: Int, deadline: NIODeadline)
        case done
    }

    private let endpoint: RedisSentinelEndpoint
    private let timeout: TimeAmount
    private let redactedURL: String
    private var state: State = .idle
    /// `node: reason` for each sentinel that gave no address, in order.
    private var failures: [String] = []

    /// Creates a discovery that has not started.
    /// - Parameters:
    ///   - endpoint: The sentinels, the primary's name, the sentinels' credentials.
    ///   - timeout: How long one sentinel may take to connect and answer.
    ///   - redactedURL: The URL with its passwords masked, for the error.
    package init(endpoint: RedisSentinelEndpoint, timeout: TimeAmount, redactedURL: String) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.redactedURL = redactedURL
    }

    /// Whether the discovery is over (found or failed).
    package var isDone: Bool {
        if case .done = self.state { return true }
        return false
    }

    /// The commands for one sentinel: AUTH when the sentinels have a password, then the query.
    package var commands: [[String]] {
        var commands: [[String]] = []
        if let password = self.endpoint.password {
            commands.append(["AUTH"] + (self.endpoint.username.map { [$0] } ?? []) + [password])
        }
        commands.append(["SENTINEL", "get-master-addr-by-name", self.endpoint.primaryName])
        return commands
    }

    /// The commands that watch for failovers on a sentinel connection: AUTH when needed, then
    /// `SUBSCRIBE +switch-master`.
    package var watchCommands: [[String]] {
        self.commands.dropLast() + [["SUBSCRIBE", "+switch-master"]]
    }

    /// The new primary's address when `message` is a sentinel's `+switch-master` push for `primaryName`
    /// (`<name> <old-ip> <old-port> <new-ip> <new-port>`); `nil` for anything else.
    package static func switchedPrimary(in message: RESPValue, primaryName: String) -> (host: String, port: Int)? {
        guard case .array(let items) = message, items.count == 3, items[0].string == "message",
            items[1].string == "+switch-master", let text = items[2].string
        else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count == 5, fields[0] == primaryName, let port = Int(fields[4]), (1...65535).contains(port)
        else { return nil }
        return (String(fields[3]), port)
    }

    // MARK: - Inputs

    /// Asks the first sentinel.
    package mutating func start(now: NIODeadline) -> Action {
        guard case .idle = self.state else { return .nothing }
        return self.ask(0, now: now)
    }

    /// The connection to sentinel `index` is open.
    package mutating func connected(index: Int, now: NIODeadline) -> Action {
        guard case .connecting(let current, let deadline) = self.state, current == index else { return .nothing }
        let commands = self.commands
        self.state = .querying(index: index, repliesLeft: commands.count, deadline: deadline)
        return .send(commands)
    }

    /// Sentinel `index` could not be reached.
    package mutating func connectFailed(index: Int, error: any Error, now: NIODeadline) -> Action {
        guard case .connecting(let current, _) = self.state, current == index else { return .nothing }
        return self.skip(index, because: "cannot connect (\(Self.describe(error)))", now: now)
    }

    /// Sentinel `index` sent `reply`.
    package mutating func received(_ reply: RESPValue, index: Int, now: NIODeadline) -> Action {
        guard case .querying(let current, let repliesLeft, let deadline) = self.state, current == index else {
            return .nothing
        }
        if repliesLeft > 1 {
            // AUTH's reply.
            if case .error(let message) = reply {
                return self.skip(index, because: "refused AUTH (\(Self.quote(message)))", now: now)
            }
            self.state = .querying(index: index, repliesLeft: repliesLeft - 1, deadline: deadline)
            return .nothing
        }
        switch reply {
        case .array(let items) where items.count == 2:
            guard let host = items[0].string, !host.isEmpty, let portText = items[1].string,
                let port = Int(portText), (1...65535).contains(port)
            else {
                return self.skip(index, because: "answered an address that is not host and port", now: now)
            }
            self.state = .done
            return .found(host: host, port: port, index: index)
        case .array(let items) where items.isEmpty:
            fallthrough
        case .null:
            return self.skip(index, because: "does not know '\(self.endpoint.primaryName)'", now: now)
        case .error(let message):
            return self.skip(index, because: "refused (\(Self.quote(message)))", now: now)
        case .simpleString, .bulkString, .integer, .array:
            return self.skip(index, because: "answered something that is not an address", now: now)
        }
    }

    /// The connection to sentinel `index` closed (`error` is what closed it, if known).
    package mutating func closed(index: Int, error: (any Error)?, now: NIODeadline) -> Action {
        switch self.state {
        case .connecting(let current, _) where current == index,
            .querying(let current, _, _) where current == index:
            let reason = error.map { "closed the connection (\(Self.describe($0)))" } ?? "closed the connection"
            return self.skip(index, because: reason, now: now)
        case .idle, .connecting, .querying, .done:
            return .nothing
        }
    }

    /// The timer of the current sentinel: skips it when it has used up its `timeout`.
    package mutating func tick(now: NIODeadline) -> Action {
        switch self.state {
        case .connecting(let index, let deadline) where now >= deadline,
            .querying(let index, _, let deadline) where now >= deadline:
            return self.skip(index, because: "no answer within \(self.timeout)", now: now)
        case .idle, .connecting, .querying, .done:
            return .nothing
        }
    }

    /// Stops: the client shut down. Nothing follows.
    package mutating func cancel() -> Action {
        guard !self.isDone else { return .nothing }
        self.state = .done
        return .failed(
            RedisError(
                code: .shutdown,
                message: "sentinel discovery cancelled: the client shut down",
                redactedURL: self.redactedURL
            )
        )
    }

    // MARK: - Transitions

    private mutating func ask(_ index: Int, now: NIODeadline) -> Action {
        let deadline = now + self.timeout
        self.state = .connecting(index: index, deadline: deadline)
        return .connect(index: index, node: self.endpoint.sentinels[index], deadline: deadline)
    }

    private mutating func skip(_ index: Int, because reason: String, now: NIODeadline) -> Action {
        self.failures.append("\(self.endpoint.sentinels[index]) \(reason)")
        let next = index + 1
        guard next < self.endpoint.sentinels.count else {
            self.state = .done
            return .failed(
                RedisError(
                    code: .primaryNotFound,
                    message: "no sentinel knows primary '\(self.endpoint.primaryName)' (tried "
                        + self.failures.joined(separator: "; ")
                        + "); check the sentinel addresses and the primary's name in the URL, that the sentinels run, "
                        + "and their password (sentinel_password= or \(RedisSentinelEndpoint.passwordVariable))",
                    redactedURL: self.redactedURL
                )
            )
        }
        return self.ask(next, now: now)
    }

    /// A peer's error text, bounded and escaped.
    private static func quote(_ text: String) -> String { LogSafe.text(text, limit: 120) }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? RedisError { return error.message }
        return "\(error)"
    }
}
