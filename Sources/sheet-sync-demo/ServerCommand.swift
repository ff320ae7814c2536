import ArgumentParser
import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import SheetSyncEvents
import SocketGatewayRedis
import SocketGatewayServer
import UnixSignals

/// `sheet-sync-demo server`: the page, the token and job API, and Socket.IO for the page's sync requests
/// (`sheet:sync:request`) and live updates.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Serve the page, accept sync requests (queued in Redis) and push workers' events to browsers."
    )

    @OptionGroup var shared: SharedOptions

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port: Int = 8001

    @Option(
        name: .customLong("token-secret"),
        help: "The HS256 secret of the demo's tokens (env SOCKET_TOKEN_SECRET, default: a fixed demo value)."
    )
    var tokenSecret: String?

    /// The old name of `--token-secret`, kept so scripts keep working; warns.
    @Option(name: .customLong("jwt-secret"), help: .hidden)
    var jwtSecret: String?

    func validate() throws {
        if self.tokenSecret != nil, self.jwtSecret != nil {
            throw ValidationError("--jwt-secret is the old name of --token-secret; give only --token-secret")
        }
    }

    func run() async throws {
        let logger = try self.shared.bootstrapLogging()
        let log = DemoLog(name: self.shared.name)
        MetricsSystem.bootstrap(
            DeliveryLogMetrics { clients in
                log.line("  ↳ pushed an event to \(clients) client\(clients == 1 ? "" : "s") connected here")
            }
        )
        if self.jwtSecret != nil {
            demoWarn("server", "--jwt-secret is deprecated; use --token-secret, as socket-gateway serve does")
        }
        let secret =
            self.tokenSecret ?? self.jwtSecret ?? ProcessInfo.processInfo.environment["SOCKET_TOKEN_SECRET"]
            ?? DemoDefaults.jwtSecret
        let (redisURL, parsedRedisURL) = try self.shared.checkedRedisURL(command: "server")
        let files: [String: DemoHTTPResponder.StaticFile]
        do {
            files = try DemoHTTPResponder.loadPublicFiles()
        } catch {
            throw demoFail("server", "\(error)", DemoExitCode.fileError)
        }
        let redisCommands = RedisCommandClient(url: parsedRedisURL, logger: logger)

        let authenticator = try JWTAuthenticator(secret: secret, logger: logger)
        let jobs = SyncJobQueue(
            serverName: self.shared.name,
            redis: redisCommands,
            jobQueue: self.shared.jobQueue,
            log: log
        )
        let responder = DemoHTTPResponder(
            serverName: self.shared.name,
            files: files,
            authenticator: authenticator,
            jwtSecret: secret,
            jobs: jobs,
            log: log
        )
        let configuration = SocketServerConfiguration(
            host: self.host,
            port: self.port,
            pingInterval: .seconds(10),
            pingTimeout: .seconds(10),
            eventLoopThreads: 1,
            redis: SocketServerRedisConfiguration(url: redisURL, channel: self.shared.channel)
        )
        let server = SocketServer(
            configuration: configuration,
            authenticator: authenticator,
            logger: logger,
            httpFallback: responder
        )

        let serverName = self.shared.name
        let page = server.namespace("/")
        page.onConnect { socket in
            let user = socket.user?.id ?? "?"
            log.line("\(user) connected (sid \(socket.id.prefix(8)), joined user:\(user))")
            socket.emit(
                "demo:welcome",
                .object([(key: "server", value: .string(serverName)), (key: "user", value: .string(user))])
            )
        }
        // The page asks for syncs with the catalog's typed client event; the ack carries the job id that every
        // sheet:sync:* event of the job carries. A payload that does not match events.yaml never gets here: the
        // client gets the refusal `{"error":"invalid_payload", ...}` as its ack.
        page.on(SheetSyncRequest.self) { socket, request, ack in
            guard let user = socket.user?.id else {
                ack.refuse("unauthorized", message: "this connection has no user")
                return
            }
            switch await jobs.queue(sheetID: request.sheetID, userID: user, via: SheetSyncRequest.eventName) {
            case .success(let queued):
                ack(SheetSyncRequestAck(jobID: queued.job.id, sheetID: queued.job.sheetID, queuedBy: serverName))
            case .failure(let refusal):
                ack.refuse(refusal.code, message: refusal.message)
            }
        }
        page.onDisconnect { socket, reason in
            log.line("\(socket.user?.id ?? "?") disconnected (sid \(socket.id.prefix(8)), \(reason))")
        }

        // The server is a service of the group: its run() owns every task it starts. A sibling child task
        // announces the port once it listens.
        let group = ServiceGroup(
            services: [server],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        )
        let host = self.host
        let redisText = parsedRedisURL.redacted
        let channel = self.shared.channel
        var listened = false
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                tasks.addTask { try await group.run() }
                if let port = await server.waitUntilListening() {
                    listened = true
                    log.line("ready http://\(host):\(port)/ (Redis \(redisText), channel \(channel))")
                }
            }
        } catch  where !listened {
            await redisCommands.shutdown()
            throw demoFail("server", "did not start: \(error)", DemoExitCode.didNotStart)
        }
        await redisCommands.shutdown()
        log.line("stopped")
    }
}
