/// The rooms of one namespace on one shard: room → members, and member → rooms.
///
/// A pure value type; the shard that owns it (one per event loop) confines it to that loop. Emits walk only the
/// members of the addressed rooms, never every connection, and never allocate per recipient.
///
/// Most rooms hold one member (every connection's own id, a user with one tab), and most connections are in a few
/// rooms, so both sides start compact: a one-member room is stored inline (no dictionary), and a member's rooms are
/// a short array until they are many. With 10,000 idle connections that is about 300 bytes less per connection.
struct RoomIndex<Member> {
    /// Every member of the namespace on this shard, by session id.
    private(set) var members: [String: Member] = [:]
    /// room → its members.
    private var rooms: [String: RoomMembers<Member>] = [:]
    /// session id → the rooms it is in.
    private var roomsOfMember: [String: MemberRooms] = [:]

    /// The number of members.
    var count: Int { self.members.count }

    /// The number of non-empty rooms.
    var roomCount: Int { self.rooms.count }

    /// Adds a member (in no room yet). Replaces a member with the same id.
    mutating func add(_ id: String, _ member: Member) {
        self.members[id] = member
        if self.roomsOfMember[id] == nil {
            self.roomsOfMember[id] = MemberRooms()
        }
    }

    /// Puts member `id` into `room`. Returns `false` when there is no such member.
    @discardableResult
    mutating func join(_ id: String, room: String) -> Bool {
        guard let member = self.members[id] else { return false }
        if var inRoom = self.rooms.removeValue(forKey: room) {
            inRoom.insert(id, member)
            self.rooms[room] = inRoom
        } else {
            self.rooms[room] = .one(id: id, member: member)
        }
        self.roomsOfMember[id, default: MemberRooms()].insert(room)
        return true
    }

    /// Takes member `id` out of `room`. Returns `false` when it was not in it.
    @discardableResult
    mutating func leave(_ id: String, room: String) -> Bool {
        guard self.roomsOfMember[id]?.remove(room) == true else { return false }
        self.removeFromRoom(id, room: room)
        return true
    }

    /// Removes every member from `room`; returns the ids that were in it.
    @discardableResult
    mutating func close(room: String) -> [String] {
        guard let inRoom = self.rooms.removeValue(forKey: room) else { return [] }
        var ids: [String] = []
        inRoom.forEach { id, _ in
            self.roomsOfMember[id]?.remove(room)
            ids.append(id)
        }
        return ids
    }

    /// Removes member `id` and its membership of every room.
    @discardableResult
    mutating func remove(_ id: String) -> Member? {
        self.remove(id, onRoomEmptied: { _ in })
    }

    /// Removes member `id` and its membership of every room; calls `onRoomEmptied` for each room it was the
    /// last member of.
    @discardableResult
    mutating func remove(_ id: String, onRoomEmptied: (String) -> Void) -> Member? {
        guard let member = self.members.removeValue(forKey: id) else { return nil }
        if let joined = self.roomsOfMember.removeValue(forKey: id) {
            joined.forEach { room in
                if self.removeFromRoom(id, room: room) { onRoomEmptied(room) }
            }
        }
        return member
    }

    /// Whether `room` has any member.
    func hasMembers(in room: String) -> Bool {
        self.rooms[room] != nil
    }

    /// The rooms member `id` is in (empty when unknown).
    func rooms(of id: String) -> Set<String> {
        var rooms: Set<String> = []
        self.roomsOfMember[id]?.forEach { rooms.insert($0) }
        return rooms
    }

    /// The members of `room`, by id.
    func members(of room: String) -> [String: Member] {
        var members: [String: Member] = [:]
        self.rooms[room]?.forEach { id, member in members[id] = member }
        return members
    }

    /// Calls `body` once for each member addressed by `rooms` (nil: every member) that is in none of `excluding`.
    ///
    /// A member in several target rooms is visited once. Walks only the addressed rooms.
    /// - Returns: The number of members visited.
    @discardableResult
    func forEachRecipient(rooms targetRooms: [String]?, excluding: Set<String>, _ body: (Member) -> Void) -> Int {
        // Resolve the excluded rooms once; checking a candidate is then one lookup per excluded room.
        var excludedRooms: [RoomMembers<Member>] = []
        if !excluding.isEmpty {
            excludedRooms.reserveCapacity(excluding.count)
            for room in excluding {
                if let inRoom = self.rooms[room] { excludedRooms.append(inRoom) }
            }
        }
        @inline(__always) func isExcluded(_ id: String) -> Bool {
            for inRoom in excludedRooms where inRoom.contains(id) { return true }
            return false
        }

        var visited = 0
        // Without exclusions, and with at most one target room, members need no id check: iterate the members
        // alone (touching each id would load one more cold cache line per recipient).
        if excludedRooms.isEmpty {
            guard let targetRooms else {
                for member in self.members.values { body(member) }
                return self.members.count
            }
            if targetRooms.count == 1 {
                return self.rooms[targetRooms[0]]?.forEachMember(body) ?? 0
            }
        }
        guard let targetRooms else {
            for (id, member) in self.members where !isExcluded(id) {
                body(member)
                visited += 1
            }
            return visited
        }
        for (index, room) in targetRooms.enumerated() {
            guard let inRoom = self.rooms[room] else { continue }
            inRoom.forEach { id, member in
                guard !isExcluded(id) else { return }
                // Visit a member of several target rooms once: skip it if an earlier target room holds it.
                var earlier = 0
                while earlier < index {
                    if self.rooms[targetRooms[earlier]]?.contains(id) == true { return }
                    earlier += 1
                }
                body(member)
                visited += 1
            }
        }
        return visited
    }

    /// Returns whether the room became empty.
    @discardableResult
    private mutating func removeFromRoom(_ id: String, room: String) -> Bool {
        guard var inRoom = self.rooms.removeValue(forKey: room) else { return false }
        if inRoom.remove(id) {
            self.rooms[room] = inRoom
            return false
        }
        return true
    }
}

/// The members of one room: inline while there is one.
enum RoomMembers<Member> {
    case one(id: String, member: Member)
    case many([String: Member])

    func contains(_ id: String) -> Bool {
        switch self {
        case .one(let only, _): only == id
        case .many(let members): members[id] != nil
        }
    }

    func forEach(_ body: (String, Member) -> Void) {
        switch self {
        case .one(let id, let member):
            body(id, member)
        case .many(let members):
            for (id, member) in members { body(id, member) }
        }
    }

    /// Calls `body` for each member; returns how many there are.
    func forEachMember(_ body: (Member) -> Void) -> Int {
        switch self {
        case .one(_, let member):
            body(member)
            return 1
        case .many(let members):
            for member in members.values { body(member) }
            return members.count
        }
    }

    mutating func insert(_ id: String, _ member: Member) {
        switch self {
        case .one(let only, let onlyMember):
            self = only == id ? .one(id: id, member: member) : .many([only: onlyMember, id: member])
        case .many(var members):
            self = .many([:])  // let `members` be uniquely referenced while it changes
            members[id] = member
            self = .many(members)
        }
    }

    /// Removes `id`; returns whether the room still has members.
    mutating func remove(_ id: String) -> Bool {
        switch self {
        case .one(let only, _):
            return only != id
        case .many(var members):
            self = .many([:])
            members.removeValue(forKey: id)
            if members.count == 1, let (only, member) = members.first {
                self = .one(id: only, member: member)
            } else {
                self = .many(members)
            }
            return !members.isEmpty
        }
    }
}

/// The rooms one member is in: a short array while they are few, a set beyond that (so a connection in thousands
/// of rooms still joins and leaves in constant time).
struct MemberRooms {
    private static var arrayLimit: Int { 8 }
    private var few: [String] = []
    private var many: Set<String>?

    /// Adds `room`; returns false when it was already there.
    @discardableResult
    mutating func insert(_ room: String) -> Bool {
        if self.many != nil {
            return self.many!.insert(room).inserted
        }
        if self.few.contains(room) { return false }
        if self.few.count < Self.arrayLimit {
            self.few.append(room)
        } else {
            var set = Set(self.few)
            set.insert(room)
            self.many = set
            self.few = []
        }
        return true
    }

    /// Removes `room`; returns whether it was there.
    @discardableResult
    mutating func remove(_ room: String) -> Bool {
        if self.many != nil {
            return self.many!.remove(room) != nil
        }
        guard let position = self.few.firstIndex(of: room) else { return false }
        self.few.remove(at: position)
        return true
    }

    func forEach(_ body: (String) -> Void) {
        if let many = self.many {
            for room in many { body(room) }
        } else {
            for room in self.few { body(room) }
        }
    }
}
