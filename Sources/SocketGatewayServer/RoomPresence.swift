import CoreMetrics
import NIOConcurrencyHelpers
import SocketGatewayCore

/// Which shards (event loops) of this server hold members of each room, and of each namespace: the index a
/// message from another host consults, on the subscriber's thread, before it wakes any event loop.
///
/// A pure value type. It is kept up to date by transitions, not per delivery: a shard adds one count when a room
/// (or namespace) gets its first member on that shard and removes it when the shard's last member leaves. Other
/// holders may add counts of their own (a remote `enter_room` queued for a shard holds one until it is applied,
/// so an emit read after it still reaches that shard). A shard is present for a room while its count is above 0.
///
/// Each change says whether the whole server's presence changed (``Transition``): the first count of a room on
/// any shard, or the last one gone. That is what a server needs to subscribe to a room's channel while the room
/// has local members, and to unsubscribe when it has none.
struct RoomPresence: Sendable {
    /// How one change moved the server-wide presence of a room or namespace.
    enum Transition: Sendable, Hashable {
        /// Nothing server-wide: other counts were there before, or remain.
        case none
        /// The first count on any shard: the room (namespace) has local members now.
        case firstMember
        /// The last count on any shard is gone: no local member is left.
        case lastMemberLeft
    }

    /// Per namespace: the shards with any connection in it, and per room the shards with members.
    private struct Namespace: Sendable {
        var connections = ShardCounts()
        var rooms: [String: ShardCounts] = [:]
    }

    private var namespaces: [String: Namespace] = [:]

    /// The number of rooms (over all namespaces) with a count on some shard.
    private(set) var roomCount = 0

    /// Adds one count for `room` of `namespace` on `shard` (`room` nil: the namespace itself).
    @discardableResult
    mutating func add(namespace: String, room: String?, shard: Int) -> Transition {
        precondition(shard >= 0, "shard indexes start at 0")
        if let room {
            var wasEmpty = false
            self.namespaces[namespace, default: Namespace()].rooms[room, default: ShardCounts()].add(
                shard,
                wasEmpty: &wasEmpty
            )
            if wasEmpty { self.roomCount += 1 }
            return wasEmpty ? .firstMember : .none
        }
        var wasEmpty = false
        self.namespaces[namespace, default: Namespace()].connections.add(shard, wasEmpty: &wasEmpty)
        return wasEmpty ? .firstMember : .none
    }

    /// Removes one count added by ``add(namespace:room:shard:)``. Removing a count that is not there is a
    /// programming error caught in debug builds, and ignored (`.none`) in release builds.
    @discardableResult
    mutating func remove(namespace: String, room: String?, shard: Int) -> Transition {
        guard var entry = self.namespaces.removeValue(forKey: namespace) else {
            assertionFailure("no count for namespace \(namespace)")
            return .none
        }
        var transition = Transition.none
        if let room {
            if var counts = entry.rooms.removeValue(forKey: room) {
                let known = counts.remove(shard)
                assert(known, "no count for room \(room) on shard \(shard)")
                if counts.isEmpty {
                    if known {
                        transition = .lastMemberLeft
                        self.roomCount -= 1
                    }
                } else {
                    entry.rooms[room] = counts
                }
            } else {
                assertionFailure("no count for room \(room) of namespace \(namespace)")
            }
        } else {
            let known = entry.connections.remove(shard)
            assert(known, "no count for namespace \(namespace) on shard \(shard)")
            if known && entry.connections.isEmpty { transition = .lastMemberLeft }
        }
        if !entry.connections.isEmpty || !entry.rooms.isEmpty {
            self.namespaces[namespace] = entry
        }
        return transition
    }

    /// The shards a message for `rooms` of `namespace` concerns: those with members of any of the rooms, or
    /// with any connection of the namespace when `rooms` is nil (a broadcast). Empty: none here.
    func shards(namespace: String, rooms: [String]?) -> ShardSet {
        var result = ShardSet()
        guard let entry = self.namespaces[namespace] else { return result }
        guard let rooms else {
            entry.connections.insertShards(into: &result)
            return result
        }
        for room in rooms {
            entry.rooms[room]?.insertShards(into: &result)
        }
        return result
    }

    /// ``shards(namespace:rooms:)`` for the rooms a pub/sub message names (`.none`: the namespace), without
    /// building an array of them: what the Redis subscriber asks of every message from another host.
    func shards(namespace: String, addressed rooms: PubSubNames) -> ShardSet {
        switch rooms {
        case .none:
            return self.shards(namespace: namespace, rooms: nil)
        case .one(let room):
            var result = ShardSet()
            self.namespaces[namespace]?.rooms[room]?.insertShards(into: &result)
            return result
        case .list(let names):
            return self.shards(namespace: namespace, rooms: names)
        }
    }

    /// Whether `room` of `namespace` (nil: the namespace) has a count on any shard.
    func isPresent(namespace: String, room: String?) -> Bool {
        guard let entry = self.namespaces[namespace] else { return false }
        guard let room else { return !entry.connections.isEmpty }
        return entry.rooms[room] != nil
    }

    /// The count of `room` of `namespace` (nil: the namespace) on `shard`.
    func count(namespace: String, room: String?, shard: Int) -> Int {
        guard let entry = self.namespaces[namespace] else { return 0 }
        guard let room else { return entry.connections.count(of: shard) }
        return entry.rooms[room]?.count(of: shard) ?? 0
    }
}

/// Counts per shard for one room: inline while one shard holds them (most rooms: a user's tab, a sid).
private struct ShardCounts: Sendable {
    private enum Storage: Sendable {
        case empty
        case one(shard: Int, count: Int)
        case many([Int: Int])
    }

    private var storage = Storage.empty

    var isEmpty: Bool {
        if case .empty = self.storage { return true }
        return false
    }

    func count(of shard: Int) -> Int {
        switch self.storage {
        case .empty: return 0
        case .one(let only, let count): return only == shard ? count : 0
        case .many(let counts): return counts[shard] ?? 0
        }
    }

    mutating func add(_ shard: Int, wasEmpty: inout Bool) {
        switch self.storage {
        case .empty:
            wasEmpty = true
            self.storage = .one(shard: shard, count: 1)
        case .one(let only, let count):
            self.storage = only == shard ? .one(shard: shard, count: count + 1) : .many([only: count, shard: 1])
        case .many(var counts):
            self.storage = .empty  // let `counts` be uniquely referenced while it changes
            counts[shard, default: 0] += 1
            self.storage = .many(counts)
        }
    }

    /// Removes one count of `shard`; returns false when it had none.
    mutating func remove(_ shard: Int) -> Bool {
        switch self.storage {
        case .empty:
            return false
        case .one(let only, let count):
            guard only == shard else { return false }
            self.storage = count > 1 ? .one(shard: shard, count: count - 1) : .empty
            return true
        case .many(var counts):
            guard let count = counts[shard] else { return false }
            self.storage = .empty
            counts[shard] = count > 1 ? count - 1 : nil
            if counts.count == 1, let (only, remaining) = counts.first {
                self.storage = .one(shard: only, count: remaining)
            } else {
                self.storage = .many(counts)
            }
            return true
        }
    }

    func insertShards(into set: inout ShardSet) {
        switch self.storage {
        case .empty: break
        case .one(let shard, _): set.insert(shard)
        case .many(let counts): for shard in counts.keys { set.insert(shard) }
        }
    }
}

/// A set of shard indexes: one word for the first 64 (no allocation), more words beyond.
struct ShardSet: Sendable, Hashable {
    private var low: UInt64 = 0
    private var high: [UInt64] = []

    /// An empty set.
    init() {}

    /// The set of `shards`.
    init(_ shards: some Sequence<Int>) {
        for shard in shards { self.insert(shard) }
    }

    var isEmpty: Bool { self.low == 0 && self.high.allSatisfy { $0 == 0 } }

    var count: Int { self.low.nonzeroBitCount + self.high.reduce(0) { $0 + $1.nonzeroBitCount } }

    mutating func insert(_ shard: Int) {
        if shard < 64 {
            self.low |= 1 << UInt64(shard)
            return
        }
        let word = shard / 64 - 1
        while self.high.count <= word { self.high.append(0) }
        self.high[word] |= 1 << UInt64(shard % 64)
    }

    func contains(_ shard: Int) -> Bool {
        if shard < 64 { return self.low & (1 << UInt64(shard)) != 0 }
        let word = shard / 64 - 1
        return word < self.high.count && self.high[word] & (1 << UInt64(shard % 64)) != 0
    }

    /// Calls `body` with each shard, in increasing order.
    func forEach(_ body: (Int) -> Void) {
        Self.forEachBit(self.low, offset: 0, body)
        for (index, word) in self.high.enumerated() {
            Self.forEachBit(word, offset: (index + 1) * 64, body)
        }
    }

    /// The shards in increasing order.
    var sorted: [Int] {
        var result: [Int] = []
        self.forEach { result.append($0) }
        return result
    }

    private static func forEachBit(_ word: UInt64, offset: Int, _ body: (Int) -> Void) {
        var bits = word
        while bits != 0 {
            body(offset + bits.trailingZeroBitCount)
            bits &= bits - 1
        }
    }
}

/// ``RoomPresence`` shared by the shards (which change it on their own loops) and the Redis subscriber (which reads
/// it on its loop), under a lock: one uncontended lock per message read, one per room transition.
///
/// A room's server-wide transitions (its first count on any shard, its last one gone) are told to the observer
/// (``setObserver(_:)``), outside the lock, with the namespace and room: room-channel mode subscribes to a room's
/// channel while it has local members. Observers treat a call as "this room changed" and read
/// ``hasMembers(namespace:room:)`` again when they act, so calls that reach them out of order settle on the latest
/// state. A connection's own room (its session id) is counted but not told: such rooms come and go with every
/// connection, and nothing is published to their channels.
final class LocalRoomPresence: Sendable {
    private struct State {
        var table = RoomPresence()
        var observer: (@Sendable (_ namespace: String, _ room: String) -> Void)?
    }

    private let state = NIOLockedValueBox(State())
    /// Set to ``roomCount`` whenever a room gains its first member here or loses its last.
    private let roomsGauge: Gauge?

    /// Creates an empty table; `roomsGauge` (when given) follows ``roomCount``.
    init(roomsGauge: Gauge? = nil) {
        self.roomsGauge = roomsGauge
    }

    /// Sets what is told about rooms that gained their first local member or lost their last one.
    func setObserver(_ observer: (@Sendable (_ namespace: String, _ room: String) -> Void)?) {
        self.state.withLockedValue { $0.observer = observer }
    }

    /// ``RoomPresence/add(namespace:room:shard:)`` under the lock; a server-wide transition of a room that is not
    /// a session room is told to the observer.
    @discardableResult
    func add(namespace: String, room: String?, shard: Int, isSessionRoom: Bool = false) -> RoomPresence.Transition {
        self.change(namespace: namespace, room: room, report: !isSessionRoom) {
            $0.add(namespace: namespace, room: room, shard: shard)
        }
    }

    /// ``RoomPresence/remove(namespace:room:shard:)`` under the lock; a server-wide transition of a room that is
    /// not a session room is told to the observer.
    @discardableResult
    func remove(namespace: String, room: String?, shard: Int, isSessionRoom: Bool = false) -> RoomPresence.Transition {
        self.change(namespace: namespace, room: room, report: !isSessionRoom) {
            $0.remove(namespace: namespace, room: room, shard: shard)
        }
    }

    /// Holds `room` present on `shard` before the connection that will join it there has joined (room-channel
    /// mode: the CONNECT reply waits for the room's channel); ended by ``release(namespace:room:shard:)``.
    func reserve(namespace: String, room: String, shard: Int) {
        self.add(namespace: namespace, room: room, shard: shard)
    }

    /// Ends a ``reserve(namespace:room:shard:)``.
    func release(namespace: String, room: String, shard: Int) {
        self.remove(namespace: namespace, room: room, shard: shard)
    }

    /// Whether `room` of `namespace` has a member (or a hold) on any shard of this server. Any thread.
    func hasMembers(namespace: String, room: String) -> Bool {
        self.state.withLockedValue { $0.table.isPresent(namespace: namespace, room: room) }
    }

    /// How many rooms (session rooms included) have members here.
    var roomCount: Int { self.state.withLockedValue { $0.table.roomCount } }

    /// The shards with members of any of `rooms` (nil: of the namespace); see ``RoomPresence/shards(namespace:rooms:)``.
    func shards(namespace: String, rooms: [String]?) -> ShardSet {
        self.state.withLockedValue { $0.table.shards(namespace: namespace, rooms: rooms) }
    }

    /// The shards with members of the rooms a pub/sub message names; see
    /// ``RoomPresence/shards(namespace:addressed:)``.
    func shards(namespace: String, addressed rooms: PubSubNames) -> ShardSet {
        self.state.withLockedValue { $0.table.shards(namespace: namespace, addressed: rooms) }
    }

    /// A copy of the table, for tests.
    var snapshot: RoomPresence { self.state.withLockedValue { $0.table } }

    private func change(
        namespace: String,
        room: String?,
        report: Bool,
        _ body: (inout RoomPresence) -> RoomPresence.Transition
    ) -> RoomPresence.Transition {
        let (transition, observer) = self.state.withLockedValue { state in
            let transition = body(&state.table)
            // Under the lock, so the gauge never goes back to an older count.
            if transition != .none, room != nil, let roomsGauge = self.roomsGauge {
                roomsGauge.record(state.table.roomCount)
            }
            return (transition, transition != .none && room != nil && report ? state.observer : nil)
        }
        if let observer, let room { observer(namespace, room) }
        return transition
    }
}
