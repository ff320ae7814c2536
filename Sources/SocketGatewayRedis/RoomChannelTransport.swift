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
}

extension RoomChannelTransport {
    /// Nothing to pause: the default for a transport that delivers nothing by itself.
    package func updateRoomChannelReading(shouldPause: @escaping @Sendable () -> Bool) {}
}
