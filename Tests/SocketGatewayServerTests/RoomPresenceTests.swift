import NIOConcurrencyHelpers
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

@Suite struct RoomPresenceTests {
    @Test func firstAndLastMemberOfARoomAcrossShards() {
        var presence = RoomPresence()
        #expect(presence.shards(namespace: "/", rooms: ["r"]).isEmpty)
        #expect(presence.add(namespace: "/", room: "r", shard: 1) == .firstMember)
        #expect(presence.add(namespace: "/", room: "r", shard: 3) == .none)
        #expect(presence.add(namespace: "/", room: "r", shard: 1) == .none)
        #expect(presence.shards(namespace: "/", rooms: ["r"]).sorted == [1, 3])
        #expect(presence.count(namespace: "/", room: "r", shard: 1) == 2)
        #expect(presence.roomCount == 1)

        #expect(presence.remove(namespace: "/", room: "r", shard: 1) == .none)
        #expect(presence.shards(namespace: "/", rooms: ["r"]).sorted == [1, 3])
        #expect(presence.remove(namespace: "/", room: "r", shard: 3) == .none)
        #expect(presence.shards(namespace: "/", rooms: ["r"]).sorted == [1])
        #expect(presence.remove(namespace: "/", room: "r", shard: 1) == .lastMemberLeft)
        #expect(presence.shards(namespace: "/", rooms: ["r"]).isEmpty)
        #expect(!presence.isPresent(namespace: "/", room: "r"))
        #expect(presence.roomCount == 0)
        // And again from nothing.
        #expect(presence.add(namespace: "/", room: "r", shard: 0) == .firstMember)
    }

    @Test func addressedNamesFindTheSameShardsAsAnArrayOfThem() {
        var presence = RoomPresence()
        presence.add(namespace: "/", room: nil, shard: 2)
        presence.add(namespace: "/", room: "a", shard: 0)
        presence.add(namespace: "/", room: "b", shard: 1)
        presence.add(namespace: "/", room: "b", shard: 3)
        presence.add(namespace: "/admin", room: "a", shard: 4)
        let names: [PubSubNames] = [
            .none, .one("a"), .one("b"), .one("c"), .list([]), .list(["a"]), .list(["a", "b"]), .list(["c", "b"]),
        ]
        for namespace in ["/", "/admin", "/other"] {
            for addressed in names {
                let rooms: [String]? = addressed == .none ? nil : addressed.names
                #expect(
                    presence.shards(namespace: namespace, addressed: addressed)
                        == presence.shards(namespace: namespace, rooms: rooms),
                    "\(namespace) \(addressed)"
                )
            }
        }
        #expect(presence.shards(namespace: "/", addressed: .list(["a", "b"])).sorted == [0, 1, 3])
        #expect(presence.shards(namespace: "/", addressed: .none).sorted == [2])
    }

    @Test func namespacesAndRoomsAreSeparate() {
        var presence = RoomPresence()
        #expect(presence.add(namespace: "/", room: nil, shard: 0) == .firstMember)
        #expect(presence.add(namespace: "/admin", room: "r", shard: 1) == .firstMember)
        // The same room name in another namespace is another room.
        #expect(presence.add(namespace: "/", room: "r", shard: 0) == .firstMember)
        #expect(presence.shards(namespace: "/", rooms: nil).sorted == [0])
        #expect(presence.shards(namespace: "/admin", rooms: nil).isEmpty)
        #expect(presence.shards(namespace: "/admin", rooms: ["r"]).sorted == [1])
        #expect(presence.shards(namespace: "/other", rooms: ["r"]).isEmpty)
        #expect(presence.remove(namespace: "/", room: nil, shard: 0) == .lastMemberLeft)
        // The namespace's rooms are still there while its connection count is gone.
        #expect(presence.shards(namespace: "/", rooms: ["r"]).sorted == [0])
        #expect(presence.remove(namespace: "/", room: "r", shard: 0) == .lastMemberLeft)
        #expect(!presence.isPresent(namespace: "/", room: nil))
    }

    @Test func severalRoomsGiveTheUnionOfTheirShards() {
        var presence = RoomPresence()
        presence.add(namespace: "/", room: "a", shard: 0)
        presence.add(namespace: "/", room: "b", shard: 2)
        presence.add(namespace: "/", room: "c", shard: 2)
        presence.add(namespace: "/", room: "c", shard: 5)
        #expect(presence.shards(namespace: "/", rooms: ["a", "b", "c", "none"]).sorted == [0, 2, 5])
        #expect(presence.shards(namespace: "/", rooms: ["none", "b"]).sorted == [2])
        #expect(presence.shards(namespace: "/", rooms: []).isEmpty)
    }

    @Test func shardSetBeyondOneWord() {
        var set = ShardSet()
        for shard in [0, 63, 64, 130, 1] { set.insert(shard) }
        #expect(set.sorted == [0, 1, 63, 64, 130])
        #expect(set.count == 5)
        #expect(set.contains(130) && !set.contains(129) && !set.contains(500))
        var presence = RoomPresence()
        presence.add(namespace: "/", room: "r", shard: 200)
        presence.add(namespace: "/", room: "r", shard: 3)
        #expect(presence.shards(namespace: "/", rooms: ["r"]).sorted == [3, 200])
        #expect(ShardSet([7, 7, 70]).sorted == [7, 70])
    }

    /// Random adds and removes against a plain model: counts per (namespace, room, shard), the shards reported, and
    /// a transition exactly when a room's server-wide total goes 0 → 1 or 1 → 0.
    @Test func randomChangesMatchAPlainModel() {
        struct Key: Hashable {
            var namespace: String
            var room: String?
        }
        var generator = SplitMix(state: 0xC0FFEE)
        var presence = RoomPresence()
        var model: [Key: [Int: Int]] = [:]
        let namespaces = ["/", "/a"]
        let rooms: [String?] = [nil, "r1", "r2", "r3"]
        for step in 0..<5_000 {
            let key = Key(
                namespace: namespaces[Int(generator.next() % 2)],
                room: rooms[Int(generator.next() % UInt64(rooms.count))]
            )
            let shard = Int(generator.next() % 4) * 30  // 0, 30, 60, 90: across the word boundary
            let total = model[key, default: [:]].values.reduce(0, +)
            let held = model[key]?[shard] ?? 0
            if held > 0 && generator.next() % 2 == 0 {
                let transition = presence.remove(namespace: key.namespace, room: key.room, shard: shard)
                model[key]![shard] = held > 1 ? held - 1 : nil
                #expect(transition == (total == 1 ? .lastMemberLeft : .none), "step \(step)")
            } else {
                let transition = presence.add(namespace: key.namespace, room: key.room, shard: shard)
                model[key, default: [:]][shard, default: 0] += 1
                #expect(transition == (total == 0 ? .firstMember : .none), "step \(step)")
            }
            for namespace in namespaces {
                for room in rooms {
                    let expected = (model[Key(namespace: namespace, room: room)] ?? [:]).keys.sorted()
                    let found = presence.shards(namespace: namespace, rooms: room.map { [$0] }).sorted
                    #expect(found == expected, "step \(step): \(namespace) \(room ?? "-")")
                    for shard in [0, 30, 60, 90] {
                        let count = model[Key(namespace: namespace, room: room)]?[shard] ?? 0
                        #expect(presence.count(namespace: namespace, room: room, shard: shard) == count)
                    }
                }
            }
            let present = model.filter { $0.key.room != nil && !$0.value.isEmpty }.count
            #expect(presence.roomCount == present, "step \(step)")
        }
    }

    @Test func sharedTableFromManyThreads() async {
        let presence = LocalRoomPresence()
        await withTaskGroup(of: Void.self) { group in
            for shard in 0..<8 {
                group.addTask {
                    for round in 0..<500 {
                        presence.add(namespace: "/", room: "r\(round % 10)", shard: shard)
                        _ = presence.shards(namespace: "/", rooms: ["r\(round % 7)"])
                    }
                    for round in 0..<500 {
                        presence.remove(namespace: "/", room: "r\(round % 10)", shard: shard)
                    }
                }
            }
        }
        #expect(presence.snapshot.roomCount == 0)
        #expect(presence.shards(namespace: "/", rooms: (0..<10).map { "r\($0)" }).isEmpty)
    }
}

/// A seeded generator (SplitMix64), so a failing step can be replayed.
private struct SplitMix {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What room-channel mode needs from the shared index: server-wide transitions told to an observer, session rooms
/// counted but not told, holds before a connection joins.
@Suite struct LocalRoomPresenceObserverTests {
    /// Records what the observer was told, with what `hasMembers` said at that moment.
    private final class Reports: Sendable {
        let seen = NIOLockedValueBox<[String]>([])
    }

    private func observed(_ presence: LocalRoomPresence) -> Reports {
        let reports = Reports()
        presence.setObserver { namespace, room in
            let present = presence.hasMembers(namespace: namespace, room: room)
            reports.seen.withLockedValue { $0.append("\(namespace) \(room) \(present ? "present" : "gone")") }
        }
        return reports
    }

    @Test func onlyTheFirstGainAndTheLastLossAcrossShardsAreReported() {
        let presence = LocalRoomPresence()
        let reports = self.observed(presence)
        presence.add(namespace: "/", room: "user:1", shard: 0)
        presence.add(namespace: "/", room: "user:1", shard: 1)
        #expect(presence.hasMembers(namespace: "/", room: "user:1"))
        presence.remove(namespace: "/", room: "user:1", shard: 0)
        #expect(presence.hasMembers(namespace: "/", room: "user:1"))
        presence.remove(namespace: "/", room: "user:1", shard: 1)
        #expect(!presence.hasMembers(namespace: "/", room: "user:1"))
        #expect(reports.seen.withLockedValue { $0 } == ["/ user:1 present", "/ user:1 gone"])
        #expect(presence.roomCount == 0)
    }

    @Test func namespaceCountsAreNotReported() {
        let presence = LocalRoomPresence()
        let reports = self.observed(presence)
        presence.add(namespace: "/admin", room: nil, shard: 0)
        presence.add(namespace: "/admin", room: "blue", shard: 0)
        #expect(presence.hasMembers(namespace: "/admin", room: "blue"))
        #expect(!presence.hasMembers(namespace: "/", room: "blue"))
        #expect(reports.seen.withLockedValue { $0 } == ["/admin blue present"])
    }

    @Test func sessionRoomsAreCountedButNotReported() {
        let presence = LocalRoomPresence()
        let reports = self.observed(presence)
        presence.add(namespace: "/", room: "sid1", shard: 0, isSessionRoom: true)
        #expect(presence.hasMembers(namespace: "/", room: "sid1"))
        presence.remove(namespace: "/", room: "sid1", shard: 0, isSessionRoom: true)
        #expect(!presence.hasMembers(namespace: "/", room: "sid1"))
        #expect(reports.seen.withLockedValue { $0 }.isEmpty)
    }

    @Test func aReservationHoldsTheRoomUntilReleased() {
        let presence = LocalRoomPresence()
        let reports = self.observed(presence)
        presence.reserve(namespace: "/", room: "user:7", shard: 1)
        presence.add(namespace: "/", room: "user:7", shard: 1)
        presence.release(namespace: "/", room: "user:7", shard: 1)
        #expect(presence.hasMembers(namespace: "/", room: "user:7"))
        #expect(presence.shards(namespace: "/", rooms: ["user:7"]).sorted == [1])
        presence.remove(namespace: "/", room: "user:7", shard: 1)
        #expect(reports.seen.withLockedValue { $0 } == ["/ user:7 present", "/ user:7 gone"])
    }
}

@Suite struct RoomChannelConfigurationTests {
    @Test func theEnvironmentSetsTheModeAndTheDelay() throws {
        let configuration = try SocketServerConfiguration(
            environment: [
                "REDIS_URL": "redis://127.0.0.1:6379",
                "SOCKET_REDIS_MODE": "rooms",
                "SOCKET_REDIS_ROOM_UNSUBSCRIBE_DELAY": "2.5",
            ]
        )
        #expect(configuration.redis?.mode == .rooms)
        #expect(configuration.redis?.roomUnsubscribeDelay == .milliseconds(2500))
        let defaults = try SocketServerConfiguration(environment: ["REDIS_URL": "redis://127.0.0.1:6379"])
        #expect(defaults.redis?.mode == .python)
        #expect(defaults.redis?.roomUnsubscribeDelay == .seconds(30))
    }

    @Test func aWrongModeOrDelayIsRefusedWithItsVariable() {
        #expect {
            _ = try SocketServerConfiguration(
                environment: ["REDIS_URL": "redis://127.0.0.1:6379", "SOCKET_REDIS_MODE": "sharded"]
            )
        } throws: { error in
            (error as? SocketServerConfigurationError)?.variable == "SOCKET_REDIS_MODE"
        }
        #expect {
            _ = try SocketServerConfiguration(
                environment: ["REDIS_URL": "redis://127.0.0.1:6379", "SOCKET_REDIS_ROOM_UNSUBSCRIBE_DELAY": "-1"]
            )
        } throws: { error in
            (error as? SocketServerConfigurationError)?.variable == "SOCKET_REDIS_ROOM_UNSUBSCRIBE_DELAY"
        }
    }
}
