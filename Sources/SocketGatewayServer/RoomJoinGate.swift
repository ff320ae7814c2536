/// Joins that must wait until this server receives the room's remote emits (room-channel mode): set by the
/// cluster adapter, asked by the connect path (the `user:<id>` room) and server-side joins.
struct RoomJoinGate: Sendable {
    /// Calls `completion(true)` once the channel of `room` in `namespace` is active here (at once when it is),
    /// or `completion(false)` after the adapter's bound; on any thread.
    let whenActive:
        @Sendable (_ namespace: String, _ room: String, _ completion: @escaping @Sendable (Bool) -> Void) -> Void
}
