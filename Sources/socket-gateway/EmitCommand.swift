import ArgumentParser
import Logging
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayWorker
import _EventCodegenCore

/// `socket-gateway emit`: one emit through `WorkerSocketGateway`, as a job would make it.
struct EmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emit",
        abstract: "Publish one event to Socket.IO clients through Redis (as a worker does).",
        discussion: """
            Exactly one of --user, --room, --broadcast. JSON is the event's one
            argument (@FILE reads it from a file, - from stdin); without it the
            event has no arguments, and data waiting on stdin is refused. Prints the
            outcome and how many servers were subscribed.

            Before publishing, waits up to --timeout for Redis to answer and for at
            least --min-subscribers servers to be subscribed to the channel (a Redis
            restart or a rolling deploy is ridden out), then publishes once.

            Exit codes: 0 published to at least --min-subscribers servers,
            64 bad usage or JSON, 65 refused by --catalog, 69 Redis unavailable,
            75 published, but fewer than --min-subscribers servers were listening,
            78 no usable Redis URL, or Redis refused its password or database.

            Sids may start with '-': write them as --room=SID / --except=SID.

            EXAMPLE
              REDIS_URL=redis://127.0.0.1:6379 socket-gateway emit \\
                --catalog events.yaml --user 42 sheet:sync:completed @payload.json
            """
    )

    // Arrays, so a second --user or --room is refused rather than silently replacing the first.
    @Option(name: .customLong("user"), help: "Emit to the clients authenticated as this user (room user:<ID>).")
    var users: [String] = []
    @Option(name: .customLong("room"), help: "Emit to the members of this room (a client's sid is a room).")
    var rooms: [String] = []
    @Flag(help: "Emit to every client of the namespace.") var broadcast = false
    @Option(help: "The Socket.IO namespace, starting with /") var namespace = "/"
    @Option(name: .customLong("except"), help: "A room (or sid) whose members are skipped; repeatable.")
    var excluding: [String] = []
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL, no default: one of the two is needed).")
    var redisURL: String?
    @Option(help: "Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).") var channel: String?
    @Option(help: "Channel layout of the servers: python or rooms (env SOCKET_REDIS_MODE, default python).")
    var mode: String?
    @Option(help: "Seconds to wait for Redis and for --min-subscribers servers") var timeout: Double = 2
    @Option(
        name: .customLong("min-subscribers"),
        help: "Servers that must be subscribed for success (exit 75 when fewer heard it; 0: do not wait)"
    )
    var minSubscribers = 1
    @Option(help: "An events.yaml to check the event and payload against before emitting (default: none, not checked)")
    var catalog: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical")
    var logLevel = "error"
    @Argument(help: "The event name.") var event: String
    @Argument(help: "The event's argument as JSON; @FILE reads it from FILE, - from stdin (at most 16 MiB).")
    var json: String?

    func validate() throws {
        let targets = [!self.users.isEmpty, !self.rooms.isEmpty, self.broadcast].filter { $0 }.count
        guard targets == 1 else { throw ValidationError("give exactly one of --user, --room, --broadcast") }
        guard self.timeout > 0 && self.timeout <= 600 else {
            throw ValidationError("--timeout must be in (0, 600] seconds")
        }
        guard !self.event.isEmpty else { throw ValidationError("the event name is empty") }
        guard self.minSubscribers >= 0 else { throw ValidationError("--min-subscribers must be 0 or more") }
    }

    func run() async throws {
        let reserved = Catalog.reservedEventNames
        if reserved.contains(self.event) {
            throw fail(
                "emit",
                "event name '\(self.event)' is reserved by Socket.IO and cannot be emitted (reserved: "
                    + "\(reserved.joined(separator: ", "))); choose another name",
                ExitCodes.usage
            )
        }
        if let problem = self.targetProblem() { throw fail("emit", problem, ExitCodes.usage) }
        try bootstrapLogging("emit", level: self.logLevel)
        var arguments: [JSONValue] = []
        if let payload = try self.payload() {
            do {
                arguments = [try JSONValue.parse(payload.bytes)]
            } catch {
                throw fail(
                    "emit",
                    "the payload\(payload.source) is not valid JSON: at byte \(error.offset): \(error.message)",
                    ExitCodes.usage
                )
            }
        }
        if let catalogPath = self.catalog {
            guard let contents = readFile(catalogPath) else {
                throw fail("emit", "cannot read '\(catalogPath)': \(lastError())", ExitCodes.fileError)
            }
            let catalog: Catalog
            do {
                catalog = try GeneratorPipeline.parseCatalog(InputFile(path: catalogPath, contents: contents))
            } catch {
                printError(error.description)
                throw fail("emit", "the catalog '\(catalogPath)' has errors", ExitCodes.catalogErrors)
            }
            guard arguments.count == 1 else {
                throw fail(
                    "emit",
                    "refused by the catalog: \(self.event): a payload (JSON) is required",
                    ExitCodes.payloadRefused
                )
            }
            let payload = PayloadValue(arguments[0])
            let problems = catalog.problems(event: self.event, payload: payload, namespace: self.namespace)
            if problems.count == 1 {
                throw fail("emit", "refused by the catalog: \(problems[0])", ExitCodes.payloadRefused)
            }
            if !problems.isEmpty {
                // Every mismatch, one per line, so one run shows all there is to fix (at most 20 of them).
                var lines = problems.prefix(20).map { "  \($0)" }
                if problems.count > 20 { lines.append("  … and \(problems.count - 20) more") }
                throw fail(
                    "emit",
                    "refused by the catalog, \(problems.count) problems:\n" + lines.joined(separator: "\n"),
                    ExitCodes.payloadRefused
                )
            }
            // Published as the generated Swift type would write it (UUIDs in lowercase, as the catalog says).
            let canonical = catalog.canonicalPayload(event: self.event, payload: payload)
            if canonical != payload { arguments = [JSONValue(canonical)] }
        }

        let target: EmitTarget
        if let user = self.users.first {
            target = .user(user)
        } else if let room = self.rooms.first {
            target = .room(room)
        } else {
            target = .broadcast
        }
        let redisURL = self.redisURL ?? environment("REDIS_URL")
        let channel = self.channel ?? environment("SOCKET_REDIS_CHANNEL") ?? "socketio"
        var mode = RedisChannelMode.python
        if let text = self.mode ?? environment("SOCKET_REDIS_MODE") {
            do throws(RedisError) {
                mode = try RedisChannelMode(parsing: text)
            } catch {
                let source = self.mode == nil ? "SOCKET_REDIS_MODE" : "--mode"
                throw fail("emit", "not configured: \(source): \(error.message)", ExitCodes.notConfigured)
            }
        }
        // Servers that require signed messages refuse unsigned ones: sign with the same secret.
        let signingSecret = environment("SOCKET_REDIS_SIGNING_SECRET")
        if let signingSecret {
            do {
                _ = try PubSubSigningKey(secret: signingSecret)
            } catch {
                throw fail("emit", "not configured: SOCKET_REDIS_SIGNING_SECRET: \(error)", ExitCodes.notConfigured)
            }
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(self.timeout * 1000))
        if let redisURL, !redisURL.isEmpty {
            // Said once, here: the gateway below would log it again.
            let url = try resolveRedisURL(redisURL, command: "emit")
            // Ride out a short blip: wait for Redis, and for the servers this emit is meant for.
            let waited = await Self.waitForSubscribers(
                url: url,
                channel: channel,
                minimum: self.minSubscribers,
                deadline: deadline
            )
            switch waited {
            case .failure(let error) where isRedisRefusal(error):
                throw fail("emit", redisRefusalMessage(error, url: url), ExitCodes.notConfigured)
            case .failure(let error):
                let seconds = self.timeout == self.timeout.rounded() ? "\(Int(self.timeout))" : "\(self.timeout)"
                throw fail(
                    "emit",
                    "Redis unavailable, not published: no answer from \(url.redacted) within --timeout \(seconds) s, "
                        + "retrying all along (last: \(error.message)); start Redis there, or raise --timeout",
                    ExitCodes.redisUnavailable
                )
            case .success:
                break
            }
        }
        let remaining = max(deadline - ContinuousClock.now, .milliseconds(200))
        let gateway = WorkerSocketGateway(
            redisURL: redisURL,
            channel: channel,
            mode: mode,
            outboxCapacity: 0,
            emitTimeout: remaining,
            signingSecret: signingSecret,
            tls: RedisTLSConfiguration(environment: nil),
            logger: Logger(label: "socket-gateway.emit")
        )
        let result = await gateway.emit(
            self.event,
            arguments: arguments,
            to: target,
            options: EmitOptions(namespace: self.namespace, excluding: Set(self.excluding))
        )
        await gateway.shutdown(timeout: .seconds(1))

        let targetText: String
        switch target {
        case .user(let id): targetText = EmitTarget.userRoom(id)
        case .room(let name): targetText = name
        case .rooms(let names): targetText = names.joined(separator: ",")
        case .broadcast: targetText = "everyone"
        }
        let roomChannel = PubSubChannelLayout(channel: channel, mode: mode).roomChannel(
            for: .emit(
                self.event,
                arguments: arguments,
                to: target,
                options: EmitOptions(namespace: self.namespace),
                hostID: gateway.hostID
            )
        )
        switch result.outcome {
        case .published where roomChannel != nil:
            // A room channel's subscribers are the servers where the room has members: 0 means nobody is there.
            printLine(
                "published \(self.event) to \(targetText) in \(self.namespace) on room channel \(roomChannel!): "
                    + "\(result.redisSubscribers ?? 0) server(s) with members of the room"
            )
        case .published:
            let subscribers = result.redisSubscribers ?? 0
            printLine(
                "published \(self.event) to \(targetText) in \(self.namespace) on channel \(channel): "
                    + "\(subscribers) subscriber(s)"
            )
            if subscribers < self.minSubscribers {
                throw fail(
                    "emit",
                    "published, but only \(subscribers) of at least \(self.minSubscribers) server(s) were "
                        + "subscribed to \(channel): clients may have missed it",
                    ExitCodes.tooFewSubscribers
                )
            }
        case .notConfigured:
            throw fail(
                "emit",
                "not configured: \(result.reason ?? "no Redis URL") (use --redis-url or REDIS_URL)",
                ExitCodes.notConfigured
            )
        case .failed where !gateway.isConfigured:
            throw fail("emit", "not configured: invalid Redis URL: \(result.reason ?? "")", ExitCodes.notConfigured)
        case .failed, .queued, .delivered:
            throw fail(
                "emit",
                "Redis unavailable, not published: \(result.reason ?? "\(result.outcome)")",
                ExitCodes.redisUnavailable
            )
        }
    }
}

extension EmitCommand {
    /// The largest payload `@FILE` or `-` reads.
    static let maxPayloadBytes = 16 << 20

    /// The payload's bytes and where they came from, for messages (the argument, `@FILE` or `-` for stdin), or
    /// `nil` for none. Data waiting on stdin without `-` is refused: it would be published as no argument.
    func payload() throws -> (bytes: [UInt8], source: String)? {
        guard let json = self.json else {
            guard !standardInputHasData() else {
                throw fail(
                    "emit",
                    "stdin holds data but no payload argument was given, so the event would be published with no "
                        + "argument; write - as the payload to read the JSON from stdin "
                        + "(socket-gateway emit ... \(self.event) - < FILE), or @FILE",
                    ExitCodes.usage
                )
            }
            return nil
        }
        let source: String
        let read: BoundedRead
        if json == "-" {
            source = " from stdin"
            read = readAll(descriptor: 0, limit: Self.maxPayloadBytes)
        } else if json.hasPrefix("@") {
            source = " in '\(json.dropFirst())'"
            read = readAll(path: String(json.dropFirst()), limit: Self.maxPayloadBytes)
        } else {
            return (Array(json.utf8), "")
        }
        switch read {
        case .bytes(let bytes):
            return (bytes, source)
        case .tooLarge:
            throw fail(
                "emit",
                "the payload\(source) is larger than 16 MiB; send a reference to the data (a URL, an id) instead",
                ExitCodes.usage
            )
        case .failed(let reason) where json == "-":
            throw fail("emit", "cannot read the payload from stdin: \(reason)", ExitCodes.fileError)
        case .failed(let reason):
            throw fail(
                "emit",
                "cannot read the payload file '\(json.dropFirst())': \(reason); check the path after '@'",
                ExitCodes.fileError
            )
        }
    }

    /// Why the target, namespace or channel cannot reach anyone, or `nil`: an empty or repeated `--user` / `--room`,
    /// an empty `--except` or `--channel`, or a namespace `serve` would refuse.
    func targetProblem() -> String? {
        for (option, values, example) in [("--user", self.users, "42"), ("--room", self.rooms, "sheet:s1")] {
            if values.count > 1 {
                let given = values.map { "'\($0)'" }.joined(separator: ", ")
                return "\(option) was given \(values.count) times (\(given)); an emit has one target: give \(option) "
                    + "once, and run emit once per target"
            }
            if values.first?.isEmpty == true {
                return "\(option) is empty, so the emit would reach nobody; give a value, e.g. \(option) \(example)"
            }
        }
        if self.excluding.contains("") {
            return "--except is empty; give a room or a sid to skip (write sids as --except=SID), or leave it out"
        }
        if self.channel?.isEmpty == true {
            return "--channel is empty; give the channel the servers subscribe to, or leave it out for socketio"
        }
        return namespaceProblem(self.namespace)
    }

    /// Polls `PUBSUB NUMSUB channel` until `minimum` subscribers are there or `deadline` passes, retrying while
    /// Redis cannot be reached (a restart). Fails only when Redis never answered, or refused AUTH (no retry).
    static func waitForSubscribers(
        url: RedisURL,
        channel: String,
        minimum: Int,
        deadline: ContinuousClock.Instant
    ) async -> Result<Int, RedisError> {
        var logger = Logger(label: "socket-gateway.emit")
        logger.logLevel = .critical
        let client = RedisCommandClient(url: url, connectTimeout: .milliseconds(500), logger: logger)
        let result = await Self.pollSubscribers(client, channel: channel, minimum: minimum, deadline: deadline)
        await client.shutdown()
        return result
    }

    private static func pollSubscribers(
        _ client: RedisCommandClient,
        channel: String,
        minimum: Int,
        deadline: ContinuousClock.Instant
    ) async -> Result<Int, RedisError> {
        // The subscriber's reconnect policy: quick first retries, then at most 250 ms apart, with jitter.
        var backoff = ReconnectBackoff(initial: .milliseconds(25), maximum: .milliseconds(250))
        var lastError: RedisError?
        var lastCount: Int?
        // Bounded by the deadline (at most 600 s by validate()).
        while true {
            let remaining = deadline - ContinuousClock.now
            do {
                let reply = try await client.send(
                    ["PUBSUB", "NUMSUB", channel],
                    timeout: max(min(remaining, .seconds(1)), .milliseconds(100))
                )
                if case .array(let items) = reply, items.count == 2, let count = items[1].integer {
                    lastCount = Int(count)
                    lastError = nil
                    if count >= minimum { return .success(Int(count)) }
                }
            } catch {
                if isRedisRefusal(error) { return .failure(error) }
                lastError = error
            }
            let pause = backoff.nextDelay()
            guard ContinuousClock.now + pause < deadline else { break }
            try? await Task.sleep(for: pause)
        }
        if let lastCount { return .success(lastCount) }
        return .failure(lastError ?? RedisError(code: .timeout, message: "no answer from Redis before the timeout"))
    }
}

extension JSONValue {
    /// The JSON value of a validator's value.
    init(_ value: PayloadValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let pairs): self = .object(pairs.map { (key: $0.key, value: JSONValue($0.value)) })
        }
    }
}

extension PayloadValue {
    /// The validator's view of a JSON value (binary values count as strings).
    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .string(text)
        case .binary: self = .string("<binary>")
        case .array(let items): self = .array(items.map(PayloadValue.init))
        case .object(let pairs): self = .object(pairs.map { (key: $0.key, value: PayloadValue($0.value)) })
        }
    }
}
