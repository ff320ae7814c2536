/// An event of a catalog: a payload value that knows its Socket.IO name and namespace.
///
/// `socket-gateway-codegen` generates one conforming struct per event in `events.yaml`. Because the typed emit
/// methods below are written once on ``SocketEmitter``, the server gateway and the worker gateway offer the
/// same typed API by construction:
///
/// ```swift
/// await gateway.emit(SheetSyncCompleted(sheetID: id, rows: 120, …), toUser: userID)
/// ```
public protocol SocketEvent: Sendable {
    /// The wire name, e.g. `sheet:sync:completed`.
    static var eventName: String { get }
    /// The Socket.IO namespace the event is emitted in, e.g. `/`.
    static var namespace: String { get }
    /// The payload as the JSON sent as the event's single argument.
    var jsonValue: JSONValue { get }
}

extension SocketEmitter {
    /// Emits a typed event to `target` in the event's namespace.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name and namespace.
    ///   - target: Who receives it.
    ///   - excluding: Rooms (or session ids) whose members do not receive it.
    /// - Returns: What happened. Never throws.
    @discardableResult
    public func emit<Event: SocketEvent>(
        _ event: Event,
        to target: EmitTarget,
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(
            Event.eventName,
            arguments: [event.jsonValue],
            to: target,
            options: EmitOptions(namespace: Event.namespace, excluding: excluding)
        )
    }

    /// Emits a typed event to every client authenticated as `userID` (the room `user:<id>`).
    /// - Parameters:
    ///   - event: The payload; its type gives the event name and namespace.
    ///   - userID: The user's id.
    ///   - excluding: Rooms (or session ids) whose members do not receive it.
    /// - Returns: What happened. Never throws.
    @discardableResult
    public func emit<Event: SocketEvent>(
        _ event: Event,
        toUser userID: String,
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(event, to: .user(userID), excluding: excluding)
    }

    /// Emits a typed event to the members of `room`.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name and namespace.
    ///   - room: The room (a session id is a room too).
    ///   - excluding: Rooms (or session ids) whose members do not receive it.
    /// - Returns: What happened. Never throws.
    @discardableResult
    public func emit<Event: SocketEvent>(
        _ event: Event,
        toRoom room: String,
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(event, to: .room(room), excluding: excluding)
    }

    /// Emits a typed event to the members of any of `rooms`, each client at most once.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name and namespace.
    ///   - rooms: The rooms.
    ///   - excluding: Rooms (or session ids) whose members do not receive it.
    /// - Returns: What happened. Never throws.
    @discardableResult
    public func emit<Event: SocketEvent>(
        _ event: Event,
        toRooms rooms: [String],
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(event, to: .rooms(rooms), excluding: excluding)
    }

    /// Emits a typed event to every client of the event's namespace.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name and namespace.
    ///   - excluding: Rooms (or session ids) whose members do not receive it.
    /// - Returns: What happened. Never throws.
    @discardableResult
    public func broadcast<Event: SocketEvent>(_ event: Event, excluding: Set<String> = []) async -> EmitResult {
        await self.emit(event, to: .broadcast, excluding: excluding)
    }
}

/// Why a received event could not be decoded into a catalog type.
///
/// The description says which event, where in the payload (`$.warnings[2].code`) and what was wrong, e.g.
/// `sheet:sync:failed: wrong type at $.retryable: expected a boolean, found a string`.
public struct SocketEventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem it is.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case unknownEvent = "unknown event"
            case wrongArgumentCount = "wrong number of arguments"
            case missingField = "missing field"
            case wrongType = "wrong type"
            case invalidValue = "invalid value"
            case wrongNamespace = "wrong namespace"
        }

        private let base: Base

        /// The event name is not in the catalog.
        public static let unknownEvent = Code(base: .unknownEvent)
        /// A catalog event carries exactly one argument, its payload.
        public static let wrongArgumentCount = Code(base: .wrongArgumentCount)
        /// A required key is absent (or `null`).
        public static let missingField = Code(base: .missingField)
        /// A value has the wrong JSON type.
        public static let wrongType = Code(base: .wrongType)
        /// A value has the right JSON type but is not acceptable (an unknown enum value, a malformed date or UUID,
        /// an integer out of range).
        public static let invalidValue = Code(base: .invalidValue)
        /// The event is in the catalog but was emitted in another namespace.
        public static let wrongNamespace = Code(base: .wrongNamespace)

        /// The text shown when this value is printed or logged.
        public var description: String { self.base.rawValue }
    }

    /// One step into a JSON value.
    public enum PathComponent: Sendable, Hashable {
        /// An object key.
        case key(String)
        /// An array index.
        case index(Int)
    }

    /// What kind of problem it is.
    public var code: Code
    /// The event being decoded, when known.
    public var event: String?
    /// Where in the payload, from the payload's root.
    public var path: [PathComponent]
    /// What was wrong, e.g. `expected a string, found a number`.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: What kind of problem it is.
    ///   - event: The event being decoded, when known.
    ///   - path: Where in the payload.
    ///   - message: What was wrong.
    public init(code: Code, event: String? = nil, path: [PathComponent] = [], message: String) {
        self.code = code
        self.event = event
        self.path = path
        self.message = message
    }

    /// The path as `$.key[0].other`.
    public var pathDescription: String {
        var result = "$"
        for component in self.path {
            switch component {
            case .key(let key): result += ".\(key)"
            case .index(let index): result += "[\(index)]"
            }
        }
        return result
    }

    /// The text shown when this value is printed or logged.
    public var description: String {
        let prefix = self.event.map { "\($0): " } ?? ""
        switch self.code {
        case .unknownEvent, .wrongArgumentCount, .wrongNamespace: return "\(prefix)\(self.code): \(self.message)"
        default: return "\(prefix)\(self.code) at \(self.pathDescription): \(self.message)"
        }
    }
}
