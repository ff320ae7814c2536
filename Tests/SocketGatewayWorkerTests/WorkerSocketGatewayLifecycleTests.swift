import Logging
import ServiceLifecycle
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

/// Who owns a worker gateway's publisher: `run()` in a ServiceGroup, or — from plain code — `shutdown()`, or, if
/// that is forgotten, the gateway's release. In every case what was handed over is sent and the publisher's
/// Redis connection (and the timer that lives with it) is closed: observed on the redis-server (`CLIENT LIST`).
@Suite(.serialized) struct WorkerSocketGatewayLifecycleTests {
    let logger = Logger(label: "test.worker.lifecycle")

    /// The connections redis-server has open, `redis-cli` itself included.
    static func clients(_ redis: RedisServerProcess) async throws -> Int {
        try await redis.cli(["CLIENT", "LIST"]).split(separator: "\n").filter { $0.contains("addr=") }.count
    }

    /// Waits (bounded) until redis-server has `count` connections open.
    static func waitForClients(_ redis: RedisServerProcess, count: Int) async throws -> Bool {
        for _ in 0..<500 {
            if try await Self.clients(redis) == count { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await Self.clients(redis) == count
    }

    /// A subscriber collecting what is published on `socketio`, subscribed.
    func subscribe(_ redis: RedisServerProcess) async -> (RedisSubscriber, EmitCollector) {
        let collector = EmitCollector()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            collector.receive($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        return (subscriber, collector)
    }

    @Test func asAServiceItSendsWhatWasHandedOverAtGracefulShutdownAndDoesNotOutliveRun() async throws {
        let redis = try await RedisServerProcess.start()
        let (subscriber, collector) = await self.subscribe(redis)
        let before = try await Self.clients(redis)
        let worker = WorkerSocketGateway(redisURL: redis.urlString, emitTimeout: .seconds(10), logger: self.logger)
        let group = ServiceGroup(services: [worker], logger: self.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(await worker.broadcast(event: "first", data: 0).outcome == .published)
            #expect(try await Self.waitForClients(redis, count: before + 1))
            // Fire and forget, then shut down at once: most are still in the publisher's pipeline.
            for index in 0..<1000 {
                worker.emit("burst", arguments: [.int(Int64(index))], to: .broadcast, completion: nil)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // run() returned: the publisher's connection is closed, and what was handed over before was sent.
        #expect(try await Self.waitForClients(redis, count: before))
        #expect(await collector.wait { $0 >= 1001 })
        #expect(collector.count == 1001)
        // Emits after run() returned fail with the reason instead of reconnecting.
        let late = await worker.broadcast(event: "late", data: 0)
        #expect(late.outcome == .failed)
        #expect(try await Self.clients(redis) == before)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func fromPlainCodeShutdownSendsWhatWasHandedOverAndClosesTheConnection() async throws {
        let redis = try await RedisServerProcess.start()
        let (subscriber, collector) = await self.subscribe(redis)
        let before = try await Self.clients(redis)
        let worker = WorkerSocketGateway(redisURL: redis.urlString, emitTimeout: .seconds(10), logger: self.logger)
        for index in 0..<500 {
            worker.emit("burst", arguments: [.int(Int64(index))], to: .broadcast, completion: nil)
        }
        #expect(await worker.shutdown(timeout: .seconds(30)) == 0)
        #expect(await collector.wait { $0 >= 500 })
        #expect(try await Self.waitForClients(redis, count: before))
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func aGatewayReleasedWithoutShutdownSendsWhatWasHandedOverAndClosesItsConnection() async throws {
        let redis = try await RedisServerProcess.start()
        let (subscriber, collector) = await self.subscribe(redis)
        let before = try await Self.clients(redis)
        func useAndForget() async throws {
            let worker = WorkerSocketGateway(redisURL: redis.urlString, emitTimeout: .seconds(10), logger: self.logger)
            #expect(await worker.broadcast(event: "first", data: 0).outcome == .published)
            #expect(try await Self.waitForClients(redis, count: before + 1))
            for index in 0..<500 {
                worker.emit("burst", arguments: [.int(Int64(index))], to: .broadcast, completion: nil)
            }
            // No shutdown(): the gateway is released when this function returns.
        }
        try await useAndForget()
        #expect(await collector.wait { $0 >= 501 })
        #expect(collector.count == 501)
        // The publisher stopped: its connection (and the timer that lives with it) is gone.
        #expect(try await Self.waitForClients(redis, count: before))
        await subscriber.shutdown()
        await redis.stop()
    }
}
