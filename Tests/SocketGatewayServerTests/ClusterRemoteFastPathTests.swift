import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// What a server does with other hosts' emits: those for rooms with no member here are counted and dropped on
/// arrival; the others reach only the shards with members, their arguments copied as published. Real
/// redis-server, real WebSocket clients on two event loops.
@Suite(.serialized) struct ClusterRemoteFastPathTests {
    static let host = "0123456789abcdef0123456789abcdef"

    /// An emit as python-socketio's AsyncRedisManager publishes it; `room` and `data` are JSON text.
    static func emit(room: String, data: String, event: String = "tick", namespace: String = "/") -> String {
        #"{"method": "emit", "event": "\#(event)", "data": \#(data), "binary": false, "namespace": "\#(namespace)", "#
            + #""room": \#(room), "skip_sid": null, "callback": null, "host_id": "\#(Self.host)"}"#
    }

    /// Runs `body` with a redis-server, a clustered server with two event loops and a client event loop group;
    /// stops them afterwards, also when `body` throws.
    func withNode(
        _ body: (ClusterTests.Node, RedisServerProcess, String, any EventLoopGroup) async throws -> Void
    ) async throws {
        let redis = try await RedisServerProcess.start()
        let channel = ClusterTests.channelName()
        let cluster = ClusterTests()
        let node = try await cluster.startNode(redisURL: redis.urlString, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await cluster.waitSubscribed([node])
            try await body(node, redis, channel, group)
        } catch {
            try? await node.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    func shardIndex(_ node: ClusterTests.Node, _ sid: String) throws -> Int {
        let connection = try #require(node.recorder.connection(sid))
        return node.server.gateway.shards.shard(for: connection.eventLoop).index
    }

    @Test func emitsForRoomsWithNoMemberHereAreSkippedAndCountedWhileOthersArriveAsPublished() async throws {
        try await self.withNode { node, redis, channel, group in
            let cluster = ClusterTests()
            let (member, memberSid) = try await cluster.connect(node, group: group)
            let (bystander, _) = try await cluster.connect(node, group: group)
            #expect(await node.server.gateway.joinRoom(memberSid, room: "present").outcome == .delivered)
            // The room is listed for the member's shard only.
            let presence = node.server.gateway.shards.presence
            let memberShard = try self.shardIndex(node, memberSid)
            #expect(presence.shards(namespace: "/", rooms: ["present"]).sorted == [memberShard])

            let published =
                #"[1.0, {"t\u00eaxt": "h\u00e9llo \ud83d\ude00", "q": "a\"b\\c\n\/"}, 1e+16, -0.0, [true, null]]"#
            let messages = [
                Self.emit(room: #""absent""#, data: "[1]"),
                Self.emit(room: #""present""#, data: published),
                Self.emit(room: #"["absent", "nobody"]"#, data: #"[{"big": "payload"}]"#),
                // A namespace with no client here (not even registered).
                Self.emit(room: "null", data: "[3]", namespace: "/admin"),
                // Unreadable up to the target: counted as undecodable.
                "not json",
                #"{"method": "emit", "event": "x", "data": [1, }"#,
                // Malformed past a target that names nobody here: skipped unread, counted as skipped.
                Self.emit(room: #""absent""#, data: #"["bad \u12 escape"]"#),
                #"{"method": "emit", "data": [1,, ], "room": "absent", "host_id": "\#(Self.host)"}"#,
                // Malformed and for a member here: refused whole, counted as undecodable.
                Self.emit(room: #""present""#, data: "[\"\u{01}\"]"),
                #"{"method": "emit", "data": [1], "room": "present", "host_id": "\#(Self.host)"}"#,
                Self.emit(room: #"["absent", "present"]"#, data: "[2]"),
            ]
            for message in messages {
                #expect(try await redis.cli(["PUBLISH", channel, message]) == "1")
            }
            // Numbers and escapes as published; only the whitespace between tokens is gone.
            #expect(
                try await member.nextText()
                    == #"42["tick",1.0,{"t\u00eaxt":"h\u00e9llo \ud83d\ude00","q":"a\"b\\c\n\/"},1e+16,-0.0,"#
                    + #"[true,null]]"#
            )
            #expect(try await member.nextText() == #"42["tick",2]"#)
            let health = node.server.clusterHealth
            #expect(health.skippedNotLocal == 5)
            #expect(health.undecodable == 4)
            #expect(health.json.description.contains(#""skipped_not_local":5"#))
            #expect(member.hasNoPendingFrames())
            #expect(bystander.hasNoPendingFrames())
            await member.close()
            await bystander.close()
        }
    }

    /// Clients on both event loops join a room while a stream of emits to it arrives, and some leave again: each
    /// gets every emit published after its join returned, in order and without a gap, and none published after
    /// its leave returned (the leaving ones leave once their first emit arrived).
    @Test func joinsAndLeavesRacingAStreamOfEmitsAcrossShards() async throws {
        try await self.withNode { node, redis, channel, group in
            let cluster = ClusterTests()
            var clients: [(client: TestWebSocketClient, sid: String)] = []
            for _ in 0..<4 {
                clients.append(try await cluster.connect(node, group: group))
            }
            #expect(Set(try clients.map { try self.shardIndex(node, $0.sid) }).count == 2, "clients on both loops")
            let publisher = RedisPublisher(
                url: redis.url,
                configuration: RedisPublisherConfiguration(channel: channel),
                logger: ClusterTests.logger()
            )
            let count = 1_500
            let started = NIOLockedValueBox(0)
            @Sendable func stream() async throws {
                for sequence in 1...count {
                    started.withLockedValue { $0 = sequence }
                    let message = Self.emit(room: #""race""#, data: "[\(sequence)]")
                    _ = try await publisher.publish(ByteBuffer(string: message))
                }
            }
            async let streamed: Void = stream()
            var joinedAfter: [Int] = []
            var leftAfter: [Int?] = [nil, nil, nil, nil]
            var firstFrames: [String?] = [nil, nil, nil, nil]
            for (index, entry) in clients.enumerated() {
                try await Task.sleep(for: .milliseconds(15))
                let connection = try #require(node.recorder.connection(entry.sid))
                await connection.join("race")
                joinedAfter.append(started.withLockedValue { $0 })
                if index >= 2 {
                    // The last two leave again a little later, once the join showed (their first emit came): an
                    // emit published before a leave returned may still be on its way to the server (pub/sub gives
                    // no such order, and reads are coalesced), so only what arrived proves the join.
                    firstFrames[index] = try await entry.client.nextText()
                    try await Task.sleep(for: .milliseconds(10))
                    await connection.leave("race")
                    leftAfter[index] = started.withLockedValue { $0 }
                }
            }
            try await streamed
            #expect(try await redis.cli(["PUBLISH", channel, Self.emit(room: "null", data: #"["end"]"#)]) == "1")
            for (index, entry) in clients.enumerated() {
                var received: [Int] = []
                var pending = firstFrames[index]
                while true {
                    let text: String
                    if let first = pending {
                        text = first
                        pending = nil
                    } else {
                        text = try await entry.client.nextText()
                    }
                    if text == #"42["tick","end"]"# { break }
                    let number = text.dropFirst(#"42["tick","#.count).dropLast()
                    received.append(try #require(Int(number), "unexpected frame \(text)"))
                }
                let joined = joinedAfter[index]
                #expect(zip(received, received.dropFirst()).allSatisfy { $1 == $0 + 1 }, "client \(index): a gap")
                if let left = leftAfter[index] {
                    #expect((received.last ?? 0) <= left, "client \(index) received after its leave")
                    #expect((received.first ?? .max) <= joined + 1, "client \(index) missed emits after its join")
                } else {
                    #expect((received.first ?? .max) <= joined + 1, "client \(index) missed emits after its join")
                    #expect(received.last == count, "client \(index)")
                }
            }
            await publisher.shutdown()
            for entry in clients { await entry.client.close() }
        }
    }

    /// A remote `enter_room` read right before an emit to that room: the emit reaches the shard, which applies
    /// the join first (the router holds the room for that shard until the join is applied). Afterwards the
    /// presence counts are exactly the members', and disconnects leave none behind.
    @Test func aRemoteJoinFollowedAtOnceByAnEmitToTheRoomIsDelivered() async throws {
        try await self.withNode { node, redis, channel, group in
            let cluster = ClusterTests()
            let (member, memberSid) = try await cluster.connect(node, group: group)
            let (other, otherSid) = try await cluster.connect(node, group: group)
            let publisher = RedisPublisher(
                url: redis.url,
                configuration: RedisPublisherConfiguration(channel: channel),
                logger: ClusterTests.logger()
            )
            let rooms = 60
            for round in 0..<rooms {
                let sid = round.isMultiple(of: 2) ? memberSid : otherSid
                let join = PubSubMessage.enterRoom(sid: sid, room: "fresh-\(round)", namespace: "/", hostID: Self.host)
                // Pipelined on one connection: Redis keeps their order, and nothing waits in between.
                publisher.publish(join.encoded(), completion: nil)
                let emit = Self.emit(room: #""fresh-\#(round)""#, data: "[\(round)]")
                publisher.publish(ByteBuffer(string: emit), completion: nil)
            }
            for round in stride(from: 0, to: rooms, by: 2) {
                #expect(try await member.nextText() == #"42["tick",\#(round)]"#)
                #expect(try await other.nextText() == #"42["tick",\#(round + 1)]"#)
            }
            #expect(node.server.clusterHealth.skippedNotLocal == 0)
            let presence = node.server.gateway.shards.presence
            let memberShard = try self.shardIndex(node, memberSid)
            #expect(presence.snapshot.count(namespace: "/", room: "fresh-0", shard: memberShard) == 1)
            // Each client's sid room and the fresh rooms.
            #expect(presence.snapshot.roomCount == 2 + rooms)
            await member.close()
            await other.close()
            // Bounded: 20 s (the closes are noticed in milliseconds on a quiet machine, seconds on a loaded one).
            for _ in 0..<2000
            where presence.snapshot.roomCount > 0 || presence.snapshot.isPresent(namespace: "/", room: nil) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(presence.snapshot.roomCount == 0)
            #expect(!presence.snapshot.isPresent(namespace: "/", room: nil))
            await publisher.shutdown()
        }
    }
}
