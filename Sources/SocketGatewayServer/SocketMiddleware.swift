import NIOConcurrencyHelpers
public import SocketGatewayCore

/// A client asking to connect to a namespace, as the middlewares see it: what it sent, and what they set for the
/// connection (the user, the per-socket data).
public struct SocketConnectRequest: Sendable {
    /// The namespace the client asks for (for a dynamic namespace, the name it asked for, e.g. `/dynamic-12`).
    public let namespace: String
    /// What the client sent: the CONNECT payload (`auth`), headers, query, address.
    public let handshake: SocketHandshake
    /// The user the connection belongs to (it joins the room `user:<id>`); the authenticator's middleware sets it.
    public var user: AuthenticatedUser?
    /// The connection's per-socket data; a middleware sets it, handlers read it (``SocketConnection/data``).
    public var data: SocketData

    /// Creates a request (middleware tests build their own).
    public init(
        namespace: String,
        handshake: SocketHandshake,
        user: AuthenticatedUser? = nil,
        data: SocketData = SocketData()
    ) {
        self.namespace = namespace
        self.handshake = handshake
        self.user = user
        self.data = data
    }
}

/// Thrown by a middleware to refuse a client: it gets CONNECT_ERROR `{"message": message, "data": data}`, which
/// socket.io-client passes to its `connect_error` listener as `err.message` and `err.data` (python-socketio's
/// `connect_error` handler gets the whole object).
public struct SocketConnectRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why, for the client.
    public var message: String
    /// More for the client (a retry time, a reason code); omitted from the packet when nil.
    public var data: JSONValue?

    /// Creates a refusal.
    /// - Parameters:
    ///   - message: Why, for the client.
    ///   - data: More for the client; omitted when nil.
    public init(_ message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }

    /// The refusal the authenticator's middleware sends (the reference server's wording).
    public static let unauthorized = SocketConnectRefusal("Unauthorized")

    /// What a client gets when a middleware threw another error than a refusal (the error itself is logged, not
    /// sent: it may say more than a client should read).
    public static let serverError = SocketConnectRefusal("Server error")

    /// The text shown when this value is printed or logged.
    public var description: String {
        guard let data = self.data else { return "connect refused: \(self.message)" }
        return "connect refused: \(self.message) (data: \(data))"
    }
}

/// One step run before a client's CONNECT to a namespace is accepted (socket.io's `io.use` / `namespace.use`).
///
/// It reads the ``SocketConnectRequest`` and may set its `user` and `data`; it refuses the client by throwing
/// ``SocketConnectRefusal``. Any other error refuses with ``SocketConnectRefusal/serverError`` and is logged.
/// Middlewares run one after another, the server's first, then the namespace's, each in the order added; the
/// first refusal stops the chain.
public struct SocketMiddleware: Sendable {
    /// The step.
    public typealias Body = @Sendable (inout SocketConnectRequest) async throws -> Void

    let body: Body

    /// Wraps a closure.
    public init(_ body: @escaping Body) {
        self.body = body
    }

    /// Runs `authenticator`: sets the request's user, or refuses with ``SocketConnectRefusal/unauthorized``.
    /// What `SocketServer(configuration:authenticator:…)` installs as the first server middleware.
    public static func authenticate(with authenticator: any SocketAuthenticator) -> SocketMiddleware {
        SocketMiddleware { request in
            guard
                let user = await authenticator.authenticate(
                    auth: request.handshake.auth,
                    handshake: request.handshake
                )
            else {
                throw SocketConnectRefusal.unauthorized
            }
            request.user = user
        }
    }
}

/// How a middleware chain ended.
enum SocketMiddlewareOutcome: Sendable {
    /// Every middleware let the client in; the request carries what they set.
    case accepted(SocketConnectRequest)
    /// A middleware refused (or threw: `error` is what it threw, for the log).
    case refused(SocketConnectRefusal, error: (any Error)?)

    /// Runs `middlewares` in order on `request`, stopping at the first that throws.
    static func run(_ middlewares: [SocketMiddleware], on request: SocketConnectRequest) async -> Self {
        var request = request
        for middleware in middlewares {
            do {
                try await middleware.body(&request)
            } catch let refusal as SocketConnectRefusal {
                return .refused(refusal, error: nil)
            } catch {
                return .refused(.serverError, error: error)
            }
        }
        return .accepted(request)
    }

    /// Runs `middlewares` on `request` until the chain ends or `stop` is stopped (its client's session closed):
    /// then the chain's task is cancelled, and nil is returned once it has returned.
    static func run(
        _ middlewares: [SocketMiddleware],
        on request: SocketConnectRequest,
        until stop: SocketMiddlewareStop
    ) async -> Self? {
        await withTaskGroup(of: Self?.self) { group in
            group.addTask { await Self.run(middlewares, on: request) }
            group.addTask {
                await stop.wait()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}

/// Tells a running middleware chain that its client is gone (the session closed, e.g. at the connect timeout).
final class SocketMiddlewareStop: Sendable {
    private enum State {
        case running(CheckedContinuation<Void, Never>?)
        case stopped
    }

    private let state = NIOLockedValueBox(State.running(nil))

    /// Ends ``wait()``, now or when it is called; idempotent.
    func stop() {
        let waiter = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard case .running(let waiter) = state else { return nil }
            state = .stopped
            return waiter
        }
        waiter?.resume()
    }

    /// Returns once ``stop()`` was called or the calling task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let stopped = self.state.withLockedValue { state -> Bool in
                    guard case .running = state else { return true }
                    state = .running(continuation)
                    return false
                }
                if stopped { continuation.resume() }
            }
        } onCancel: {
            self.stop()
        }
    }
}
