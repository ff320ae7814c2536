package import NIOCore

/// Which room channels a subscriber holds on its connection, without I/O: the decisions of the room-channel mode
/// (`RedisChannelMode.rooms`).
///
/// A server wants a room's channel while the room has local members. The shell (`RedisSubscriber`) reports each
/// change (``roomGained(_:)``, ``roomLost(_:now:)``), what Redis confirmed (``subscribeConfirmed(_:now:)``,
/// ``unsubscribeConfirmed(_:)``), the connection's fate (``connectionLost()``, ``connectionRestored()``) and the
/// time (``tick(now:)``); each input returns an ``Output``: the channels to `SUBSCRIBE` and `UNSUBSCRIBE` (one
/// batch each) and the channels that became active, whose waiting joins may complete.
///
/// - A room that loses its last member is unsubscribed only after `unsubscribeDelay` without members, so a user who
///   reloads a page or reconnects does not cost a SUBSCRIBE/UNSUBSCRIBE pair each time.
/// - A channel is *active* once Redis confirmed its SUBSCRIBE: every message published to it after that reaches
///   this connection. A join that must not miss anything waits for it (the shell bounds the wait).
/// - Redis answers the commands of one connection in order, so an UNSUBSCRIBE followed by a SUBSCRIBE of the same
///   channel (a member came back while it was being dropped) ends subscribed: the SUBSCRIBE goes out at once and
///   the channel is active when its own confirmation arrives.
/// - A lost connection loses every subscription: wanted channels are subscribed again, in one batch, when the
///   connection is back (part of the subscriber's reconnect); the others are forgotten.
/// - With a transport that keeps channels subscribed by itself (`RoomChannelTransport`: a Redis Cluster, where a
///   channel's primary may fail over or its slot move), a confirmed channel may stop delivering without being
///   asked to: the transport reports it (``transportInterrupted(_:)``), the channel is not active until the
///   transport reports it back on its new owner (``transportRestored(_:)``, which completes the joins that waited
///   meanwhile), and its hysteresis is unchanged. Reports about a channel that is not confirmed here are ignored:
///   its own confirmation decides.
///
/// ```
///                 gained            confirmed (wanted)
/// (none) ──────────▶ subscribing ──────────────────▶ subscribed ◀──── gained (cancels the delay)
///   ▲  (no connection: waiting,    │ confirmed (unwanted)   │ lost
///   │   sent on restore)           ▼                        ▼
///   └── unsub confirmed ── unsubscribing ◀── delay over ── lingering (unsubscribe at now + delay)
/// ```
package struct RoomSubscriptionStateMachine {
    /// What the shell must do, in this order: write the SUBSCRIBE batch, the UNSUBSCRIBE batch, then complete the
    /// joins waiting for `ready`.
    package struct Output: Sendable, Hashable {
        /// Channels to subscribe (one `SUBSCRIBE` command, in this order).
        package var subscribe: [String] = []
        /// Channels to unsubscribe (one `UNSUBSCRIBE` command, in this order).
        package var unsubscribe: [String] = []
        /// Channels that became active: complete the joins that wait for them.
        package var ready: [String] = []

        /// Creates an output.
        package init(subscribe: [String] = [], unsubscribe: [String] = [], ready: [String] = []) {
            self.subscribe = subscribe
            self.unsubscribe = unsubscribe
            self.ready = ready
        }

        /// Nothing to do.
        package static let none = Output()
    }

    private enum Phase: Hashable {
        /// Wanted, but there is no connection to send the SUBSCRIBE on: it goes out on ``connectionRestored()``.
        case waitingForConnection
        /// SUBSCRIBE sent, not confirmed yet.
        case subscribing
        /// Confirmed. `unsubscribeAt` is set while the room has no local member (the hysteresis delay).
        case subscribed(unsubscribeAt: NIODeadline?)
        /// UNSUBSCRIBE sent, not confirmed yet; `resubscribeSent` when a SUBSCRIBE followed it.
        case unsubscribing(resubscribeSent: Bool)
    }

    private struct Entry: Hashable {
        /// Whether the room has local members (the shell's latest report).
        var wanted: Bool
        var phase: Phase
        /// `.subscribed`, but the transport reported that it does not deliver now (its primary is failing over,
        /// its slot moving): not active until the transport reports it back.
        var interrupted = false
    }

    /// How long a room without local members keeps its channel.
    package let unsubscribeDelay: TimeAmount
    private var entries: [String: Entry] = [:]
    private var connected = false

    /// Creates a machine with no rooms and no connection yet.
    package init(unsubscribeDelay: TimeAmount) {
        self.unsubscribeDelay = unsubscribeDelay
    }

    /// Whether messages published to `channel` now reach the connection (Redis confirmed its SUBSCRIBE).
    package func isActive(_ channel: String) -> Bool {
        guard let entry = self.entries[channel], case .subscribed = entry.phase else { return false }
        return !entry.interrupted
    }

    /// Channels subscribed on Redis now (confirmed, the lingering ones included).
    package var subscribedCount: Int {
        self.entries.values.reduce(0) { count, entry in
            if case .subscribed = entry.phase { return count + 1 }
            return count
        }
    }

    /// Channels wanted now (rooms with local members).
    package var wantedCount: Int { self.entries.values.reduce(0) { $0 + ($1.wanted ? 1 : 0) } }

    /// The earliest time a lingering channel is due to be unsubscribed (when ``tick(now:)`` has work).
    package var nextUnsubscribe: NIODeadline? {
        self.entries.values.compactMap { entry -> NIODeadline? in
            if case .subscribed(let at?) = entry.phase { return at }
            return nil
        }.min()
    }

    // MARK: - Inputs

    /// The room of `channel` has local members. Idempotent: when the channel is already active, `ready` holds it
    /// (so a join asking again completes at once).
    package mutating func roomGained(_ channel: String) -> Output {
        guard var entry = self.entries[channel] else {
            guard self.connected else {
                self.entries[channel] = Entry(wanted: true, phase: .waitingForConnection)
                return .none
            }
            self.entries[channel] = Entry(wanted: true, phase: .subscribing)
            return Output(subscribe: [channel])
        }
        entry.wanted = true
        var output = Output.none
        switch entry.phase {
        case .waitingForConnection, .subscribing, .unsubscribing(resubscribeSent: true):
            break
        case .subscribed:
            entry.phase = .subscribed(unsubscribeAt: nil)
            // An interrupted channel is ready when the transport reports it back.
            if !entry.interrupted { output.ready = [channel] }
        case .unsubscribing(resubscribeSent: false):
            // Redis answers in order: this SUBSCRIBE is confirmed after the UNSUBSCRIBE, and wins.
            entry.phase = .unsubscribing(resubscribeSent: true)
            output.subscribe = [channel]
        }
        self.entries[channel] = entry
        return output
    }

    /// The room of `channel` has no local member any more: its channel is dropped `unsubscribeDelay` after `now`
    /// unless the room gains a member before.
    package mutating func roomLost(_ channel: String, now: NIODeadline) -> Output {
        guard var entry = self.entries[channel], entry.wanted else { return .none }
        entry.wanted = false
        switch entry.phase {
        case .waitingForConnection:
            self.entries.removeValue(forKey: channel)
            return .none
        case .subscribed:
            entry.phase = .subscribed(unsubscribeAt: now + self.unsubscribeDelay)
        case .subscribing, .unsubscribing:
            // The delay starts when the SUBSCRIBE is confirmed.
            break
        }
        self.entries[channel] = entry
        return .none
    }

    /// Redis confirmed `SUBSCRIBE channel` (a `subscribe` push).
    package mutating func subscribeConfirmed(_ channel: String, now: NIODeadline) -> Output {
        guard var entry = self.entries[channel], case .subscribing = entry.phase else { return .none }
        if entry.wanted {
            entry.phase = .subscribed(unsubscribeAt: nil)
            self.entries[channel] = entry
            return Output(ready: [channel])
        }
        entry.phase = .subscribed(unsubscribeAt: now + self.unsubscribeDelay)
        self.entries[channel] = entry
        return .none
    }

    /// Redis confirmed `UNSUBSCRIBE channel` (an `unsubscribe` push).
    package mutating func unsubscribeConfirmed(_ channel: String) -> Output {
        guard var entry = self.entries[channel], case .unsubscribing(let resubscribeSent) = entry.phase else {
            return .none
        }
        if resubscribeSent {
            entry.phase = .subscribing
            self.entries[channel] = entry
        } else {
            self.entries.removeValue(forKey: channel)
        }
        return .none
    }

    /// The connection is gone, and with it every subscription: wanted channels wait for the next connection.
    package mutating func connectionLost() -> Output {
        self.connected = false
        self.entries = self.entries.filter(\.value.wanted).mapValues { _ in
            Entry(wanted: true, phase: .waitingForConnection)
        }
        return .none
    }

    /// A connection is subscribed to the common channels: every wanted room channel is subscribed again, in one
    /// batch (sorted).
    package mutating func connectionRestored() -> Output {
        self.connected = true
        var subscribe: [String] = []
        for (channel, entry) in self.entries where entry.phase == .waitingForConnection {
            self.entries[channel]!.phase = .subscribing
            subscribe.append(channel)
        }
        return Output(subscribe: subscribe.sorted())
    }

    /// Unsubscribes, in one batch (sorted), the channels whose rooms had no local member for `unsubscribeDelay`.
    package mutating func tick(now: NIODeadline) -> Output {
        var unsubscribe: [String] = []
        for (channel, entry) in self.entries {
            guard !entry.wanted, case .subscribed(let at?) = entry.phase, at <= now else { continue }
            self.entries[channel]!.phase = .unsubscribing(resubscribeSent: false)
            self.entries[channel]!.interrupted = false
            unsubscribe.append(channel)
        }
        return Output(unsubscribe: unsubscribe.sorted())
    }

    /// The transport reports that `channel` stopped delivering without being asked to (its primary was lost or
    /// stepped down, its slot moved) and that it subscribes it again on its owner: a confirmed channel is not
    /// active until ``transportRestored(_:)``, so a join waits for that. Ignored for a channel not confirmed.
    package mutating func transportInterrupted(_ channel: String) -> Output {
        guard var entry = self.entries[channel], case .subscribed = entry.phase else { return .none }
        entry.interrupted = true
        self.entries[channel] = entry
        return .none
    }

    /// The transport reports that `channel` delivers again (confirmed on its owner): an interrupted channel is
    /// active again and the joins waiting for it complete (`ready`). Ignored for a channel not interrupted.
    package mutating func transportRestored(_ channel: String) -> Output {
        guard var entry = self.entries[channel], case .subscribed = entry.phase, entry.interrupted else {
            return .none
        }
        entry.interrupted = false
        self.entries[channel] = entry
        return Output(ready: [channel])
    }
}
