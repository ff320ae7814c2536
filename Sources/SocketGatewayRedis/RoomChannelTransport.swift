/// What carries a `RedisSubscriber`'s room-channel subscriptions (``RedisChannelMode/rooms``) when they do not go
/// on its own connection: on a Redis Cluster, `RedisClusterPubSub` (`SSUBSCRIBE` on the primary that owns each
/// channel's slot, so a room's messages reach only the servers with members, not every node through the cluster
/// bus).
///
/// The subscriber keeps deciding (its `RoomSubscriptionStateMachine`: hysteresis, join gate); the transport only
/// carries the decisions and reports when each is done. It keeps wanted channels subscribed by itself when the
/// cluster changes (slot moves, failovers), so the subscriber's own reconnects do not touch them.
package protocol RoomChannelTransport: AnyObject, Sendable {
    /// Subscribes `channel`; `confirmed` is called once, on any thread: success once messages published to the
    /// channel reach this host, or a failure after `timeout` (the channel stays wanted) or at shutdown.
    func subscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    )

    /// Unsubscribes `channel`; `confirmed` is called once, on any thread: success once it is dropped, or a
    /// failure after `timeout` (it is no longer wanted either way; a later subscribe wins) or at shutdown.
    func unsubscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    )

    /// Stops or resumes reading what arrives on the room channels, together with the subscriber's own connection
    /// (``RedisSubscriber/updateReading(shouldPause:)``, backpressure from a consumer that cannot keep up).
    /// `shouldPause` is evaluated on the transport's loop when the call arrives. Safe to call from any thread.
    func updateRoomChannelReading(shouldPause: @escaping @Sendable () -> Bool)

    /// Calls `handler` (on any thread, one report at a time, in order with the confirmations) when subscribed
    /// channels stop delivering without being asked to (their primary lost or stepping down, their slot moved)
    /// while the transport subscribes them again, and when they deliver again: the subscriber's joins wait
    /// meanwhile (see `RoomSubscriptionStateMachine.transportInterrupted(_:)`).
    func observeRoomChannelActivity(_ handler: @escaping @Sendable (RoomChannelActivity) -> Void)
}

extension RoomChannelTransport {
    /// Nothing to pause: the default for a transport that delivers nothing by itself.
    package func updateRoomChannelReading(shouldPause: @escaping @Sendable () -> Bool) {}

    /// Nothing to report: the default for a transport whose channels never stop by themselves.
    package func observeRoomChannelActivity(_ handler: @escaping @Sendable (RoomChannelActivity) -> Void) {}
}

/// What a ``RoomChannelTransport`` reports about channels it keeps subscribed by itself.
package struct RoomChannelActivity: Sendable, Hashable {
    /// Wanted channels that stopped delivering (each reported once until it is back), sorted.
    package var stopped: [String] = []
    /// Channels reported stopped that deliver again (confirmed on their owner), sorted.
    package var resumed: [String] = []

    /// Creates a report.
    package init(stopped: [String] = [], resumed: [String] = []) {
        self.stopped = stopped
        self.resumed = resumed
    }

    /// Nothing to report.
    package var isEmpty: Bool { self.stopped.isEmpty && self.resumed.isEmpty }
}
