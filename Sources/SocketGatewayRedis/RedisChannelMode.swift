package import SocketGatewayCore

/// How a cluster's messages are laid out on Redis pub/sub channels (`SOCKET_REDIS_MODE`).
public enum RedisChannelMode: String, Sendable, Hashable, CaseIterable {
    /// python-socketio's layout (the default): every message on one channel (`socketio`), which every server
    /// subscribes to and decodes.
    case python
    /// Room channels: an emit addressed to exactly one room (not a session id) and asking for no callback goes to
    /// that room's own channel, `<channel>#<namespace>#<room>#`, which a server subscribes to only while the room
    /// has members connected to it. Everything else (broadcasts, several rooms, room operations, callbacks) stays
    /// on the common channel, which servers in this mode still subscribe to, so python-socketio publishers keep
    /// working. python-socketio *servers* on the same Redis do not see room-channel emits.
    case rooms

    /// Reads `python` or `rooms` (case-insensitive, surrounding spaces ignored).
    /// - Throws: `RedisError` with code `invalidURL` naming the accepted values.
    public init(parsing text: String) throws(RedisError) {
        var trimmed = Substring(text)
        while trimmed.first?.isWhitespace == true { trimmed.removeFirst() }
        while trimmed.last?.isWhitespace == true { trimmed.removeLast() }
        guard let mode = Self(rawValue: trimmed.lowercased()) else {
            throw RedisError(
                code: .invalidURL,
                message: "unknown Redis channel mode '\(LogSafe.text(text))': use 'python' (the default) or 'rooms'"
            )
        }
        self = mode
    }
}

/// The channel names of one cluster: the common channel and, in ``RedisChannelMode/rooms``, one per room.
package struct PubSubChannelLayout: Sendable, Hashable {
    /// The common channel (`socketio` by default).
    package var channel: String
    /// The layout.
    package var mode: RedisChannelMode

    /// Creates a layout.
    package init(channel: String, mode: RedisChannelMode) {
        self.channel = channel
        self.mode = mode
    }

    /// The channel of `room` in `namespace`: `<channel>#<namespace>#<room>#`.
    package func roomChannel(namespace: String, room: String) -> String {
        "\(self.channel)#\(namespace)#\(room)#"
    }

    /// Where `message` is published: a room channel for an emit to exactly one room that is not a session id and
    /// asks for no callback, in ``RedisChannelMode/rooms``; otherwise `nil`, the common channel.
    package func roomChannel(for message: PubSubMessage) -> String? {
        guard self.mode == .rooms, case .emit(let emit) = message, emit.callback == nil,
            case .one(let room) = emit.room, !Self.mayBeSessionID(room)
        else { return nil }
        return self.roomChannel(namespace: emit.namespace, room: room)
    }

    /// Whether `room` may be a connection's own room (its session id): such rooms have no channel of their own
    /// (a server would subscribe once per connection), so emits to them stay on the common channel. Session ids
    /// are 20 characters (python-socketio, socket.io) or 22–24 (ours: 16 random bytes in base64url) of the
    /// base64url alphabet; a room name that merely looks like one is still delivered, through the common channel.
    package static func mayBeSessionID(_ room: String) -> Bool {
        let utf8 = room.utf8
        guard (20...24).contains(utf8.count) else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x3D
        }
    }
}
