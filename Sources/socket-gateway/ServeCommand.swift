import ArgumentParser
import Logging
import NIOCore
import ServiceLifecycle
import SocketGatewayCore
import SocketGatewayPrometheus
import SocketGatewayRedis
import SocketGatewayServer
import UnixSignals
import _EventCodegenCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `socket-gateway serve`: a Socket.IO server from flags and the environment.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a Socket.IO server (clustered through Redis when a Redis URL is given).",
        discussion: """
            Clients authenticate with `auth: {token: <JWT>}` and join the room
            user:<sub>. Tokens are verified with --token-secret (SOCKET_TOKEN_SECRET,
            HS256/384/512) and/or a public key or key set: SOCKET_JWT_PUBLIC_KEY (PEM
            file), SOCKET_JWT_JWKS (https URL or file), SOCKET_JWT_JWKS_REFRESH,
            SOCKET_JWT_ALGORITHMS, SOCKET_JWT_AUDIENCE, SOCKET_JWT_ISSUER,
            SOCKET_JWT_LEEWAY, SOCKET_JWT_USER_CLAIM, SOCKET_JWT_REQUIRE_EXP. Without
            any key the server refuses to start unless --allow-anonymous is given;
            then clients are NOT authenticated. A secret shorter than 32 bytes can be
            guessed: it is refused (RFC 7518 §3.2). Without a Redis URL the server
            runs local-only.

            With --tls-cert and --tls-key (or SOCKET_TLS_CERT, SOCKET_TLS_KEY) it serves
            https:// and wss:// only; SIGHUP reads both files again (new connections get
            the new certificate, open ones stay; a bad file keeps the old one, logged).

            Prints `LISTENING <port>` on stdout once listening. GET /healthz reports
            the cluster link (200, or 503 while the Redis subscriber is down).
            GET /metrics answers the metrics in the Prometheus text format; env
            SOCKET_METRICS_PORT (and SOCKET_METRICS_HOST) moves them to a port of their
            own, SOCKET_METRICS_PATH changes the path, SOCKET_METRICS=off turns them off.
            Stops gracefully on SIGINT / SIGTERM.

            With --catalog events.yaml, events other hosts publish on the Redis channel
            are checked against the catalog: mismatches are logged and counted
            (socketgateway_inbound_rejected_total, /healthz redis.inbound_rejected);
            with --strict they are also dropped, unknown events included.

            EXAMPLE
              SOCKET_TOKEN_SECRET="$(openssl rand -hex 32)" socket-gateway serve \\
                --port 3000 --redis-url redis://127.0.0.1:6379
            """
    )

    /// The server's defaults, shown in `--help`. An empty environment holds no wrong value, so it never throws.
    private static let defaults =
        (try? SocketServerConfiguration(environment: [:])) ?? SocketServerConfiguration(host: "127.0.0.1")
    /// The allowed ping interval and timeout, in seconds: at least a millisecond, at most an hour.
    static let pingRange: ClosedRange<Double> = 0.001...3600
    /// ``pingRange`` as `--help` and the messages write it.
    static let pingRangeText =
        "\(Self.seconds(Self.pingRange.lowerBound)) to \(Self.seconds(Self.pingRange.upperBound))"
    /// The environment variable of `--ping-interval`.
    static let pingIntervalVariable = "SOCKET_PING_INTERVAL"
    /// The environment variable of `--ping-timeout`.
    static let pingTimeoutVariable = "SOCKET_PING_TIMEOUT"

    @Option(help: "Address to listen on (env HOST, default \(Self.defaults.host)).") var host: String?
    @Option(help: "Port; 0 picks a free one (env PORT, default \(Self.defaults.port)).") var port: Int?
    @Option(help: "Engine.IO path (env SOCKET_PATH, default \(Self.defaults.path)).") var path: String?
    @Option(name: .customLong("redis-url"), help: "Redis URL shared with workers and other servers (env REDIS_URL).")
    var redisURL: String?
    @Option(help: "Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).") var channel: String?
    @Option(
        name: .customLong("cors-origin"),
        help: "An origin allowed to use long-polling; repeatable; * allows any (env SOCKET_CORS_ORIGINS)."
    )
    var corsOrigins: [String] = []
    @Option(name: .customLong("token-secret"), help: "HS256 secret of client JWTs (env SOCKET_TOKEN_SECRET).")
    var tokenSecret: String?
    @Flag(name: .customLong("allow-anonymous"), help: "Start without a token secret: clients are not authenticated.")
    var allowAnonymous = false
    @Flag(
        name: .customLong("allow-weak-token-secret"),
        help: "No longer accepted: a token secret needs at least 32 bytes (RFC 7518 §3.2, enforced by jwt-kit)."
    )
    var allowWeakTokenSecret = false
    @Option(
        name: .customLong("ping-interval"),
        help: """
            Seconds between Engine.IO pings, \(Self.pingRangeText) \
            (env \(Self.pingIntervalVariable), default \(Self.seconds(Self.defaults.pingInterval))).
            """
    )
    var pingInterval: String?
    @Option(
        name: .customLong("ping-timeout"),
        help: """
            Seconds a client has to answer a ping, \(Self.pingRangeText) \
            (env \(Self.pingTimeoutVariable), default \(Self.seconds(Self.defaults.pingTimeout))).
            """
    )
    var pingTimeout: String?
    @Option(name: .customLong("namespace"), help: "Accept clients on this namespace too (besides /); repeatable.")
    var namespaces: [String] = []
    @Option(
        name: .customLong("tls-cert"),
        help: "PEM certificate chain: serve https:// and wss:// (env SOCKET_TLS_CERT; with --tls-key; SIGHUP reloads)."
    )
    var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert (env SOCKET_TLS_KEY).")
    var tlsKey: String?
    @Option(help: "An events.yaml to check other hosts' events against (log and count mismatches).")
    var catalog: String?
    @Flag(help: "With --catalog: drop other hosts' events that do not match the catalog.") var strict = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws {
        try bootstrapLogging("serve", level: self.logLevel)
        let logger = Logger(label: "socket-gateway")
        var configuration: SocketServerConfiguration
        do {
            configuration = try SocketServerConfiguration(environment: nil)
        } catch {
            // One wording for a variable and its flag: `PORT must be …, got '…'` as `--port must be …, got '…'`.
            throw fail("serve", "\(error.variable) \(error.message)", ExitCodes.notConfigured)
        }
        if let host { configuration.host = host }
        if let port {
            guard (0...65535).contains(port) else {
                throw fail("serve", "--port must be 0...65535, got '\(port)'", ExitCodes.usage)
            }
            configuration.port = port
        }
        if let path {
            guard path.hasPrefix("/") else {
                throw fail("serve", "--path must start with '/', got '\(path)'", ExitCodes.usage)
            }
            configuration.path = path.hasSuffix("/") ? path : path + "/"
        }
        // Flag over environment; a wrong value is named as it was given (the flag, or the variable).
        for (flag, variable, value, setting) in [
            ("--ping-interval", Self.pingIntervalVariable, self.pingInterval, \SocketServerConfiguration.pingInterval),
            ("--ping-timeout", Self.pingTimeoutVariable, self.pingTimeout, \SocketServerConfiguration.pingTimeout),
        ] {
            let given: (name: String, text: String, code: ExitCode)
            if let value {
                given = (flag, value, ExitCodes.usage)
            } else if let text = environment(variable) {
                given = (variable, text, ExitCodes.notConfigured)
            } else {
                continue
            }
            guard let seconds = Double(given.text), Self.pingRange.contains(seconds) else {
                throw fail(
                    "serve",
                    "\(given.name) must be \(Self.pingRangeText) seconds, got '\(LogSafe.text(given.text))'",
                    given.code
                )
            }
            configuration[keyPath: setting] = .milliseconds(Int64((seconds * 1000).rounded()))
        }
        if let redisURL {
            // The flag replaces only the URL: SOCKET_REDIS_CHANNEL and the signing secret still apply, as for emit.
            let signingSecret = environment(SocketServerConfiguration.EnvironmentKey.redisSigningSecret)
            let channel = environment(SocketServerConfiguration.EnvironmentKey.redisChannel) ?? "socketio"
            configuration.redis =
                redisURL.isEmpty
                ? nil
                : SocketServerRedisConfiguration(
                    url: redisURL,
                    channel: channel,
                    signingSecret: signingSecret,
                    tls: RedisTLSConfiguration(environment: nil)
                )
            // The room-channel settings of the environment apply too.
            if !redisURL.isEmpty {
                let keys = [
                    SocketServerConfiguration.EnvironmentKey.redisMode,
                    SocketServerConfiguration.EnvironmentKey.redisRoomUnsubscribeDelay,
                    SocketServerConfiguration.EnvironmentKey.redisReadCoalesce,
                    SocketServerConfiguration.EnvironmentKey.redisRequestsMaxPending,
                    SocketServerConfiguration.EnvironmentKey.redisRequestsMaxAnswering,
                    SocketServerConfiguration.EnvironmentKey.redisRequestsMaxBytes,
                ]
                var variables = ["REDIS_URL": redisURL]
                for key in keys { variables[key] = environment(key) }
                do {
                    let fromEnvironment = try SocketServerConfiguration(environment: variables).redis
                    configuration.redis?.mode = fromEnvironment?.mode ?? .python
                    configuration.redis?.roomUnsubscribeDelay = fromEnvironment?.roomUnsubscribeDelay ?? .seconds(30)
                    configuration.redis?.readCoalescing =
                        fromEnvironment?.readCoalescing ?? RedisSubscriberConfiguration.defaultReadCoalescing
                    configuration.redis?.requestLimits = fromEnvironment?.requestLimits ?? ClusterRequestLimits()
                } catch {
                    throw fail("serve", "\(error.variable) \(error.message)", ExitCodes.notConfigured)
                }
            }
        }
        if let channel {
            configuration.redis?.channel = channel
        }
        if let secret = configuration.redis?.signingSecret {
            do {
                _ = try PubSubSigningKey(secret: secret)
            } catch {
                throw fail("serve", "SOCKET_REDIS_SIGNING_SECRET: \(error)", ExitCodes.notConfigured)
            }
        }
        switch (self.tlsCertificate, self.tlsKey) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            // The flags name the files; SOCKET_TLS_HANDSHAKE_TIMEOUT (checked with the environment) still applies.
            let handshakeTimeout = environment(SocketServerTLSConfiguration.EnvironmentKey.handshakeTimeout)
                .flatMap { try? SocketServerTLSConfiguration.handshakeTimeout(parsing: $0) }
            configuration.tls = SocketServerTLSConfiguration(
                certificateChainFile: certificate,
                privateKeyFile: key,
                handshakeTimeout: handshakeTimeout ?? .seconds(10)
            )
        case (_?, nil):
            throw fail("serve", "--tls-cert needs --tls-key (the certificate's private key)", ExitCodes.usage)
        case (nil, _?):
            throw fail("serve", "--tls-key needs --tls-cert (the certificate chain)", ExitCodes.usage)
        }
        try self.checkCORSOrigins()
        if !self.corsOrigins.isEmpty { configuration.cors = SocketServerConfiguration.corsPolicy(self.corsOrigins) }
        for namespace in self.namespaces {
            if let problem = namespaceProblem(namespace) { throw fail("serve", problem, ExitCodes.usage) }
        }
        if let tokenSecret { configuration.tokenSecret = tokenSecret.isEmpty ? nil : tokenSecret }
        try self.checkTokenSecret(configuration.tokenSecret)
        if self.strict, self.catalog == nil {
            throw fail("serve", "--strict needs --catalog <events.yaml>", ExitCodes.usage)
        }
        if let catalogPath = self.catalog {
            guard let contents = readFile(catalogPath) else {
                throw fail("serve", "cannot read '\(catalogPath)': \(lastError())", ExitCodes.fileError)
            }
            let catalog: Catalog
            do {
                catalog = try GeneratorPipeline.parseCatalog(InputFile(path: catalogPath, contents: contents))
            } catch {
                printError(error.description)
                throw fail("serve", "the catalog '\(catalogPath)' has errors", ExitCodes.catalogErrors)
            }
            let validator = CatalogInboundValidator(catalog: catalog)
            configuration.inboundValidation = self.strict ? .strict(validator) : .logOnly(validator)
            if configuration.redis == nil {
                logger.warning("--catalog has no effect without a Redis URL: only other hosts' events are checked")
            }
        }

        if configuration.jwt != nil, self.allowAnonymous {
            throw fail(
                "serve",
                "SOCKET_JWT_… settings and --allow-anonymous contradict each other: drop --allow-anonymous to "
                    + "require tokens, or the SOCKET_JWT_… variables to accept anonymous clients",
                ExitCodes.usage
            )
        }
        if configuration.tokenSecret == nil, configuration.jwt == nil {
            guard self.allowAnonymous else {
                throw fail(
                    "serve",
                    "no token secret: set --token-secret or SOCKET_TOKEN_SECRET, or pass --allow-anonymous to accept unauthenticated clients",
                    ExitCodes.notConfigured
                )
            }
            // The server logs that clients are not authenticated when it starts.
            configuration.allowAnonymous = true
        }

        if let text = configuration.redis?.url {
            let url = try resolveRedisURL(text, command: "serve")
            // The subscriber retries forever, which rides out an outage but not a wrong password: check that first.
            if let refusal = await redisRefusal(url) {
                throw fail("serve", redisRefusalMessage(refusal, url: url), ExitCodes.notConfigured)
            }
        }
        let metrics = try Self.setUpMetrics(configuration, logger: logger)
        let authenticator = try await self.makeAuthenticator(configuration, logger: logger)
        let server = SocketServer(
            configuration: configuration,
            authenticator: authenticator,
            logger: logger,
            httpFallback: metrics.responder
        )
        for namespace in self.namespaces { server.namespace(namespace) }
        // The server is a service of the group: its run() owns every task it starts. A sibling child task
        // announces the port once it listens.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let metricsServer = metrics.server { services.append(.init(service: metricsServer)) }
        if configuration.tls != nil {
            // After the server: shut down first (the group shuts down in reverse order).
            let hangups = await UnixSignalsSequence(trapping: .sighup)
            services.append(.init(service: TLSReloadOnHangup(server: server, hangups: hangups, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        var listened = false
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                tasks.addTask { try await group.run() }
                if let port = await server.waitUntilListening() {
                    listened = true
                    printLine("LISTENING \(port)")
                    if let metricsPort = await metrics.server?.waitUntilListening() {
                        printLine("METRICS LISTENING \(metricsPort)")
                    }
                }
            }
        } catch let error as PrometheusMetricsListenError {
            throw fail("serve", Self.metricsListenFailure(error), ExitCode.failure)
        } catch  where !listened {
            // The error's type and errno are for whoever debugs the CLI, not for the operator.
            logger.debug("the server could not start", metadata: ["error": "\(error)"])
            if let error = error as? SocketServerConfigurationError {
                throw fail("serve", "\(error)", ExitCodes.notConfigured)
            }
            throw fail(
                "serve",
                Self.listenFailure(error, host: configuration.host, port: configuration.port),
                ExitCode.failure
            )
        }
    }

    /// Seconds as an operator writes them: `25`, `0.5`, `0.001`.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(value)
    }

    /// A duration in seconds, as ``seconds(_:)-(Double)`` writes them.
    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return Self.seconds(Double(seconds) + Double(attoseconds) / 1e18)
    }
}

extension ServeCommand {
    /// Why the server could not listen on `host`:`port`, and what to do, for the error its bind threw.
    static func listenFailure(_ error: any Error, host: String, port: Int) -> String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let what = "cannot listen on \(address)"
        if error is SocketAddressError || error is SocketAddressError.UnknownHost {
            return "\(what): the host name '\(host)' does not resolve; pass an IP address or a name this machine "
                + "resolves with --host (or HOST)"
        }
        guard let error = error as? IOError else { return "\(what): \(error)" }
        switch error.errnoCode {
        case EADDRINUSE:
            return "\(what): the address is already in use; stop what uses it or pass another --port (or PORT)"
        case EACCES:
            return "\(what): permission denied (ports below 1024 need privileges); pass a --port of 1024 or more"
        case EADDRNOTAVAIL:
            return "\(what): no network interface of this machine has the address \(host); pass another --host "
                + "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
        default:
            return "\(what): \(String(cString: strerror(error.errnoCode)))"
        }
    }

    /// Refuses an allowed origin that a browser's `Origin` header never equals (64 from `--cors-origin`, 78 from
    /// `SOCKET_CORS_ORIGINS`, which the flags override), saying what to write instead.
    private func checkCORSOrigins() throws {
        let fromFlags = !self.corsOrigins.isEmpty
        let origins =
            fromFlags
            ? self.corsOrigins
            : (environment(SocketServerConfiguration.EnvironmentKey.corsOrigins) ?? "").split(separator: ",").map {
                String($0.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
            }.filter { !$0.isEmpty }
        for origin in origins {
            guard let problem = corsOriginProblem(origin) else { continue }
            let source = fromFlags ? "--cors-origin" : SocketServerConfiguration.EnvironmentKey.corsOrigins
            let option = fromFlags ? "--cors-origin " : ""
            let instead =
                problem.instead.map { "write \(option)\($0)" }
                ?? "write http(s)://host[:port], e.g. \(option)https://app.example.com, or * for any origin"
            throw fail(
                "serve",
                "\(source) '\(origin)' never matches a browser's Origin header: \(problem.reason); \(instead)",
                fromFlags ? ExitCodes.usage : ExitCodes.notConfigured
            )
        }
    }

    /// The JWT authenticator of the secret and `SOCKET_JWT_…` settings (nil for anonymous), checked now: a bad key,
    /// URL or algorithm list, or a key set file that holds no usable key, stops `serve` (78) with the variable
    /// named. A key set URL that cannot be fetched now is logged and fetched again when a client needs it.
    private func makeAuthenticator(
        _ configuration: SocketServerConfiguration,
        logger: Logger
    ) async throws -> JWTAuthenticator? {
        guard configuration.tokenSecret != nil || configuration.jwt != nil else { return nil }
        var jwt = configuration.jwt ?? JWTAuthenticator.Configuration()
        if jwt.secret == nil { jwt.secret = configuration.tokenSecret }
        let authenticator: JWTAuthenticator
        do {
            authenticator = try JWTAuthenticator(configuration: jwt, logger: logger)
        } catch {
            typealias Key = SocketServerConfiguration.EnvironmentKey
            if error.variable == "keys" {
                throw fail(
                    "serve",
                    "SOCKET_JWT_… settings but no key: set --token-secret / SOCKET_TOKEN_SECRET, "
                        + "SOCKET_JWT_PUBLIC_KEY or SOCKET_JWT_JWKS",
                    ExitCodes.notConfigured
                )
            }
            let variable =
                [
                    "publicKeyPEM": Key.jwtPublicKey, "keySet": Key.jwtKeySet, "algorithms": Key.jwtAlgorithms,
                    "secret": Key.tokenSecret, "userClaim": Key.jwtUserClaim, "audiences": Key.jwtAudience,
                    "leeway": Key.jwtLeeway, "keySetRefreshInterval": Key.jwtKeySetRefresh,
                ][error.variable] ?? error.variable
            throw fail("serve", "\(variable) \(error.message)", ExitCodes.notConfigured)
        }
        if let problem = await authenticator.loadKeySet() {
            guard case .url = jwt.keySet else {
                throw fail("serve", "SOCKET_JWT_JWKS \(problem)", ExitCodes.notConfigured)
            }
            logger.warning(
                "JWT key set not fetched at startup; fetched again when a client needs it",
                metadata: ["error": "\(problem)"]
            )
        }
        return authenticator
    }

    /// The fewest bytes of a token secret `serve` accepts: HMAC keys shorter than the hash can be guessed
    /// (RFC 7518 §3.2; jwt-kit refuses them).
    static let minimumTokenSecretBytes = JWTAuthenticator.minimumSecretBytes

    /// Refuses a token secret together with `--allow-anonymous` (contradictory: 64), a secret shorter than
    /// ``minimumTokenSecretBytes`` (64 from the flag, 78 from the environment), and `--allow-weak-token-secret`,
    /// which no longer has a use (64).
    private func checkTokenSecret(_ secret: String?) throws {
        guard let secret else { return }
        let source = self.tokenSecret?.isEmpty == false ? "--token-secret" : "SOCKET_TOKEN_SECRET"
        if self.allowAnonymous {
            throw fail(
                "serve",
                "\(source) and --allow-anonymous contradict each other: with a token secret every client must "
                    + "authenticate; drop --allow-anonymous to require tokens, or the secret to accept anonymous clients",
                ExitCodes.usage
            )
        }
        if self.allowWeakTokenSecret {
            throw fail(
                "serve",
                "--allow-weak-token-secret is no longer accepted: a token secret needs at least "
                    + "\(Self.minimumTokenSecretBytes) bytes (RFC 7518 §3.2; jwt-kit refuses shorter HMAC keys)",
                ExitCodes.usage
            )
        }
        let length = secret.utf8.count
        guard length >= Self.minimumTokenSecretBytes else {
            throw fail(
                "serve",
                "\(source) is \(length) bytes, too short to keep tokens from being forged: use at least "
                    + "\(Self.minimumTokenSecretBytes) random bytes (e.g. `openssl rand -base64 32`)",
                source == "--token-secret" ? ExitCodes.usage : ExitCodes.notConfigured
            )
        }
    }
}
