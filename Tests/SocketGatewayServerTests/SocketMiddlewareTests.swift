import MetricsTestKit
import NIOConcurrencyHelpers
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

/// The pure parts of middlewares, per-socket data and dynamic namespaces (end to end:
/// Tests/Interop/test_middleware.py).
@Suite struct SocketMiddlewareTests {
    struct Profile: Codable, Sendable, Hashable {
        var name: String
        var level: Int
    }
    enum ProfileKey: SocketDataKey { typealias Value = Profile }
    enum TraceKey: SocketDataKey {
        typealias Value = String
        static let name = "trace"
    }
    enum LevelKey: SocketDataKey {
        typealias Value = Int
        static let name = "ProfileKey"  // the same JSON key as ProfileKey, another type
    }

    private func request(auth: JSONValue? = nil) -> SocketConnectRequest {
        SocketConnectRequest(namespace: "/", handshake: SocketHandshake(auth: auth))
    }

    @Test func middlewaresRunInOrderAndSeeWhatEarlierOnesSet() async {
        let order = NIOLockedValueBox<[String]>([])
        let first = SocketMiddleware { request in
            order.withLockedValue { $0.append("first") }
            request.data[TraceKey.self] = "t1"
        }
        let second = SocketMiddleware { request in
            order.withLockedValue { $0.append("second:\(request.data[TraceKey.self] ?? "-")") }
            request.user = AuthenticatedUser(id: "ada")
        }
        guard case .accepted(let accepted) = await SocketMiddlewareOutcome.run([first, second], on: self.request())
        else {
            Issue.record("expected the request to be accepted")
            return
        }
        #expect(order.withLockedValue { $0 } == ["first", "second:t1"])
        #expect(accepted.user?.id == "ada")
        #expect(accepted.data[TraceKey.self] == "t1")
    }

    @Test func aRefusalStopsTheChainWithItsMessageAndData() async {
        let ran = NIOLockedValueBox(false)
        let refuse = SocketMiddleware { _ in throw SocketConnectRefusal("banned", data: ["until": 5]) }
        let after = SocketMiddleware { _ in ran.withLockedValue { $0 = true } }
        let outcome = await SocketMiddlewareOutcome.run([refuse, after], on: self.request())
        guard case .refused(let refusal, let error) = outcome else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal == SocketConnectRefusal("banned", data: ["until": 5]))
        #expect(error == nil)
        #expect(!ran.withLockedValue { $0 })
    }

    @Test func anotherErrorRefusesWithTheGenericMessageAndKeepsTheErrorForTheLog() async {
        struct Broken: Error {}
        let failing = SocketMiddleware { _ in throw Broken() }
        guard case .refused(let refusal, let error) = await SocketMiddlewareOutcome.run([failing], on: self.request())
        else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal == .serverError)
        #expect(refusal.data == nil)
        #expect(error is Broken)
    }

    /// Accepts `auth.user` as the user id (the JWT authenticator is tested in JWTTests).
    struct NamedUserAuthenticator: SocketAuthenticator {
        func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
            auth?["user"]?.stringValue.map { AuthenticatedUser(id: $0) }
        }
    }

    @Test func theAuthenticatorMiddlewareSetsTheUserOrRefusesUnauthorized() async {
        let middleware = SocketMiddleware.authenticate(with: NamedUserAuthenticator())
        guard
            case .accepted(let accepted) = await SocketMiddlewareOutcome.run(
                [middleware],
                on: self.request(auth: ["user": "ada"])
            )
        else {
            Issue.record("expected the request to be accepted")
            return
        }
        #expect(accepted.user?.id == "ada")
        guard
            case .refused(let refusal, nil) = await SocketMiddlewareOutcome.run(
                [middleware],
                on: self.request(auth: ["token": "nope"])
            )
        else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal == .unauthorized)
        #expect(refusal.message == "Unauthorized")
    }

    @Test func socketDataIsTypedAndRoundTripsThroughJSON() throws {
        var data = SocketData()
        #expect(data.isEmpty)
        #expect(data[ProfileKey.self] == nil)
        data[ProfileKey.self] = Profile(name: "Ada", level: 3)
        data[TraceKey.self] = "t-1"
        #expect(data[ProfileKey.self] == Profile(name: "Ada", level: 3))
        #expect(data.names == ["ProfileKey", "trace"])
        // Another type under the same name does not read it as its own.
        #expect(data[LevelKey.self] == nil)

        let json = try data.jsonValue()
        #expect(json == ["ProfileKey": ["level": 3, "name": "Ada"], "trace": "t-1"])
        let read = SocketData(json: json)
        #expect(read[ProfileKey.self] == Profile(name: "Ada", level: 3))
        #expect(read[TraceKey.self] == "t-1")
        #expect(read[LevelKey.self] == nil)
        #expect(try read.jsonValue() == json)
        #expect(SocketData(json: "not an object").isEmpty)

        data[TraceKey.self] = nil
        #expect(data.names == ["ProfileKey"])
    }

    @Test func dynamicChildrenShareTheParentsHandlersAndLiveWhileConnected() {
        let registry = NamespaceRegistry(metrics: SocketServerMetrics(factory: TestMetrics()))
        let parent = registry.dynamicNamespace(label: "/dynamic-*") { $0.hasPrefix("/dynamic-") }
        let registered = registry.namespace("/dynamic-static")
        parent.on("ping") { _, _, _ in }
        parent.use { _ in }

        #expect(registry.existing("/other") == nil)
        // A registered namespace wins over a dynamic parent that would accept its name.
        #expect(registry.existing("/dynamic-static") === registered)
        guard let child = registry.existing("/dynamic-1") else {
            Issue.record("expected /dynamic-1 to be accepted")
            return
        }
        #expect(child.name == "/dynamic-1" && child.parent === parent)
        #expect(child.handlesEvent("ping") && !child.handlesEvent("pong"))
        #expect(registry.middlewares(for: child).count == 1)
        // Handlers added to the parent later reach its children.
        parent.on("pong") { _, _, _ in }
        #expect(child.handlesEvent("pong"))

        #expect(registry.children(of: parent).isEmpty)
        registry.retain(child)
        registry.retain(child)
        #expect(registry.existing("/dynamic-1") === child)
        #expect(registry.children(of: parent) == ["/dynamic-1"])
        registry.release("/dynamic-1")
        #expect(registry.children(of: parent) == ["/dynamic-1"])
        registry.release("/dynamic-1")
        #expect(registry.children(of: parent).isEmpty)
        // Registered namespaces are not counted.
        registry.retain(registered)
        #expect(registry.children(of: parent).isEmpty)
    }

    @Test func onAnyMakesEveryEventHandled() {
        let registry = NamespaceRegistry(metrics: SocketServerMetrics(factory: TestMetrics()))
        let namespace = registry.namespace("/")
        #expect(!namespace.handlesEvent("anything"))
        namespace.onAny { _, _, _, _ in }
        #expect(namespace.handlesEvent("anything"))
        #expect(namespace.anyEventHandlers.count == 1)
    }

    @Test func serverMiddlewaresRunBeforeTheNamespaces() async {
        let registry = NamespaceRegistry(metrics: SocketServerMetrics(factory: TestMetrics()))
        let namespace = registry.namespace("/admin")
        let order = NIOLockedValueBox<[String]>([])
        namespace.use { _ in order.withLockedValue { $0.append("namespace") } }
        registry.use(SocketMiddleware { _ in order.withLockedValue { $0.append("server") } })
        _ = await SocketMiddlewareOutcome.run(registry.middlewares(for: namespace), on: self.request())
        #expect(order.withLockedValue { $0 } == ["server", "namespace"])
    }
}
