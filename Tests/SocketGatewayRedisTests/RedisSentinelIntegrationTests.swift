import Foundation
import Logging
import NIOCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// The publisher, the subscriber and the command client on a `redis+sentinel://` URL against real sentinels
/// (`RedisSentinelSetup`: a primary, a replica, three sentinels).
@Suite(.serialized) struct RedisSentinelIntegrationTests {
    let logger = Logger(label: "test.redis.sentinel")

    @Test func publishAndSubscribeThroughSentinelDiscovery() async throws {
        let setup = try await RedisSentinelSetup.start()
        let url = try RedisURL(parsing: setup.urlString(), environment: [:])
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: url, channels: ["socketio"], logger: self.logger) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: url, logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "through sentinel")) == 1)
        #expect(await recorder.wait { $0 == ["through sentinel"] })
        let client = RedisCommandClient(url: url, logger: self.logger)
        // The command client, too, talks to the primary (not the replica).
        let role = try await client.send(["ROLE"])
        guard case .array(let items) = role else {
            Issue.record("ROLE answered \(role)")
            return
        }
        #expect(items.first?.string == "master")
        // It is the primary the sentinels name: the subscriber's connection is there.
        let primary = try #require(await setup.primaryPort().flatMap(setup.dataNode(port:)))
        #expect(try await primary.cli(["PUBSUB", "NUMSUB", "socketio"]).hasSuffix("1"))
        await client.shutdown()
        await publisher.shutdown()
        await subscriber.shutdown()
        await setup.stop()
    }

    @Test func sentinelsWithAPasswordTakeItFromTheURLOrTheEnvironment() async throws {
        let setup = try await RedisSentinelSetup.start(sentinelPassword: "sentinel-secret")
        // Without it every sentinel refuses the query, and the error says so (never the password).
        let bare = RedisPublisher(url: try RedisURL(parsing: setup.urlString(), environment: [:]), logger: self.logger)
        do {
            _ = try await bare.publish(ByteBuffer(string: "x"))
            Issue.record("published without the sentinels' password")
        } catch {
            #expect(error.code == .primaryNotFound)
            #expect(error.message.contains("\(setup.sentinelPorts[0]) refused (NOAUTH"), "\(error)")
        }
        await bare.shutdown()
        let variable = RedisSentinelEndpoint.passwordVariable
        for url in [
            try RedisURL(parsing: setup.urlString() + "?sentinel_password=sentinel-secret", environment: [:]),
            try RedisURL(parsing: setup.urlString(), environment: [variable: "sentinel-secret"]),
        ] {
            #expect(!url.description.contains("sentinel-secret"))
            let publisher = RedisPublisher(url: url, logger: self.logger)
            #expect(try await publisher.publish(ByteBuffer(string: "authenticated")) == 0)
            await publisher.shutdown()
        }
        await setup.stop()
    }

    @Test func anUnknownPrimaryNameIsAClearError() async throws {
        let setup = try await RedisSentinelSetup.start()
        let text = setup.urlString().replacingOccurrences(of: "/mymaster/", with: "/nosuchprimary/")
        let url = try RedisURL(parsing: text, environment: [:])
        let publisher = RedisPublisher(url: url, logger: self.logger)
        do {
            _ = try await publisher.publish(ByteBuffer(string: "x"))
            Issue.record("published with an unknown primary name")
        } catch {
            #expect(error.code == .primaryNotFound)
            #expect(error.message.hasPrefix("no sentinel knows primary 'nosuchprimary' (tried "), "\(error)")
            for port in setup.sentinelPorts {
                #expect(error.message.contains("127.0.0.1:\(port) does not know 'nosuchprimary'"), "\(error)")
            }
        }
        await publisher.shutdown()
        await setup.stop()
    }

    @Test func aSentinelThatAcceptsButNeverAnswersIsSkippedAtItsDeadline() async throws {
        let setup = try await RedisSentinelSetup.start()
        // The first sentinel hangs: connections are accepted (by the kernel) and nothing is ever answered.
        let first = setup.sentinelPorts[0]
        try await setup.freezeSentinel(first, true)
        let url = try RedisURL(parsing: setup.urlString(), environment: [:])
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(
            url: url,
            channels: ["socketio"],
            configuration: RedisSubscriberConfiguration(connectTimeout: .milliseconds(500)),
            logger: self.logger
        ) { recorder.record($0) }
        subscriber.start()
        // Subscribed through the second sentinel, after the first one's deadline.
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(15)))
        let publisher = RedisPublisher(url: url, logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "past the hung sentinel")) == 1)
        #expect(await recorder.wait { $0 == ["past the hung sentinel"] })
        await publisher.shutdown()
        await subscriber.shutdown()
        try await setup.freezeSentinel(first, false)
        await setup.stop()
    }

    @Test func aDeadSentinelIsSkippedForTheNextOne() async throws {
        let setup = try await RedisSentinelSetup.start()
        // A first sentinel that is gone (killed), then the others.
        let first = setup.sentinelPorts[0]
        await setup.killSentinel(first)
        let url = try RedisURL(parsing: setup.urlString(), environment: [:])
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: url, channels: ["socketio"], logger: self.logger) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: url, logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "via the second sentinel")) == 1)
        #expect(await recorder.wait { $0 == ["via the second sentinel"] })
        await publisher.shutdown()
        await subscriber.shutdown()

        // With every sentinel gone, the error lists each one.
        for port in setup.sentinelPorts { await setup.killSentinel(port) }
        let lonely = RedisPublisher(url: url, logger: self.logger)
        do {
            _ = try await lonely.publish(ByteBuffer(string: "x"))
            Issue.record("published without sentinels")
        } catch {
            #expect(error.code == .primaryNotFound)
            for port in setup.sentinelPorts {
                #expect(error.message.contains("127.0.0.1:\(port) cannot connect"), "\(error)")
            }
        }
        await lonely.shutdown()
        await setup.stop()
    }
}
