import ArgumentParser
import Atomics
import Histogram
import Logging
import NIOCore
import NIOPosix
import SocketGatewayWorker

#if canImport(Glibc)
import Glibc
#endif

/// `socket-gateway-load`: opens N Socket.IO WebSocket clients, optionally emits stamped events through
/// `WorkerSocketGateway`, and reports connects, deliveries/s, latency percentiles and CPU.
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socket-gateway-load",
        abstract: "Load generator for Socket.IO servers fed through Redis (ours or python-socketio's).",
        discussion: """
            Examples:
              socket-gateway-load --url http://127.0.0.1:3000 --clients 1000 --token-secret s \\
                  --redis-url redis://127.0.0.1:6379 --emit broadcast --pace closed-loop --duration 10s
              socket-gateway-load --clients 0 --redis-url redis://127.0.0.1:6379 --emit nobody --pace max
              socket-gateway-load --url http://127.0.0.1:3000 --clients 10000 --token-secret s --duration 5s
            """
    )

    @Option(help: "The server's base URL (http://host:port); several, comma-separated: client i uses the (i mod n)-th.")
    var url: String = "http://127.0.0.1:3000"

    @Option(help: "The Socket.IO path.")
    var path: String = "/socket.io/"

    @Option(help: "Clients to open.")
    var clients: Int = 100

    @Option(help: "Connects in progress at once.")
    var connectConcurrency: Int = 64

    @Option(help: "Seconds one client may take to connect.")
    var connectTimeout: Int = 20

    @Option(help: "HS256 secret the tokens are signed with (user of client i is u<i>).")
    var tokenSecret: String = "bench-secret"

    @Option(help: "Event-loop threads (default: the core count).")
    var threads: Int = System.coreCount

    @Option(help: "Redis URL the emitter publishes to.")
    var redisURL: String?

    @Option(help: "Redis channel.")
    var channel: String = "socketio"

    @Option(help: "The emitter's channel layout (SOCKET_REDIS_MODE): python (one channel) or rooms (room channels).")
    var mode: String = "python"

    @Option(help: "What to emit: none, broadcast, users (one client each), nobody (a room nobody is in).")
    var emit: String = "none"

    @Option(help: "Emit pace: closed-loop, max, or a number of events per second.")
    var pace: String = "closed-loop"

    @Option(help: "Closed loop: events published but not yet delivered to every addressed client.")
    var window: Int = 32

    @Option(help: "Concurrent emitting tasks (with --emit-api pipelined and --pace max: emits not yet answered).")
    var emitTasks: Int = 64

    @Option(
        help:
            "Worker API: await (one awaited emit per task) or pipelined (emit(…, completion:), no await; --pace max only)."
    )
    var emitAPI: String = "await"

    @Option(help: "Padding bytes in each event's payload (with --realistic-payload: its approximate JSON size).")
    var payloadBytes: Int = 64

    @Flag(help: "Fill the payload with application-like JSON records instead of one repeated letter.")
    var realisticPayload = false

    @Flag(help: "Offer permessage-deflate (client_no_context_takeover) and inflate the compressed messages.")
    var deflate = false

    @Option(help: "Warm-up before measuring, e.g. 2s.")
    var warmup: String = "2s"

    @Option(help: "Measurement window, e.g. 10s.")
    var duration: String = "10s"

    @Option(help: "The server's process id: its CPU and RSS are reported next to ours (repeat it: summed).")
    var serverPID: [Int32] = []

    @Option(help: "redis-server's process id: its CPU over the window is reported too (repeat it: summed).")
    var redisPID: [Int32] = []

    @Option(help: "A label printed with the results (e.g. 'ours', 'python').")
    var label: String = "run"

    @Flag(help: "Also print one JSON line with every figure (for tools/bench).")
    var json = false

    @Flag(
        help: """
            Print a PROGRESS line every second from the first emit to the end of the window: seconds, deliveries, \
            emits, disconnects so far, that second's delivery latency p50/p99/max in ms, and the longest stretch \
            without any delivery so far in ms (for tools/overload).
            """
    )
    var progress = false

    func run() async throws {
        guard let warmupSeconds = Self.seconds(self.warmup), let durationSeconds = Self.seconds(self.duration) else {
            throw ValidationError("--warmup/--duration take a number of seconds like 10s, 1.5s or 500ms")
        }
        let audience: EmitAudience?
        switch self.emit {
        case "none": audience = nil
        case "broadcast": audience = .broadcast
        case "users": audience = .users(count: self.clients)
        case "nobody": audience = .nobody
        default: throw ValidationError("--emit must be none, broadcast, users or nobody")
        }
        let emitPace: EmitPace
        switch self.pace {
        case "closed-loop": emitPace = .closedLoop(window: max(1, self.window))
        case "max": emitPace = .unbounded
        default:
            guard let rate = Double(self.pace), rate > 0 else {
                throw ValidationError("--pace must be closed-loop, max or a positive number of events per second")
            }
            emitPace = .rate(rate)
        }
        guard self.emitAPI == "await" || (self.emitAPI == "pipelined" && self.pace == "max") else {
            throw ValidationError("--emit-api must be await, or pipelined with --pace max")
        }
        if audience != nil, self.redisURL == nil { throw ValidationError("--emit needs --redis-url") }
        let servers = try Self.hostsAndPorts(self.url)
        let channelMode: RedisChannelMode
        do { channelMode = try RedisChannelMode(parsing: self.mode) } catch {
            throw ValidationError("--mode must be python or rooms")
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, self.threads))
        let recording = ManagedAtomic<Bool>(false)
        var recorders: [ObjectIdentifier: LoadRecorder] = [:]
        var recorderList: [LoadRecorder] = []
        for loop in group.makeIterator() {
            let recorder = LoadRecorder(eventLoop: loop, recording: recording, progress: self.progress)
            recorders[ObjectIdentifier(loop)] = recorder
            recorderList.append(recorder)
        }
        let server = self.serverPID.isEmpty ? nil : ProcessSetProbe(pids: self.serverPID)
        let redis = self.redisPID.isEmpty ? nil : ProcessSetProbe(pids: self.redisPID)
        let report = LoadReport(label: self.label)

        // 1. Connect.
        let connectors = servers.map { host, port in
            var connector = LoadConnector(host: host, port: port, path: self.path, group: group, recorders: recorders)
            connector.deflate = self.deflate
            return connector
        }
        let minter = TokenMinter(secret: self.tokenSecret)
        let connectCPUStart = (own: ownCPUSeconds(), server: server?.cpuSeconds())
        let connectStart = monotonicMicroseconds()
        var channels: [any Channel] = []
        channels.reserveCapacity(self.clients)
        var connectLatency = Histogram<UInt64>(
            highestTrackableValue: 120_000_000,
            numberOfSignificantValueDigits: .three
        )
        var connectErrors: [String: Int] = [:]
        let timeout = TimeAmount.seconds(Int64(self.connectTimeout))
        await withTaskGroup(of: (Result<any Channel, any Error>, UInt64).self) { tasks in
            var next = 0
            var running = 0
            func collect(_ outcome: (Result<any Channel, any Error>, UInt64)) {
                running -= 1
                _ = connectLatency.record(outcome.1)
                switch outcome.0 {
                case .success(let channel): channels.append(channel)
                case .failure(let error): connectErrors["\(error)", default: 0] += 1
                }
            }
            while next < self.clients {
                if running >= max(1, self.connectConcurrency), let outcome = await tasks.next() { collect(outcome) }
                let token = minter.token(for: "u\(next)")
                let connector = connectors[next % connectors.count]
                tasks.addTask {
                    let begin = monotonicMicroseconds()
                    do {
                        let channel = try await connector.connect(token: token, timeout: timeout)
                        return (.success(channel), monotonicMicroseconds() - begin)
                    } catch {
                        return (.failure(error), monotonicMicroseconds() - begin)
                    }
                }
                running += 1
                next += 1
            }
            while let outcome = await tasks.next() { collect(outcome) }
        }
        let connectSeconds = Double(monotonicMicroseconds() - connectStart) / 1e6
        report.connected = channels.count
        report.requested = self.clients
        report.connectSeconds = connectSeconds
        report.connectP50ms = Double(connectLatency.valueAtPercentile(50)) / 1000
        report.connectP99ms = Double(connectLatency.valueAtPercentile(99)) / 1000
        report.connectErrors = connectErrors
        report.connectOwnCPU = ownCPUSeconds() - connectCPUStart.own
        if let before = connectCPUStart.server, let after = server?.cpuSeconds() {
            report.connectServerCPU = after - before
        }

        // 2. Emit (or stay idle), measure one window.
        let allRecorders = recorderList
        let deliveredTotal: @Sendable () -> Int = { allRecorders.reduce(0) { $0 + $1.events.load(ordering: .relaxed) } }
        var emitter: LoadEmitter?
        var emitTask: Task<Void, Never>?
        var worker: WorkerSocketGateway?
        if let audience, let redisURL = self.redisURL {
            var logger = Logger(label: "socket-gateway-load")
            logger.logLevel = .warning
            let gateway = WorkerSocketGateway(
                redisURL: redisURL,
                channel: self.channel,
                mode: channelMode,
                outboxCapacity: 0,
                emitTimeout: .seconds(10),
                logger: logger
            )
            worker = gateway
            let fanOut: Int
            switch audience {
            case .broadcast: fanOut = channels.count
            case .users: fanOut = 1
            case .nobody: fanOut = 0
            }
            var effectivePace = emitPace
            if case .nobody = audience, case .closedLoop = emitPace { effectivePace = .unbounded }
            let created = LoadEmitter(
                worker: gateway,
                audience: audience,
                pace: effectivePace,
                tasks: self.emitTasks,
                pipelined: self.emitAPI == "pipelined",
                payloadBytes: self.payloadBytes,
                realisticPayload: self.realisticPayload,
                fanOut: fanOut,
                delivered: deliveredTotal
            )
            emitter = created
            emitTask = Task { await created.run() }
        }
        let progressTask = self.progress ? Self.startProgress(recorders: allRecorders, emitter: emitter) : nil
        try await Task.sleep(for: .milliseconds(Int64(warmupSeconds * 1000)))
        for recorder in recorderList { try await recorder.reset() }
        recording.store(true, ordering: .relaxed)
        let windowStart = monotonicMicroseconds()
        let deliveredStart = deliveredTotal()
        let wireStart = recorderList.reduce(0) { $0 + $1.wireBytes.load(ordering: .relaxed) }
        let compressedStart = recorderList.reduce(0) { $0 + $1.compressedMessages.load(ordering: .relaxed) }
        let sentStart = emitter?.sent.load(ordering: .relaxed) ?? 0
        let ownStart = ownCPUTimes()
        let serverStart = server?.cpuTimes()
        let redisStart = redis?.cpuTimes()
        try await Task.sleep(for: .milliseconds(Int64(durationSeconds * 1000)))
        let windowSeconds = Double(monotonicMicroseconds() - windowStart) / 1e6
        let deliveredEnd = deliveredTotal()
        let wireEnd = recorderList.reduce(0) { $0 + $1.wireBytes.load(ordering: .relaxed) }
        let compressedEnd = recorderList.reduce(0) { $0 + $1.compressedMessages.load(ordering: .relaxed) }
        let sentEnd = emitter?.sent.load(ordering: .relaxed) ?? 0
        let own = ownCPUTimes() - ownStart
        if let redisStart, let redisEnd = redis?.cpuTimes() {
            report.redisCPU = (redisEnd - redisStart).total / windowSeconds
        }
        report.ownCPU = own.total / windowSeconds
        report.ownSystemCPU = own.system / windowSeconds
        if let serverStart, let serverEnd = server?.cpuTimes() {
            report.serverCPU = (serverEnd - serverStart).total / windowSeconds
            report.serverSystemCPU = (serverEnd - serverStart).system / windowSeconds
        }
        recording.store(false, ordering: .relaxed)
        progressTask?.cancel()
        await progressTask?.value
        report.windowSeconds = windowSeconds
        report.deliveriesPerSecond = Double(deliveredEnd - deliveredStart) / windowSeconds
        report.emitsPerSecond = Double(sentEnd - sentStart) / windowSeconds
        if deliveredEnd > deliveredStart {
            report.wireBytesPerDelivery = Double(wireEnd - wireStart) / Double(deliveredEnd - deliveredStart)
            report.compressedShare = Double(compressedEnd - compressedStart) / Double(deliveredEnd - deliveredStart)
        }
        if let server {
            report.serverRSSKiB = server.memoryKiB("VmRSS")
            report.serverPeakRSSKiB = server.memoryKiB("VmHWM")
        }
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var unstamped = 0
        for recorder in recorderList {
            let (histogram, missing) = try await recorder.snapshot()
            latency.add(histogram)
            unstamped += missing
        }
        report.latency = latency
        report.unstamped = unstamped

        // 3. Stop emitting, let what is in flight arrive, count what never did.
        emitter?.stop()
        await emitTask?.value
        if let emitter {
            let expected = emitter.sent.load(ordering: .relaxed) * emitter.fanOut
            let drainDeadline = monotonicMicroseconds() + 3_000_000
            if case .nobody = emitter.audience {
            } else {
                while deliveredTotal() < expected, monotonicMicroseconds() < drainDeadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                report.undelivered = max(0, expected - deliveredTotal())
            }
            report.failedEmits = emitter.failed.load(ordering: .relaxed)
        }
        report.disconnects = recorderList.reduce(0) { $0 + $1.disconnects.load(ordering: .relaxed) }
        if let worker { await worker.shutdown(timeout: .seconds(2)) }
        for channel in channels { channel.close(promise: nil) }

        report.print(emitting: audience != nil)
        if self.json { report.printJSON() }
        try await group.shutdownGracefully()
    }

    /// Prints one `PROGRESS` line a second until cancelled: elapsed seconds, deliveries and emits in that second,
    /// disconnects so far, that second's latency p50/p99/max in ms (0 when nothing was delivered), and the longest
    /// stretch so far in which no client received anything, in ms (polled every 100 ms, so ±100 ms).
    static func startProgress(recorders: [LoadRecorder], emitter: LoadEmitter?) -> Task<Void, Never> {
        Task {
            let total = { recorders.reduce(0) { $0 + $1.events.load(ordering: .relaxed) } }
            let start = monotonicMicroseconds()
            var lastDelivered = total()
            var lastSent = emitter?.sent.load(ordering: .relaxed) ?? 0
            var polled = lastDelivered
            var quietSince = start
            var longestQuiet: UInt64 = 0
            var tick = 1
            while !Task.isCancelled {
                let due = start + UInt64(tick) * 100_000
                let now = monotonicMicroseconds()
                if due > now {
                    do { try await Task.sleep(for: .microseconds(Int64(due - now))) } catch { return }
                }
                let delivered = total()
                let polledAt = monotonicMicroseconds()
                if delivered != polled {
                    polled = delivered
                    quietSince = polledAt
                } else {
                    longestQuiet = max(longestQuiet, polledAt - quietSince)
                }
                tick += 1
                guard (tick - 1) % 10 == 0 else { continue }
                var latency = Histogram<UInt64>(
                    highestTrackableValue: 120_000_000,
                    numberOfSignificantValueDigits: .two
                )
                for recorder in recorders {
                    if let taken = try? await recorder.takeInterval() { latency.add(taken) }
                }
                let sent = emitter?.sent.load(ordering: .relaxed) ?? 0
                let disconnects = recorders.reduce(0) { $0 + $1.disconnects.load(ordering: .relaxed) }
                let ms: (Double) -> String = { percentile in
                    latency.totalCount == 0 ? "0" : String(Double(latency.valueAtPercentile(percentile)) / 1000)
                }
                let maxMs = latency.totalCount == 0 ? "0" : String(Double(latency.max) / 1000)
                print(
                    "PROGRESS \(Double(polledAt - start) / 1e6) \(delivered - lastDelivered) \(sent - lastSent) "
                        + "\(disconnects) \(ms(50)) \(ms(99)) \(maxMs) \(longestQuiet / 1000)"
                )
                fflush(nil)  // all streams: a pipe would otherwise hold the lines until exit
                lastDelivered = delivered
                lastSent = sent
            }
        }
    }

    static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("ms") { return Double(text.dropLast(2)).map { $0 / 1000 } }
        if text.hasSuffix("s") { return Double(text.dropLast()) }
        return Double(text)
    }

    static func hostAndPort(_ url: String) throws -> (String, Int) {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) else {
            throw ValidationError("--url must look like http://127.0.0.1:3000")
        }
        return (String(rest[..<colon]), port)
    }
}
