// What a server and a worker user writes, compiled with MemberImportVisibility and InternalImportsByDefault on,
// importing only the products (plus swift-log and NIOHTTP1 for the fallback page): if the public API stopped
// exposing something a user needs, or exposed the engine room again, this target shows it.
// tools/test-consumer runs it, then builds it with -DCONSUMER_ENGINE_ROOM and expects that build to fail.
import ConsumerEvents
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import SocketGatewayServer
import SocketGatewayWorker

nonisolated(unsafe) var failures = 0
func check(_ condition: Bool, _ message: String) {
    print(condition ? "ok: \(message)" : "FAILED: \(message)")
    if !condition { failures += 1 }
}

/// The application's own page at `/`, next to Socket.IO.
struct Page: HTTPFallbackResponder {
    func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
        HTTPFallbackResponse(status: .ok, headers: ["Content-Type": "text/plain"], body: ByteBuffer(string: "hi\n"))
    }
}

/// A cluster over something else than Redis: here, nothing (it only counts), but written against the public seam.
final class CountingCluster: ClusterAdapter, @unchecked Sendable {
    private let counts = NSLock()
    /// Guarded by `counts`.
    private var emits = 0
    var emitted: Int { self.counts.withLock { self.emits } }
    var modeDescription: String { "counting (consumer check)" }
    var health: ClusterHealth { ClusterHealth(mode: .custom(name: "counting")) }
    func start(gateway: SocketGateway) {}
    func shutdown() async {}
    func emitted(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        local: EmitResult
    ) async -> EmitResult {
        self.counts.withLock { self.emits += 1 }
        return local
    }
    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
        EmitResult(outcome: localMatches > 0 ? .delivered : .failed, localDeliveries: localMatches)
    }
    func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        sid: String,
        namespace: String,
        timeout: Duration
    ) async throws -> [JSONValue]? { nil }
}

var logger = Logger(label: "consumer-server-check")
logger.logLevel = .error
var configuration = SocketServerConfiguration(
    port: 0,
    cors: .origins(["https://app.example.com"]),
    eventLoopThreads: 1,
    tokenSecret: "consumer-check-secret-0123456789abcdef"
)
configuration.maxQueuedEventsPerConnection = 64
configuration.eventRateLimit = SocketEventRateLimit(eventsPerSecond: 50, burst: 100)
configuration.inboundValidation = .strict(InvoiceEvent.self)
let redisTimings = ClusterTimings(remoteAckTimeout: .seconds(30))
check(
    SocketServerRedisConfiguration(url: "redis://127.0.0.1", timings: redisTimings).timings.connectTimeout
        == .seconds(1),
    "cluster timings are public, with defaults"
)

let cluster = CountingCluster()
let server = SocketServer(configuration: configuration, logger: logger, httpFallback: Page(), cluster: cluster)
server.namespace("/").onConnect { socket in
    if let user = socket.user { await socket.join("user:\(user.id)") }
    socket.emit("welcome", .string(socket.id))
}
server.namespace("/").on("ping") { socket, arguments, ack in
    ack?(.string("pong"))
}
// A typed client event: the payload arrives decoded (or is refused before the handler), the ack takes the type.
server.namespace("/").on(InvoiceRemind.self) { socket, request, ack in
    ack(InvoiceRemindAck(queued: request.channel == "email"))
}
server.namespace("/").onDisconnect { socket, reason in
    _ = reason.description
}
try await server.start()
check(server.localPort != nil, "server listens on an ephemeral port")
check(server.clusterHealth.mode == .custom(name: "counting") && server.clusterHealth.isHealthy, "custom cluster health")

let result = await server.gateway.emit(
    InvoicePaid(invoiceID: UUID(), paidAt: Date(timeIntervalSince1970: 0)),
    toUser: "42"
)
check(result.outcome == .delivered && cluster.emitted == 1, "typed emit through the server gateway reaches the adapter")
// An application mints its tokens with jwt-kit; the server verifies them (here with aud and iss checked).
let signingKeys = await JWTKeyCollection().add(
    hmac: HMACKey(from: "consumer-check-secret-0123456789abcdef"),
    digestAlgorithm: .sha256
)
let token = try await signingKeys.sign(
    ConsumerToken(
        sub: SubjectClaim(value: "42"),
        exp: ExpirationClaim(value: Date().addingTimeInterval(300)),
        aud: AudienceClaim(value: "consumer"),
        iss: IssuerClaim(value: "consumer-idp")
    )
)
let jwtConfiguration = JWTAuthenticator.Configuration(
    secret: "consumer-check-secret-0123456789abcdef",
    algorithms: [.hs256],
    audiences: ["consumer"],
    issuer: "consumer-idp"
)
check(
    try await JWTAuthenticator(configuration: jwtConfiguration, logger: logger)
        .verify(auth: ["token": .string(token)]).id == "42",
    "JWT authenticator configuration is public"
)
try await server.shutdown()

// The worker: unconfigured, it says so instead of throwing; its status type is re-exported.
let worker = WorkerSocketGateway(redisURL: nil, logger: logger)
let workerResult = await worker.emit(InvoicePaid(invoiceID: UUID(), paidAt: Date()), toUser: "42")
check(workerResult.outcome == .notConfigured, "unconfigured worker emit: \(workerResult.outcome)")
let status: RedisPublisherStatus? = worker.status
check(status == nil, "worker status is nil when not configured")
_ = await worker.shutdown()

// Generated payload types are Codable exactly as they are emitted.
let paid = InvoicePaid(
    invoiceID: UUID(uuidString: "0E5A7C1D-2B3F-4A5B-8C9D-0E1F2A3B4C5D")!,
    paidAt: Date(timeIntervalSince1970: 1_795_983_200)
)
let encoder = JSONEncoder()
encoder.outputFormatting = .sortedKeys
check(
    String(decoding: try encoder.encode(paid), as: UTF8.self)
        == #"{"invoice_id":"0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d","paid_at":"2026-11-29T20:13:20.000Z"}"#,
    "JSONEncoder writes a generated payload as it is emitted"
)

#if CONSUMER_ENGINE_ROOM
// Must not compile: the Engine.IO internals are not part of the server product's API.
let session: EngineIOSession? = nil
_ = EngineIOServer.self
#endif

if failures > 0 {
    print("\(failures) check(s) failed")
    exit(1)
}
print("consumer-server-check: all checks passed")

/// The claims the consumer's token endpoint signs.
struct ConsumerToken: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var aud: AudienceClaim
    var iss: IssuerClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
