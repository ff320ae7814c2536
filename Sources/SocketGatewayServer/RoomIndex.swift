/// The rooms of one namespace on one shard: room → members, and member → rooms.
///
/// A pure value type; the shard that owns it (one per event loop) confines it to that loop. Emits walk only the
/// members of the addressed rooms, never every connection, and never allocate per recipient.
struct RoomIndex<Member> {
    /// Every member of the namespace on this shard, by session id.
    private(set) var members: [String: Member] = [:]
    /// room → (session id → member).
    private var rooms: [String: [String: Member]] = [:]
    /// session id → the rooms it is in.
    private var roomsOfMember: [String: Set<String>] = [:]

    /// The number of members.
    var count: Int { self.members.count }

    /// The number of non-empty rooms.
    var roomCount: Int { self.rooms.count }

    /// Adds a member (in no room yet). Replaces a member with the same id.
    mutating func add(_ id: String, _ member: Member) {
        self.members[id] = member
        if self.roomsOfMember[id] == nil {
            self.roomsOfMember[id] = []
        }
    }

    /// Puts member `id` into `room`. Returns `false` when there is no such member.
    @discardableResult
    mutating func join(_ id: String, room: String) -> Bool {
        guard let member = self.members[id] else { return false }
        self.rooms[room, default: [:]][id] = member
        self.roomsOfMember[id, default: []].insert(room)
        return true
    }

    /// Takes member `id` out of `room`. Returns `false` when it was not in it.
    @discardableResult
    mutating func leave(_ id: String, room: String) -> Bool {
        guard self.roomsOfMember[id]?.remove(room) != nil else { return false }
        self.removeFromRoom(id, room: room)
        return true
    }

    /// Removes every member from `room`; returns the ids that were in it.
    @discardableResult
    mutating func close(room: String) -> [String] {
        guard let inRoom = self.rooms.removeValue(forKey: room) else { return [] }
        for id in inRoom.keys {
            self.roomsOfMember[id]?.remove(room)
        }
        return Array(inRoom.keys)
    }

    /// Removes member `id` and its membership of every room.
    @discardableResult
    mutating func remove(_ id: String) -> Member? {
        guard let member = self.members.removeValue(forKey: id) else { return nil }
        if let joined = self.roomsOfMember.removeValue(forKey: id) {
            for room in joined {
                self.removeFromRoom(id, room: room)
            }
        }
        return member
    }

    /// The rooms member `id` is in (empty when unknown).
    func rooms(of id: String) -> Set<String> {
        self.roomsOfMember[id] ?? []
    }

    /// The members of `room`, by id.
    func members(of room: String) -> [String: Member] {
        self.rooms[room] ?? [:]
    }

    /// Calls `body` once for each member addressed by `rooms` (nil: every member) that is in none of `excluding`.
    ///
    /// A member in several target rooms is visited once. Walks only the addressed rooms.
    /// - Returns: The number of members visited.
    @discardableResult
    func forEachRecipient(rooms targetRooms: [String]?, excluding: Set<String>, _ body: (Member) -> Void) -> Int {
        // Resolve the excluded rooms once; checking a candidate is then one lookup per excluded room.
        var excludedRooms: [[String: Member]] = []
        if !excluding.isEmpty {
            excludedRooms.reserveCapacity(excluding.count)
            for room in excluding {
                if let inRoom = self.rooms[room] { excludedRooms.append(inRoom) }
            }
        }
        @inline(__always) func isExcluded(_ id: String) -> Bool {
            for inRoom in excludedRooms where inRoom[id] != nil { return true }
            return false
        }

        var visited = 0
        guard let targetRooms else {
            for (id, member) in self.members where !isExcluded(id) {
                body(member)
                visited += 1
            }
            return visited
        }
        for (index, room) in targetRooms.enumerated() {
            guard let inRoom = self.rooms[room] else { continue }
            for (id, member) in inRoom where !isExcluded(id) {
                // Visit a member of several target rooms once: skip it if an earlier target room holds it.
                var seen = false
                var earlier = 0
                while earlier < index {
                    if self.rooms[targetRooms[earlier]]?[id] != nil {
                        seen = true
                        break
                    }
                    earlier += 1
                }
                if seen { continue }
                body(member)
                visited += 1
            }
        }
        return visited
    }

    private mutating func removeFromRoom(_ id: String, room: String) {
        guard var inRoom = self.rooms.removeValue(forKey: room) else { return }
        inRoom.removeValue(forKey: id)
        if !inRoom.isEmpty {
            self.rooms[room] = inRoom
        }
    }
}
