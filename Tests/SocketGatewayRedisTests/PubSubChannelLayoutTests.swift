import SocketGatewayCore
import Testing

@testable import SocketGatewayRedis

/// Which channel each message goes to in each mode.
@Suite struct PubSubChannelLayoutTests {
    let rooms = PubSubChannelLayout(channel: "socketio", mode: .rooms)
    let python = PubSubChannelLayout(channel: "socketio", mode: .python)

    func emit(_ target: EmitTarget, namespace: String = "/", excluding: Set<String> = []) -> PubSubMessage {
        .emit(
            "e",
            arguments: [1],
            to: target,
            options: EmitOptions(namespace: namespace, excluding: excluding),
            hostID: "h"
        )
    }

    @Test func anEmitToOneRoomGoesToThatRoomsChannelInRoomsMode() {
        #expect(self.rooms.roomChannel(for: self.emit(.user("42"))) == "socketio#/#user:42#")
        #expect(
            self.rooms.roomChannel(for: self.emit(.room("sheet:1"), namespace: "/admin")) == "socketio#/admin#sheet:1#"
        )
        #expect(
            self.rooms.roomChannel(for: self.emit(.room("blue"), excluding: ["x"])) == "socketio#/#blue#",
            "exclusions travel in the message"
        )
        #expect(self.python.roomChannel(for: self.emit(.user("42"))) == nil)
    }

    @Test func everythingElseStaysOnTheCommonChannel() {
        #expect(self.rooms.roomChannel(for: self.emit(.broadcast)) == nil)
        #expect(self.rooms.roomChannel(for: self.emit(.rooms(["a", "b"]))) == nil)
        #expect(self.rooms.roomChannel(for: .enterRoom(sid: "s", room: "r", namespace: "/", hostID: "h")) == nil)
        #expect(self.rooms.roomChannel(for: .closeRoom(room: "r", namespace: "/", hostID: "h")) == nil)
        let withCallback = PubSubMessage.emit(
            PubSubEmit(
                event: "ask",
                arguments: [],
                namespace: "/",
                room: .one("team"),
                callback: PubSubCallback(room: .one("sid"), namespace: "/", id: 1),
                hostID: "h"
            )
        )
        #expect(self.rooms.roomChannel(for: withCallback) == nil)
    }

    @Test func sessionIDsHaveNoChannelOfTheirOwn() {
        // Ours (16 random bytes, base64url) and python-socketio's (20 characters).
        #expect(self.rooms.roomChannel(for: self.emit(.room(SessionID.random()))) == nil)
        #expect(self.rooms.roomChannel(for: self.emit(.room("aBcDeFgHiJkLmNoPqRsT"))) == nil)
        #expect(PubSubChannelLayout.mayBeSessionID("aBcDeFgHiJkLmNoPqRsT"))
        #expect(!PubSubChannelLayout.mayBeSessionID("user:aBcDeFgHiJkLmNoPq"))
        #expect(!PubSubChannelLayout.mayBeSessionID("short"))
    }

    @Test func modesParseAndRefuseWithTheirNames() throws {
        #expect(try RedisChannelMode(parsing: " Rooms ") == .rooms)
        #expect(try RedisChannelMode(parsing: "python") == .python)
        #expect(throws: RedisError.self) { try RedisChannelMode(parsing: "sharded") }
        do {
            _ = try RedisChannelMode(parsing: "sharded")
        } catch {
            #expect(error.message.contains("'python'") && error.message.contains("'rooms'"))
        }
    }
}
