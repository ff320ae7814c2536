import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

/// Records log messages so tests can check what was logged.

/// A test subscriber that decodes every message and keeps (worker, index) of each emit.
final class EmitCollector: Sendable {
    private let box = NIOLockedValueBox<[PubSubMessage]>([])
    private let failures = NIOLockedValueBox<[String]>([])

    func receive(_ message: RedisPubSubMessage) {
        do {
            let decoded = try PubSubMessage.decode(message.payload)
            self.box.withLockedValue { $0.append(decoded) }
        } catch {
            self.failures.withLockedValue { $0.append("\(error)") }
        }
    }

    var messages: [PubSubMessage] { self.box.withLockedValue { $0 } }
    var decodeFailures: [String] { self.failures.withLockedValue { $0 } }
    var count: Int { self.box.withLockedValue { $0.count } }

    /// The `i` field of each emit's first argument, grouped by its `w` field, in arrival order.
    var sequences: [Int64: [Int64]] {
        var result: [Int64: [Int64]] = [:]
        for message in self.messages {
            guard case .emit(let emit) = message, let worker = emit.arguments.first?["w"]?.intValue,
                let index = emit.arguments.first?["i"]?.intValue
            else { continue }
            result[worker, default: []].append(index)
        }
        return result
    }

    func wait(limit: Duration = .seconds(30), until condition: @Sendable (Int) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            if condition(self.count) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(self.count)
    }
}

@Suite(.serialized) struct WorkerSocketGatewayTests {
    let logger = Logger(label: "test.worker")

    @Test func withoutAURLEveryEmitIsNotConfiguredAndLoggedOnce() async {
        let records = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "t") { _ in CapturingLogHandler(lines: records) }
        let worker = WorkerSocketGateway(environment: ["SOCKET_REDIS_CHANNEL": "other"], logger: logger)
        #expect(!worker.isConfigured)
        #expect(worker.channel == "other")
        for _ in 0..<3 {
            let result = await worker.emitToUser("42", event: "e", data: ["a": 1])
            #expect(result.outcome == .notConfigured)
        }
        #expect(await worker.joinRoom("sid", room: "r").outcome == .notConfigured)
        #expect(records.withLockedValue { $0.filter { $0.message.contains("no Redis URL") }.count } == 1)
    }

    @Test func anInvalidURLFailsEveryEmitWithoutLeakingThePassword() async {
        let records = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "t") { _ in CapturingLogHandler(lines: records) }
        let worker = WorkerSocketGateway(redisURL: "redis://:topsecret@host:notaport/0", logger: logger)
        let result = await worker.broadcast(event: "e", data: 1)
        #expect(result.outcome == .failed)
        #expect(result.reason?.contains("port") == true)
        #expect(result.reason?.contains("topsecret") == false)
        #expect(records.withLockedValue { $0.count } == 1)
        #expect(records.withLockedValue { $0.allSatisfy { !$0.text.contains("topsecret") } }, "the log line too")
    }

    /// Emits until one is published (the worker connects lazily; on a loaded machine the first may take longer than
    /// a short `emitTimeout` and be reported queued): bounded.
    static func warmUp(_ worker: WorkerSocketGateway) async throws {
        for _ in 0..<50 {
            if await worker.broadcast(event: "warmup", data: 0).outcome == .published { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("no warm-up emit was published")
    }

    @Test func publishesPythonSocketIOMessages() async throws {
        let redis = try await RedisServerProcess.start()
        let collector = EmitCollector()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            collector.receive($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        // What is published is the point here, not how fast: a loaded machine may take longer than the default 2 s
        // to connect lazily, and the first emit would be reported queued (and sent later).
        let worker = WorkerSocketGateway(redisURL: redis.urlString, emitTimeout: .seconds(10), logger: self.logger)
        let published = await worker.emitToUser("42", event: "sheet:sync", data: ["id": 7], excluding: ["sidX"])
        #expect(published.outcome == .published)
        #expect(published.redisSubscribers == 1)
        #expect(await worker.joinRoom("sid1", room: "r").outcome == .published)
        #expect(await worker.leaveRoom("sid1", room: "r", namespace: "/chat").outcome == .published)
        #expect(await worker.closeRoom("r", namespace: "/chat").outcome == .published)
        #expect(await worker.disconnect("sid1", namespace: "/").outcome == .published)
        #expect(await collector.wait { $0 == 5 })
        let hostID = worker.hostID
        #expect(
            collector.messages == [
                .emit(
                    PubSubEmit(
                        event: "sheet:sync",
                        arguments: [["id": 7]],
                        room: .one("user:42"),
                        skipSid: .one("sidX"),
                        hostID: hostID
                    )
                ),
                .enterRoom(sid: "sid1", room: "r", namespace: "/", hostID: hostID),
                .leaveRoom(sid: "sid1", room: "r", namespace: "/chat", hostID: hostID),
                .closeRoom(room: "r", namespace: "/chat", hostID: hostID),
                .disconnect(sid: "sid1", namespace: "/", hostID: hostID),
            ]
        )
        #expect(collector.decodeFailures.isEmpty)
        #expect(await worker.shutdown() == 0)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func aFrozenRedisCannotHangAnEmit() async throws {
        let redis = try await RedisServerProcess.start()
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            emitTimeout: .milliseconds(300),
            logger: self.logger
        )
        try await Self.warmUp(worker)
        guard let pid = redis.pid else {
            Issue.record("redis-server is not running")
            return
        }
        kill(pid, SIGSTOP)
        let result = await worker.broadcast(event: "frozen", data: 1)
        #expect(result.outcome == .queued)
        #expect(result.reason?.contains("did not answer") == true)
        kill(pid, SIGCONT)
        #expect(await worker.shutdown(timeout: .seconds(10)) == 0)
        await redis.stop()
    }

    @Test func outboxDeliversEverythingEmittedDuringAnOutageInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        let collector = EmitCollector()
        // The test's subscriber uses the unix socket, so it can be back before the worker (TCP) reconnects.
        let subscriber = RedisSubscriber(
            url: redis.unixURL,
            channels: ["socketio"],
            configuration: .init(backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(100))),
            logger: self.logger
        ) { collector.receive($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            outboxCapacity: 10_000,
            emitTimeout: .seconds(2),
            logger: self.logger
        )

        var index: Int64 = 0
        func emitNext() async -> EmitResult {
            defer { index += 1 }
            return await worker.broadcast(event: "seq", data: ["w": 0, "i": .int(index)])
        }
        for _ in 0..<200 {
            #expect(await emitNext().outcome == .published)
        }
        // Published means Redis took them; a Redis stopped while they still sit in its output buffer for the
        // subscriber drops them (pub/sub delivers at most once). They are not what this test is about: the outage
        // starts once they arrived.
        #expect(await collector.wait { $0 >= 200 })

        await redis.stop()
        // Every emit during the outage comes back held in the outbox, with one of the two documented reasons:
        // Redis is known to be unreachable, or it did not answer within `emitTimeout` (a connect attempt was
        // under way). That no emit waits past its timeout is proven at synthetic times in `RedisOutboxTests`.
        for _ in 0..<150 {
            let result = await emitNext()
            #expect(result.outcome == .queued, "\(result)")
            let reason = result.reason ?? ""
            #expect(
                reason.hasPrefix("Redis unreachable, held in the outbox: ")
                    || reason == "Redis did not answer within \(worker.emitTimeout); the message stays queued",
                "\(reason)"
            )
            try await Task.sleep(for: .milliseconds(10))
        }

        try await redis.restart(tcp: false)
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        try await redis.enableTCP()
        for _ in 0..<200 {
            let outcome = await emitNext().outcome
            #expect(outcome == .published || outcome == .queued)
        }
        let total = Int(index)
        #expect(await collector.wait { $0 >= total })
        #expect(collector.sequences[0] == Array(0..<Int64(total)))
        #expect(worker.status?.droppedFromOutbox == 0)
        #expect(subscriber.health.reconnects == 1)
        #expect(await worker.shutdown() == 0)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func outboxOverflowDropsTheOldestAndCountsIt() async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.urlString
        await redis.stop()
        let worker = WorkerSocketGateway(
            redisURL: url,
            outboxCapacity: 5,
            emitTimeout: .milliseconds(500),
            logger: self.logger
        )
        for index in 0..<8 {
            let result = await worker.broadcast(event: "e", data: .int(Int64(index)))
            #expect(result.outcome == .queued)
        }
        #expect(worker.status?.droppedFromOutbox == 3)
        #expect(await worker.shutdown(timeout: .milliseconds(100)) == 5)
    }

    @Test func emitsWithoutAwaitArriveInOrderAndCompleteOnce() async throws {
        let redis = try await RedisServerProcess.start()
        let collector = EmitCollector()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            collector.receive($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let count = 3_000
        // Room for every emit: all 3,000 are queued before the lazy connection is up, and on a loaded machine that
        // takes long enough for the default outbox (1,000) to drop the oldest, which is not what this test is about.
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            outboxCapacity: count + 1,
            emitTimeout: .seconds(10),
            logger: self.logger
        )
        let outcomes = NIOLockedValueBox<[EmitResult.Outcome]>([])
        for index in 0..<count {
            worker.emit("seq", arguments: [["w": 0, "i": .int(Int64(index))]], to: .room("r")) { result in
                outcomes.withLockedValue { $0.append(result.outcome) }
            }
        }
        worker.emit("unobserved", arguments: [], to: .broadcast, completion: nil)
        #expect(await collector.wait { $0 >= count + 1 })
        let clock = ContinuousClock()
        let end = clock.now + .seconds(30)
        while outcomes.withLockedValue({ $0.count }) < count, clock.now < end {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(100))  // a second completion would show up in the count
        #expect(outcomes.withLockedValue { $0 } == Array(repeating: .published, count: count))
        #expect(collector.count == count + 1)
        #expect(collector.sequences[0] == Array(0..<Int64(count)))
        #expect(await worker.shutdown() == 0)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func aFrozenRedisCompletesAnEmitWithoutAwaitWithinItsTimeout() async throws {
        let redis = try await RedisServerProcess.start()
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            emitTimeout: .milliseconds(300),
            logger: self.logger
        )
        try await Self.warmUp(worker)
        guard let pid = redis.pid else {
            Issue.record("redis-server is not running")
            return
        }
        kill(pid, SIGSTOP)
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<EmitResult, Never>) in
            worker.emit("frozen", arguments: [1], to: .broadcast) { continuation.resume(returning: $0) }
        }
        #expect(result.outcome == .queued)
        #expect(result.reason?.contains("did not answer") == true)
        kill(pid, SIGCONT)
        #expect(await worker.shutdown(timeout: .seconds(10)) == 0)
        await redis.stop()
    }

    @Test func fourWorkersFiveThousandEventsEachArriveExactlyOnceInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        let collector = EmitCollector()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            collector.receive($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let workers = (0..<4).map { _ in
            WorkerSocketGateway(redisURL: redis.urlString, emitTimeout: .seconds(10), logger: self.logger)
        }
        let perWorker = 5_000
        let failures = await withTaskGroup(of: Int.self) { group in
            for (number, worker) in workers.enumerated() {
                group.addTask {
                    var failed = 0
                    for index in 0..<perWorker {
                        let result = await worker.emitToRoom(
                            "room",
                            event: "seq",
                            data: ["w": .int(Int64(number)), "i": .int(Int64(index))]
                        )
                        if result.outcome != .published { failed += 1 }
                    }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
        #expect(await collector.wait { $0 >= 4 * perWorker })
        try await Task.sleep(for: .milliseconds(100))  // anything extra (a duplicate) would show up in the count
        #expect(collector.count == 4 * perWorker)
        let sequences = collector.sequences
        for number in 0..<4 {
            #expect(sequences[Int64(number)] == Array(0..<Int64(perWorker)), "worker \(number)")
        }
        #expect(Set(collector.messages.map(\.hostID)) == Set(workers.map(\.hostID)))
        for worker in workers { await worker.shutdown() }
        await subscriber.shutdown()
        await redis.stop()
    }
}
