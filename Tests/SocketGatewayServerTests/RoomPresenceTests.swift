import NIOConcurrencyHelpers
import Testing

@testable import SocketGatewayServer

@Suite struct RoomPresenceTests {
    /// Records what the observer was told, with what `hasMembers` said at that moment.
    private final class Reports: Sendable {
        let seen = NIOLockedValueBox<[String]>([])
    }

    private func observed(_ presence: RoomPresence) -> Reports {
        let reports = Reports()
        presence.setObserver { namespace, room in
            let present = presence.hasMembers(namespace: namespace, room: room)
            reports.seen.withLockedValue { $0.append("\(namespace) \(room) \(present ? "present" : "gone")") }
        }
        return reports
    }

    @Test func onlyTheFirstGainAndTheLastLossAcrossShardsAreReported() {
        let presence = RoomPresence()
        let reports = self.observed(presence)
        presence.shardGained(namespace: "/", room: "user:1")
        presence.shardGained(namespace: "/", room: "user:1")
        #expect(presence.hasMembers(namespace: "/", room: "user:1"))
        presence.shardLost(namespace: "/", room: "user:1")
        #expect(presence.hasMembers(namespace: "/", room: "user:1"))
        presence.shardLost(namespace: "/", room: "user:1")
        #expect(!presence.hasMembers(namespace: "/", room: "user:1"))
        #expect(reports.seen.withLockedValue { $0 } == ["/ user:1 present", "/ user:1 gone"])
        #expect(presence.roomCount == 0)
    }

    @Test func namespacesAreSeparate() {
        let presence = RoomPresence()
        presence.shardGained(namespace: "/admin", room: "blue")
        #expect(presence.hasMembers(namespace: "/admin", room: "blue"))
        #expect(!presence.hasMembers(namespace: "/", room: "blue"))
    }

    @Test func sessionRoomsAreCountedButNotReported() {
        let presence = RoomPresence()
        let reports = self.observed(presence)
        presence.shardGained(namespace: "/", room: "sid1", isSessionRoom: true)
        #expect(presence.hasMembers(namespace: "/", room: "sid1"))
        presence.shardLost(namespace: "/", room: "sid1", isSessionRoom: true)
        #expect(!presence.hasMembers(namespace: "/", room: "sid1"))
        #expect(reports.seen.withLockedValue { $0 }.isEmpty)
    }

    @Test func aReservationHoldsTheRoomUntilReleased() {
        let presence = RoomPresence()
        let reports = self.observed(presence)
        presence.reserve(namespace: "/", room: "user:7")
        presence.shardGained(namespace: "/", room: "user:7")
        presence.release(namespace: "/", room: "user:7")
        #expect(presence.hasMembers(namespace: "/", room: "user:7"))
        presence.shardLost(namespace: "/", room: "user:7")
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
