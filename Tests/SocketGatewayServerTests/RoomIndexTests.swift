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
}
