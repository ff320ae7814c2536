import NIOConcurrencyHelpers

/// Which rooms have at least one member on this server, across all event-loop shards, readable from any thread.
///
/// Rooms live per shard (`RoomShard`, one per event loop); this index counts, per namespace and room, the shards
/// where the room has members (plus ``reserve(namespace:room:)`` holds). Shards report only their own transitions
/// (the room got its first member on that shard, or lost its last one), so joining a room that already has a
/// member on the same loop, and every delivery, costs nothing here. One lock guards the counts; it is taken only on
/// those transitions and by ``hasMembers(namespace:room:)``.
///
/// When a room's count goes from 0 to 1 or from 1 to 0 the observer (``setObserver(_:)``) is called, outside the
/// lock, with the namespace and room. Observers must treat the call as "this room changed": they read
/// ``hasMembers(namespace:room:)`` again when they act, so calls that reach them out of order still settle on the
/// latest state. Each connection's own room (its session id) is counted but not reported: such rooms come and go
/// with every connection.
final class RoomPresence: Sendable {
    /// A room of a namespace.
    struct Key: Hashable, Sendable {
        var namespace: String
        var room: String
    }

    private struct State {
        /// namespace+room → shards with members, plus holds.
        var counts: [Key: Int] = [:]
        var observer: (@Sendable (_ namespace: String, _ room: String) -> Void)?
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    /// Sets what is told about rooms that gained their first local member or lost their last one.
    func setObserver(_ observer: (@Sendable (_ namespace: String, _ room: String) -> Void)?) {
        self.state.withLockedValue { $0.observer = observer }
    }

    /// Whether `room` of `namespace` has a member on any shard of this server (or a hold). Any thread.
    func hasMembers(namespace: String, room: String) -> Bool {
        let key = Key(namespace: namespace, room: room)
        return self.state.withLockedValue { $0.counts[key] != nil }
    }

    /// How many rooms (session rooms included) have members here.
    var roomCount: Int { self.state.withLockedValue { $0.counts.count } }

    /// A shard's `room` got its first member; `isSessionRoom` when the room is that member's own session id.
    func shardGained(namespace: String, room: String, isSessionRoom: Bool = false) {
        self.change(Key(namespace: namespace, room: room), by: 1, report: !isSessionRoom)
    }

    /// A shard's `room` lost its last member.
    func shardLost(namespace: String, room: String, isSessionRoom: Bool = false) {
        self.change(Key(namespace: namespace, room: room), by: -1, report: !isSessionRoom)
    }

    /// Counts `room` as present before any connection joined it (a connection that will join it once the cluster
    /// delivers the room's messages here); undone by ``release(namespace:room:)``.
    func reserve(namespace: String, room: String) {
        self.change(Key(namespace: namespace, room: room), by: 1, report: true)
    }

    /// Ends a ``reserve(namespace:room:)``.
    func release(namespace: String, room: String) {
        self.change(Key(namespace: namespace, room: room), by: -1, report: true)
    }

    private func change(_ key: Key, by delta: Int, report: Bool) {
        let observer = self.state.withLockedValue { state -> (@Sendable (String, String) -> Void)? in
            let before = state.counts[key] ?? 0
            let after = before + delta
            assert(after >= 0, "room presence count below zero for \(key)")
            if after <= 0 {
                state.counts.removeValue(forKey: key)
            } else {
                state.counts[key] = after
            }
            let transition = (before == 0) != (after <= 0)
            return transition && report ? state.observer : nil
        }
        observer?(key.namespace, key.room)
    }
}
