import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SheetSyncEvents
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayWorker
import UnixSignals

/// `sheet-sync-demo worker`: takes sync jobs from the Redis list and emits their progress to the user who asked.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Take sync jobs from Redis, run them, and emit sheet:sync:* events to the user through Redis."
    )

    @OptionGroup var shared: SharedOptions

    @Option(help: "Milliseconds between two progress steps of a simulated sync.")
    var stepDelay: Int = 450

    func run() async throws {
        let logger = try self.shared.bootstrapLogging()
        guard self.stepDelay >= 0 else {
            throw ValidationError("--step-delay must be 0 or more, got \(self.stepDelay)")
        }
        let (redisURL, parsedRedisURL) = try self.shared.checkedRedisURL(command: "worker")
        let gateway = WorkerSocketGateway(redisURL: redisURL, channel: self.shared.channel, logger: logger)
        let worker = SheetSyncWorker(
            name: self.shared.name,
            queue: RedisCommandClient(url: parsedRedisURL, logger: logger),
            commands: RedisCommandClient(url: parsedRedisURL, logger: logger),
            jobQueue: self.shared.jobQueue,
            gateway: gateway,
            stepDelay: .milliseconds(self.stepDelay),
            log: DemoLog(name: self.shared.name)
        )
        // Shut down in reverse order: the worker first (its last events go to the gateway), then the gateway,
        // which sends what its outbox holds before closing.
        let group = ServiceGroup(
            services: [gateway, worker],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        )
        try await group.run()
    }
}

/// Runs sync jobs one at a time until graceful shutdown. A job interrupted by shutdown goes back to the list.
struct SheetSyncWorker: Service {
    let name: String
    /// The connection that blocks on the job list (its own: BRPOP holds it); closed at once on shutdown.
    let queue: RedisCommandClient
    /// The connection for everything else (putting an interrupted job back).
    let commands: RedisCommandClient
    let jobQueue: String
    let gateway: WorkerSocketGateway
    let stepDelay: Duration
    let log: DemoLog

    /// How long one BRPOP blocks, so a shutdown is noticed within about this long.
    static let pollSeconds = 1

    func run() async throws {
        self.log.line("ready, waiting for jobs on the Redis list \(self.jobQueue)")
        await withDiscardingTaskGroup { group in
            // On SIGTERM / Ctrl-C: close the blocking connection so a waiting BRPOP ends now, not after its
            // timeout. (A child task: `takeJobs` ends only on graceful shutdown or cancellation, which end it too.)
            group.addTask {
                try? await gracefulShutdown()
                await self.queue.shutdown()
            }
            await self.takeJobs()
        }
        await self.queue.shutdown()
        await self.commands.shutdown()
        // The gateway (a service of the same group, shut down after this one) sends what its outbox holds.
        self.log.line("stopped")
    }

    /// Takes and runs jobs until graceful shutdown.
    private func takeJobs() async {
        var failuresInARow = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let reply: RESPValue
            do {
                reply = try await self.queue.send(
                    ["BRPOP", self.jobQueue, String(Self.pollSeconds)],
                    timeout: .seconds(Self.pollSeconds + 5)
                )
                failuresInARow = 0
            } catch {
                if Task.isShuttingDownGracefully { break }
                failuresInARow += 1
                self.log.line("cannot read jobs (\(error.code)): \(error.message); retrying")
                // Bounded backoff: 0.2 s, 0.4 s, … up to 3 s between attempts while Redis is away.
                try? await Task.sleep(for: .milliseconds(min(3000, 200 * failuresInARow)))
                continue
            }
            // BRPOP answers [list, element], or null when the wait ran out.
            guard case .array(let pair) = reply, pair.count == 2, let text = pair[1].string else { continue }
            let job: SyncJob
            do {
                job = try SyncJob(jsonText: text)
            } catch {
                self.log.line("dropped a job: \(error)")
                continue
            }
            await self.process(job, rawJob: text)
        }
    }

    /// Runs one job, emitting `started`, several `progress`, then `completed` or `failed` to the user.
    func process(_ job: SyncJob, rawJob: String) async {
        let user = job.userID
        let shortJob = job.id.uuidString.lowercased().prefix(8)
        guard let sheet = DemoSheet.named(job.sheetID) else {
            await self.send(
                SheetSyncFailed(
                    sheetID: job.sheetID,
                    jobID: job.id,
                    error: .init(code: .sheetNotFound, message: "no sheet '\(job.sheetID)'", retryable: false),
                    failedAt: Date()
                ),
                to: user,
                detail: "sheet not found"
            )
            return
        }
        self.log.line("took job \(shortJob): sync \(sheet.id) for \(user) (queued by \(job.acceptedBy))")
        let started = Date()
        await self.send(
            SheetSyncStarted(
                sheetID: sheet.id,
                jobID: job.id,
                sheetName: sheet.name,
                startedAt: started,
                requestedBy: user
            ),
            to: user,
            detail: sheet.name
        )

        for step in Self.steps(for: sheet) {
            guard await self.pause() else {
                // Shutting down mid-job: put the job back at the consuming end so the next worker takes it first.
                _ = try? await self.commands.send(["RPUSH", self.jobQueue, rawJob])
                self.log.line("job \(shortJob) interrupted by shutdown at \(step.stage.rawValue); put back on the list")
                return
            }
            if let failure = sheet.failure, failure.stage == step.stage {
                await self.send(
                    SheetSyncFailed(sheetID: sheet.id, jobID: job.id, error: failure.error, failedAt: Date()),
                    to: user,
                    detail: "\(failure.error.code.rawValue): \(failure.error.message)"
                )
                return
            }
            await self.send(
                SheetSyncProgress(
                    sheetID: sheet.id,
                    jobID: job.id,
                    stage: step.stage,
                    processed: step.processed,
                    total: step.total,
                    percent: step.percent
                ),
                to: user,
                detail:
                    "\(step.stage.rawValue) \(step.processed)/\(step.total.map(String.init) ?? "?") \(Self.format(step.percent))%"
            )
        }
        guard await self.pause() else {
            _ = try? await self.commands.send(["RPUSH", self.jobQueue, rawJob])
            self.log.line("job \(shortJob) interrupted by shutdown before completing; put back on the list")
            return
        }
        let duration = (Date().timeIntervalSince(started) * 1000).rounded() / 1000
        await self.send(
            SheetSyncCompleted(
                sheetID: sheet.id,
                jobID: job.id,
                rows: sheet.rows,
                duration: duration,
                finishedAt: Date(),
                warnings: sheet.warnings
            ),
            to: user,
            detail: "\(sheet.rows) rows, \(sheet.warnings.count) warnings, \(Self.format(duration)) s"
        )
    }

    /// One progress step of a simulated sync.
    struct Step: Equatable {
        var stage: SyncStage
        var processed: Int
        var total: Int?
        var percent: Double
    }

    /// The progress steps of a sheet's sync: fixed by its row count, so every run emits the same values.
    static func steps(for sheet: DemoSheet) -> [Step] {
        let rows = sheet.rows
        var steps = [
            Step(stage: .downloading, processed: 0, total: nil, percent: 5),
            Step(stage: .parsing, processed: 0, total: rows, percent: 15),
            Step(stage: .validating, processed: rows / 2, total: rows, percent: 25),
            Step(stage: .validating, processed: rows, total: rows, percent: 35),
        ]
        for quarter in 1...4 {
            steps.append(
                Step(stage: .writing, processed: rows * quarter / 4, total: rows, percent: Double(35 + 15 * quarter))
            )
        }
        steps.append(Step(stage: .finalizing, processed: rows, total: rows, percent: 98))
        return steps
    }

    /// Waits one step; false when the process is shutting down.
    private func pause() async -> Bool {
        try? await Task.sleep(for: self.stepDelay)
        return !Task.isShuttingDownGracefully && !Task.isCancelled
    }

    /// Emits a typed event to the user and logs one line: who, what, to whom, and how many servers got it.
    private func send<Event: SocketEvent>(_ event: Event, to user: String, detail: String) async {
        let result = await self.gateway.emit(event, toUser: user)
        let outcome: String
        switch result.outcome {
        case .published:
            let servers = result.redisSubscribers ?? 0
            outcome = "published to \(servers) server\(servers == 1 ? "" : "s")"
        default:
            outcome = "\(result)"
        }
        self.log.line("\(Event.eventName) → user:\(user) [\(detail)] \(outcome)")
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}
