import Foundation
import Logging
import NIOCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// `RedisCommandClient` against a real redis-server: replies, error replies, blocking pops, AUTH/SELECT,
/// timeouts and reconnecting after the server restarts.
@Suite(.serialized) struct RedisCommandClientTests {
    let logger = Logger(label: "test.redis.commands")

    @Test func repliesOfEveryKindComeBackInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        let client = RedisCommandClient(url: redis.url, logger: self.logger)
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        #expect(try await client.send(["LPUSH", "jobs", "a", "b"]) == .integer(2))
        #expect(
            try await client.send(["LRANGE", "jobs", "0", "-1"])
                == .array([.bulkString(ByteBuffer(string: "b")), .bulkString(ByteBuffer(string: "a"))])
        )
        #expect(try await client.send(["GET", "missing"]) == .null)
        // Many commands at once from concurrent tasks each get their own reply.
        try await withThrowingTaskGroup(of: (Int, RESPValue).self) { group in
            for index in 0..<50 {
                group.addTask { (index, try await client.send(["ECHO", "value-\(index)"])) }
            }
            for try await (index, reply) in group {
                #expect(reply.string == "value-\(index)")
            }
        }
        do {
            try await client.send(["LPUSH"])
            Issue.record("a command with missing arguments succeeded")
        } catch {
            #expect(error.code == .commandFailed)
            #expect(error.message.contains("wrong number of arguments"))
        }
        // The connection is still usable after an error reply.
        #expect(try await client.send(["RPOP", "jobs"]).string == "a")
        await client.shutdown()
        await redis.stop()
    }

    @Test func blockingPopWaitsForAPushFromAnotherConnection() async throws {
        let redis = try await RedisServerProcess.start()
        let consumer = RedisCommandClient(url: redis.url, logger: self.logger)
        let producer = RedisCommandClient(url: redis.url, logger: self.logger)
        #expect(try await consumer.send(["BRPOP", "queue", "1"], timeout: .seconds(10)) == .null)
        async let popped = consumer.send(["BRPOP", "queue", "5"], timeout: .seconds(15))
        try await Task.sleep(for: .milliseconds(100))
        try await producer.send(["LPUSH", "queue", #"{"job":1}"#])
        let reply = try await popped
        #expect(
            reply == .array([.bulkString(ByteBuffer(string: "queue")), .bulkString(ByteBuffer(string: #"{"job":1}"#))])
        )
        await consumer.shutdown()
        await producer.shutdown()
        await redis.stop()
    }

    @Test func authenticatesAndSelectsTheDatabase() async throws {
        let redis = try await RedisServerProcess.start(extraArguments: ["--requirepass", "s3cret"])
        let client = RedisCommandClient(
            url: try RedisURL(parsing: "redis://:s3cret@127.0.0.1:\(redis.port)/2"),
            logger: self.logger
        )
        try await client.send(["SET", "k", "v"])
        #expect(try await redis.cli(["-a", "s3cret", "--no-auth-warning", "-n", "2", "GET", "k"]).contains("v"))
        await client.shutdown()

        let refused = RedisCommandClient(
            url: try RedisURL(parsing: "redis://:wrong@127.0.0.1:\(redis.port)"),
            logger: self.logger
        )
        do {
            try await refused.send(["PING"])
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(error.code == .authenticationFailed)
        }
        await refused.shutdown()
        await redis.stop()
    }

    @Test func commandsBehindARefusedSelectAreNeverSent() async throws {
        let redis = try await RedisServerProcess.start()
        // Database 99 does not exist (16 by default): Redis refuses the SELECT.
        let client = RedisCommandClient(
            url: try RedisURL(parsing: "redis://127.0.0.1:\(redis.port)/99"),
            logger: self.logger
        )
        do {
            try await client.send(["SET", "written", "by mistake"])
            Issue.record("a command behind a refused SELECT succeeded")
        } catch {
            #expect(error.code == .selectFailed)
        }
        // The SET did not run on the connection's default database either.
        #expect(try await redis.cli(["EXISTS", "written"]) == "0")
        await client.shutdown()
        await redis.stop()
    }

    @Test func aCommandWithoutReplyTimesOutAndTheNextOneReconnects() async throws {
        let redis = try await RedisServerProcess.start()
        let client = RedisCommandClient(url: redis.url, logger: self.logger)
        do {
            try await client.send(["BLPOP", "never", "0"], timeout: .milliseconds(200))
            Issue.record("a command blocked forever returned")
        } catch {
            #expect(error.code == .timeout)
        }
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        await client.shutdown()
        do {
            try await client.send(["PING"])
            Issue.record("a command after shutdown succeeded")
        } catch {
            #expect(error.code == .shutdown)
        }
        await redis.stop()
    }

    @Test func reconnectsAfterTheServerRestarts() async throws {
        let redis = try await RedisServerProcess.start()
        let client = RedisCommandClient(url: redis.url, logger: self.logger)
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        await redis.stop()
        do {
            try await client.send(["PING"])
            Issue.record("PING succeeded with redis-server stopped")
        } catch {
            #expect(error.code == .connectionFailed || error.code == .connectionClosed)
        }
        try await redis.restart()
        var reply: RESPValue?
        for _ in 0..<50 where reply == nil {
            reply = try? await client.send(["PING"])
            if reply == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(reply == .simpleString("PONG"))
        await client.shutdown()
        await redis.stop()
    }
}
