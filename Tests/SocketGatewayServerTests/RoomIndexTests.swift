import Testing

@testable import SocketGatewayServer

@Suite struct RoomIndexTests {
    private func recipients(_ index: RoomIndex<String>, rooms: [String]?, excluding: Set<String> = []) -> [String] {
        var seen: [String] = []
        let count = index.forEachRecipient(rooms: rooms, excluding: excluding) { seen.append($0) }
        #expect(count == seen.count)
        return seen.sorted()
    }

    private func makeIndex() -> RoomIndex<String> {
        var index = RoomIndex<String>()
        for id in ["a", "b", "c", "d"] {
            index.add(id, id)
            index.join(id, room: id)
        }
        index.join("a", room: "user:1")
        index.join("b", room: "user:1")
        index.join("c", room: "user:2")
        index.join("a", room: "blue")
        index.join("c", room: "blue")
        index.join("d", room: "red")
        index.join("c", room: "red")
        return index
    }

    @Test func joinAndEmitToRoom() {
        let index = self.makeIndex()
        #expect(self.recipients(index, rooms: ["user:1"]) == ["a", "b"])
        #expect(self.recipients(index, rooms: ["blue"]) == ["a", "c"])
        #expect(self.recipients(index, rooms: ["nobody"]) == [])
        #expect(self.recipients(index, rooms: nil) == ["a", "b", "c", "d"])
        #expect(index.rooms(of: "c") == ["c", "user:2", "blue", "red"])
    }

    @Test func severalRoomsVisitEachMemberOnce() {
        let index = self.makeIndex()
        #expect(self.recipients(index, rooms: ["blue", "red", "blue"]) == ["a", "c", "d"])
    }

    @Test func excludingRoomsAndSids() {
        let index = self.makeIndex()
        #expect(self.recipients(index, rooms: nil, excluding: ["a"]) == ["b", "c", "d"])
        #expect(self.recipients(index, rooms: ["blue"], excluding: ["red"]) == ["a"])
        #expect(self.recipients(index, rooms: nil, excluding: ["user:1", "d", "unknown"]) == ["c"])
    }

    @Test func joinUnknownMemberFails() {
        var index = self.makeIndex()
        #expect(index.join("zzz", room: "blue") == false)
        #expect(self.recipients(index, rooms: ["blue"]) == ["a", "c"])
    }

    @Test func leaveRoom() {
        var index = self.makeIndex()
        let leftA = index.leave("a", room: "blue")
        #expect(leftA)
        #expect(index.leave("a", room: "blue") == false)
        #expect(self.recipients(index, rooms: ["blue"]) == ["c"])
        let leftC = index.leave("c", room: "blue")
        #expect(leftC)
        #expect(index.members(of: "blue").isEmpty)
        #expect(!index.rooms(of: "a").contains("blue"))
    }

    @Test func closeRoom() {
        var index = self.makeIndex()
        let roomsBefore = index.roomCount
        #expect(index.close(room: "blue").sorted() == ["a", "c"])
        #expect(self.recipients(index, rooms: ["blue"]) == [])
        #expect(!index.rooms(of: "a").contains("blue"))
        #expect(index.roomCount == roomsBefore - 1)
        #expect(index.close(room: "blue").isEmpty)
    }

    @Test func removeCleansEveryRoom() {
        var index = self.makeIndex()
        #expect(index.remove("c") == "c")
        #expect(index.remove("c") == nil)
        #expect(self.recipients(index, rooms: ["blue"]) == ["a"])
        #expect(self.recipients(index, rooms: ["red"]) == ["d"])
        #expect(self.recipients(index, rooms: ["user:2"]) == [])
        #expect(self.recipients(index, rooms: nil) == ["a", "b", "d"])
        #expect(index.rooms(of: "c").isEmpty)
        for id in ["a", "b", "d"] { index.remove(id) }
        #expect(index.count == 0)
        #expect(index.roomCount == 0)
    }

    @Test func roomGrowsFromOneMemberAndShrinksBack() {
        var index = RoomIndex<String>()
        for id in ["a", "b", "c"] { index.add(id, id) }
        index.join("a", room: "team")
        index.join("a", room: "team")  // joining twice changes nothing
        #expect(self.recipients(index, rooms: ["team"]) == ["a"])
        index.join("b", room: "team")
        index.join("c", room: "team")
        #expect(self.recipients(index, rooms: ["team"]) == ["a", "b", "c"])
        #expect(self.recipients(index, rooms: ["team"], excluding: ["team"]) == [])
        index.leave("b", room: "team")
        index.leave("c", room: "team")
        #expect(index.members(of: "team") == ["a": "a"])
        #expect(self.recipients(index, rooms: nil, excluding: ["team"]) == ["b", "c"])
        index.leave("a", room: "team")
        #expect(index.roomCount == 0)
    }

    @Test func memberInManyRooms() {
        var index = RoomIndex<String>()
        index.add("a", "a")
        index.add("b", "b")
        let rooms = (0..<40).map { "room-\($0)" }
        for room in rooms { index.join("a", room: room) }
        index.join("b", room: "room-7")
        #expect(index.rooms(of: "a") == Set(rooms))
        #expect(self.recipients(index, rooms: rooms) == ["a", "b"])
        let left = index.leave("a", room: "room-3")
        let leftAgain = index.leave("a", room: "room-3")
        #expect(left && !leftAgain)
        let closed = index.close(room: "room-7")
        #expect(closed.sorted() == ["a", "b"])
        #expect(index.rooms(of: "a") == Set(rooms).subtracting(["room-3", "room-7"]))
        #expect(index.rooms(of: "b").isEmpty)
        index.remove("a")
        #expect(index.roomCount == 0)
    }

    @Test func smallMapKeepsInsertionOrder() {
        var map: SmallMap<String, Int> = [:]
        #expect(map.isEmpty)
        map["/"] = 1
        map["/chat"] = 2
        map["/"] = 3
        #expect(map["/"] == 3)
        #expect(map.keys == ["/", "/chat"])
        let removed = map.removeValue(forKey: "/")
        let removedAgain = map.removeValue(forKey: "/")
        #expect(removed == 3 && removedAgain == nil)
        map["/chat"] = nil
        #expect(map.isEmpty)
        #expect(map.count == 0)
    }
}
