package import NIOCore

/// A room, a list of rooms, or nothing: how python-socketio writes `room` and `skip_sid`.
///
/// The shape is kept as received, so a message decoded and encoded again comes out byte for byte the same.
package enum PubSubNames: Sendable, Hashable {
    /// JSON `null`.
    case none
    /// A single string.
    case one(String)
    /// A JSON list of strings.
    case list([String])

    /// The names as an array (`[]` for `.none`).
    package var names: [String] {
        switch self {
        case .none: return []
        case .one(let name): return [name]
        case .list(let names): return names
        }
    }

    /// `.none` for no names, `.one` for one, `.list` otherwise.
    package init(_ names: [String]) {
        switch names.count {
        case 0: self = .none
        case 1: self = .one(names[0])
        default: self = .list(names)
        }
    }

    var json: JSONValue {
        switch self {
        case .none: return .null
        case .one(let name): return .string(name)
        case .list(let names): return .array(names.map { .string($0) })
        }
    }
}

/// The `callback` of an emit: the server that emitted wants the client's ack sent back to it.
package struct PubSubCallback: Sendable, Hashable {
    /// The room (the client's sid) the emit went to.
    package var room: PubSubNames
    /// The namespace of the emit.
    package var namespace: String
    /// The ack id allocated by the emitting server.
    package var id: Int64

    /// Creates a callback reference.
    package init(room: PubSubNames, namespace: String, id: Int64) {
        self.room = room
        self.namespace = namespace
        self.id = id
    }
}

/// An `emit` message: deliver an event to the clients of a namespace, a room or several rooms.
package struct PubSubEmit: Sendable, Hashable {
    /// The event name.
    package var event: String
    /// The event's arguments; binary attachments are `.binary` values in place.
    package var arguments: [JSONValue]
    /// The namespace, `/` by default.
    package var namespace: String
    /// `none` = every client of the namespace; otherwise the rooms (a client's sid is also a room).
    package var room: PubSubNames
    /// Session ids that must not receive the event.
    package var skipSid: PubSubNames
    /// Set when the emitting server wants the ack back.
    package var callback: PubSubCallback?
    /// The emitting manager's id.
    package var hostID: String

    /// Creates an emit.
    package init(
        event: String,
        arguments: [JSONValue],
        namespace: String = "/",
        room: PubSubNames = .none,
        skipSid: PubSubNames = .none,
        callback: PubSubCallback? = nil,
        hostID: String
    ) {
        self.event = event
        self.arguments = arguments
        self.namespace = namespace
        self.room = room
        self.skipSid = skipSid
        self.callback = callback
        self.hostID = hostID
    }

    /// Whether any argument holds binary data (published as `binary: true` with base64 attachments).
    package var isBinary: Bool { self.arguments.contains(where: { $0.containsBinary }) }
}

/// One message on python-socketio's Redis channel (`AsyncRedisManager` / `AsyncPubSubManager`).
///
/// Decoded from and encoded to the exact bytes python-socketio publishes: `json.dumps` of a dict whose keys are
/// in the order python builds them, with Python's default separators and `ensure_ascii`.
package enum PubSubMessage: Sendable, Hashable {
    /// `{"method":"emit",…}`: deliver an event.
    case emit(PubSubEmit)
    /// `{"method":"disconnect",…}`: disconnect a client wherever it is connected.
    case disconnect(sid: String, namespace: String, hostID: String)
    /// `{"method":"enter_room",…}`: put a client into a room.
    case enterRoom(sid: String, room: String, namespace: String, hostID: String)
    /// `{"method":"leave_room",…}`: take a client out of a room.
    case leaveRoom(sid: String, room: String, namespace: String, hostID: String)
    /// `{"method":"close_room",…}`: empty a room.
    case closeRoom(room: String, namespace: String, hostID: String)
    /// `{"method":"callback",…}`: a client's ack, sent back to the server `hostID` that emitted.
    case callback(hostID: String, sid: String, namespace: String, id: Int64, arguments: [JSONValue])

    /// The sender's host id; for `callback`, the host the ack is addressed to.
    package var hostID: String {
        switch self {
        case .emit(let emit): return emit.hostID
        case .disconnect(_, _, let hostID), .enterRoom(_, _, _, let hostID), .leaveRoom(_, _, _, let hostID),
            .closeRoom(_, _, let hostID), .callback(let hostID, _, _, _, _):
            return hostID
        }
    }

    /// The `method` field as python-socketio writes it.
    package var method: String {
        switch self {
        case .emit: return "emit"
        case .disconnect: return "disconnect"
        case .enterRoom: return "enter_room"
        case .leaveRoom: return "leave_room"
        case .closeRoom: return "close_room"
        case .callback: return "callback"
        }
    }

    /// Whether a server with id `ownHostID` should act on this message: callbacks addressed to it, and every
    /// other message sent by someone else.
    package func isRelevant(toHost ownHostID: String) -> Bool {
        if case .callback(let target, _, _, _, _) = self { return target == ownHostID }
        return self.hostID != ownHostID
    }

    /// Builds the emit a server or worker publishes for `target` and `options`.
    package static func emit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        hostID: String
    ) -> PubSubMessage {
        let room: PubSubNames
        switch target {
        case .broadcast: room = .none
        case .room(let name): room = .one(name)
        case .rooms(let names): room = .list(names)
        case .user(let id): room = .one(EmitTarget.userRoom(id))
        }
        return .emit(
            PubSubEmit(
                event: event,
                arguments: arguments,
                namespace: options.namespace,
                room: room,
                skipSid: options.excluding.isEmpty ? .none : PubSubNames(options.excluding.sorted()),
                hostID: hostID
            )
        )
    }
}

// MARK: - Encoding

extension PubSubMessage {
    /// Appends the message exactly as python-socketio's `json.dumps(message)` writes it.
    package func encode(into buffer: inout ByteBuffer) {
        // The hot case (every worker emit) is written field by field, without building the message's JSONValue
        // first; it gives the same bytes as the general path below.
        if case .emit(let emit) = self {
            // Written through a pointer into the buffer's free space (no ByteBuffer call per piece). If it does not
            // fit, again into a window of the message's worst-case size; binary emits take the general path.
            var window = max(buffer.writableBytes, 512)
            var attempt = 0
            while true {
                var sawBinary = false
                var fitted = false
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: window) { free in
                    var output = RawJSONOutput(free)
                    sawBinary = Self.writePlainEmit(emit, to: &output)
                    fitted = !output.overflowed
                    return fitted && !sawBinary ? output.count : 0
                }
                if sawBinary { break }
                if fitted { return }
                attempt += 1
                guard let bound = Self.plainEmitBound(emit) else { break }  // binary further on
                guard attempt == 1, bound <= Self.rawWindowLimit else {
                    // Very large: piece by piece rather than reserving 6 bytes per string byte.
                    Self.writePlainEmit(emit, to: &buffer)
                    return
                }
                window = bound
            }
        }
        self.jsonValue.writePythonJSON(to: &buffer)
    }

    /// Above this bound (an emit with very large strings), the emit is written piece by piece instead of
    /// reserving its worst case (6 bytes per string byte) at once.
    private static let rawWindowLimit = 256 * 1024

    /// An upper bound of a non-binary emit's encoded size; `nil` when an argument holds binary data.
    private static func plainEmitBound(_ emit: PubSubEmit) -> Int? {
        // The fixed text: {"method": "emit", "event": …, "data": [], "binary": false, "namespace": …, "room": …,
        // "skip_sid": …, "callback": …, "host_id": …} is under 160 bytes.
        var total = 160 &+ 2 &* emit.arguments.count
        for argument in emit.arguments {
            guard let size = JSONWriter.pythonBound(of: argument) else { return nil }
            total &+= size
        }
        total &+= JSONWriter.pythonStringBound(utf8Count: emit.event.utf8.count)
        total &+= JSONWriter.pythonStringBound(utf8Count: emit.namespace.utf8.count)
        total &+= JSONWriter.pythonStringBound(utf8Count: emit.hostID.utf8.count)
        total &+= Self.bound(emit.room) &+ Self.bound(emit.skipSid)
        if let callback = emit.callback {
            total &+= Self.bound(callback.room) &+ 30
            total &+= JSONWriter.pythonStringBound(utf8Count: callback.namespace.utf8.count)
        }
        return total
    }

    private static func bound(_ names: PubSubNames) -> Int {
        switch names {
        case .none: return 4
        case .one(let name): return JSONWriter.pythonStringBound(utf8Count: name.utf8.count)
        case .list(let names):
            var total = 2 &+ 2 &* names.count
            for name in names { total &+= JSONWriter.pythonStringBound(utf8Count: name.utf8.count) }
            return total
        }
    }

    /// `json.dumps` of an emit, keys in python-socketio's order, into a reserved window or a buffer (piece by
    /// piece). For a non-binary emit only: binary arguments are written as `null`.
    /// - Returns: Whether an argument held binary data (the output is then not what python-socketio publishes).
    @discardableResult
    private static func writePlainEmit<Output: JSONOutput>(_ emit: PubSubEmit, to output: inout Output) -> Bool {
        var writer = JSONWriter(style: .python)
        output.put("{\"method\": \"emit\", \"event\": ")
        JSONWriter.writePythonString(emit.event, to: &output)
        output.put(", \"data\": [")
        var first = true
        for argument in emit.arguments {
            if !first { output.put(", ") }
            first = false
            writer.write(argument, in: PythonForm.self, to: &output)
        }
        output.put("], \"binary\": false, \"namespace\": ")
        JSONWriter.writePythonString(emit.namespace, to: &output)
        output.put(", \"room\": ")
        Self.write(emit.room, to: &output)
        output.put(", \"skip_sid\": ")
        Self.write(emit.skipSid, to: &output)
        output.put(", \"callback\": ")
        if let callback = emit.callback {
            output.put(UInt8(ascii: "["))
            Self.write(callback.room, to: &output)
            output.put(", ")
            JSONWriter.writePythonString(callback.namespace, to: &output)
            output.put(", ")
            JSONWriter.writeInteger(callback.id, to: &output)
            output.put(UInt8(ascii: "]"))
        } else {
            output.put("null")
        }
        output.put(", \"host_id\": ")
        JSONWriter.writePythonString(emit.hostID, to: &output)
        output.put(UInt8(ascii: "}"))
        return writer.sawBinary
    }

    private static func write<Output: JSONOutput>(_ names: PubSubNames, to output: inout Output) {
        switch names {
        case .none:
            output.put("null")
        case .one(let name):
            JSONWriter.writePythonString(name, to: &output)
        case .list(let names):
            output.put(UInt8(ascii: "["))
            var first = true
            for name in names {
                if !first { output.put(", ") }
                first = false
                JSONWriter.writePythonString(name, to: &output)
            }
            output.put(UInt8(ascii: "]"))
        }
    }

    /// The message's bytes, as python-socketio publishes them.
    package func encoded() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 512)
        self.encode(into: &buffer)
        return buffer
    }

    /// The message as the JSON object python-socketio builds (keys in its order; binary deconstructed).
    package var jsonValue: JSONValue {
        switch self {
        case .emit(let emit):
            var data: [JSONValue]
            let binary = emit.isBinary
            if binary {
                let (deconstructed, attachments) = JSONValue.array(emit.arguments).deconstructingBinary()
                data = [deconstructed]
                data.reserveCapacity(attachments.count + 1)
                for attachment in attachments {
                    data.append(.string(Base64.encodeToString(attachment.readableBytesView)))
                }
            } else {
                data = emit.arguments
            }
            let callback: JSONValue
            if let reference = emit.callback {
                callback = .array([reference.room.json, .string(reference.namespace), .int(reference.id)])
            } else {
                callback = .null
            }
            return .object([
                ("method", "emit"), ("event", .string(emit.event)), ("data", .array(data)), ("binary", .bool(binary)),
                ("namespace", .string(emit.namespace)), ("room", emit.room.json), ("skip_sid", emit.skipSid.json),
                ("callback", callback), ("host_id", .string(emit.hostID)),
            ])
        case .disconnect(let sid, let namespace, let hostID):
            return .object([
                ("method", "disconnect"), ("sid", .string(sid)), ("namespace", .string(namespace)),
                ("host_id", .string(hostID)),
            ])
        case .enterRoom(let sid, let room, let namespace, let hostID):
            return .object([
                ("method", "enter_room"), ("sid", .string(sid)), ("room", .string(room)),
                ("namespace", .string(namespace)), ("host_id", .string(hostID)),
            ])
        case .leaveRoom(let sid, let room, let namespace, let hostID):
            return .object([
                ("method", "leave_room"), ("sid", .string(sid)), ("room", .string(room)),
                ("namespace", .string(namespace)), ("host_id", .string(hostID)),
            ])
        case .closeRoom(let room, let namespace, let hostID):
            return .object([
                ("method", "close_room"), ("room", .string(room)), ("namespace", .string(namespace)),
                ("host_id", .string(hostID)),
            ])
        case .callback(let hostID, let sid, let namespace, let id, let arguments):
            return .object([
                ("method", "callback"), ("host_id", .string(hostID)), ("sid", .string(sid)),
                ("namespace", .string(namespace)), ("id", .int(id)), ("args", .array(arguments)),
            ])
        }
    }
}

// MARK: - Decoding

extension PubSubMessage {
    /// The deepest JSON nesting a message may have: what a Socket.IO packet may carry (``SocketIOPacketDecoder``'s
    /// default of 128, counting the packet's own argument list) plus the message's object, its `data` list and,
    /// for binary messages, the argument list inside `data`. Whatever one of our servers accepts from a client and
    /// publishes is readable by every other server.
    package static let maximumDepth = 128 + 2

    /// Reads one message published on python-socketio's channel.
    /// - Parameter bytes: The published bytes (UTF-8 JSON).
    /// - Returns: The message.
    /// - Throws: `PubSubMessageError` naming what is wrong (not JSON, no method, missing or mistyped field,
    ///   bad binary); the caller should log it and skip the message.
    package static func decode(_ bytes: ByteBuffer) throws(PubSubMessageError) -> PubSubMessage {
        let value: JSONValue
        do {
            value = try JSONValue.parsePythonJSON(bytes, maxDepth: Self.maximumDepth)
        } catch {
            throw PubSubMessageError(
                code: .notJSON,
                message: "not JSON: at byte \(error.offset): \(error.message)",
                excerpt: Self.excerpt(bytes)
            )
        }
        return try Self.decode(value, excerpt: { Self.excerpt(bytes) })
    }

    /// Reads one message from already-parsed JSON (see ``decode(_:)``).
    package static func decode(_ value: JSONValue) throws(PubSubMessageError) -> PubSubMessage {
        try Self.decode(value, excerpt: { String(value.pythonJSONString.prefix(200)) })
    }

    static func decode(
        _ value: JSONValue,
        excerpt: @escaping () -> String
    ) throws(PubSubMessageError) -> PubSubMessage {
        guard case .object(let pairs) = value else {
            throw PubSubMessageError(
                code: .notAnObject,
                message: "the message is not a JSON object",
                excerpt: excerpt()
            )
        }
        var fields = Fields(pairs: pairs, excerpt: excerpt)
        guard let method = fields.value("method")?.stringValue else {
            throw PubSubMessageError(code: .missingMethod, message: "no string 'method' field", excerpt: excerpt())
        }
        fields.method = method
        switch method {
        case "emit":
            let event = try fields.string("event")
            let binary = try fields.optionalBool("binary") ?? false
            guard case .array(let data)? = fields.value("data") else {
                throw fields.error(.wrongType, "'data' must be a list", field: "data")
            }
            var arguments = data
            if binary {
                guard case .array(let deconstructed)? = data.first else {
                    throw fields.error(.invalidBinary, "binary 'data' must start with the argument list", field: "data")
                }
                var attachments: [ByteBuffer] = []
                for item in data.dropFirst() {
                    guard case .string(let text) = item,
                        let bytes = Base64.decode(ByteBuffer(string: text).readableBytesView)
                    else {
                        throw fields.error(.invalidBinary, "attachment is not a base64 string", field: "data")
                    }
                    attachments.append(bytes)
                }
                guard case .array(let rebuilt)? = try? JSONValue.array(deconstructed).reconstructingBinary(attachments)
                else {
                    throw fields.error(
                        .invalidBinary,
                        "placeholders do not match the \(attachments.count) attachments",
                        field: "data"
                    )
                }
                arguments = rebuilt
            }
            var callback: PubSubCallback?
            switch fields.value("callback") {
            case nil, .null?:
                callback = nil
            case .array(let items)? where items.count == 3:
                guard let namespace = items[1].stringValue, let id = items[2].intValue,
                    let room = try? Self.names(items[0])
                else {
                    throw fields.error(.wrongType, "'callback' must be [room, namespace, id]", field: "callback")
                }
                callback = PubSubCallback(room: room, namespace: namespace, id: id)
            default:
                throw fields.error(.wrongType, "'callback' must be null or [room, namespace, id]", field: "callback")
            }
            return .emit(
                PubSubEmit(
                    event: event,
                    arguments: arguments,
                    namespace: try fields.optionalString("namespace") ?? "/",
                    room: try fields.names("room"),
                    skipSid: try fields.names("skip_sid"),
                    callback: callback,
                    hostID: try fields.optionalString("host_id") ?? ""
                )
            )
        case "disconnect":
            return .disconnect(
                sid: try fields.string("sid"),
                namespace: try fields.optionalString("namespace") ?? "/",
                hostID: try fields.optionalString("host_id") ?? ""
            )
        case "enter_room", "leave_room":
            let sid = try fields.string("sid")
            let room = try fields.string("room")
            let namespace = try fields.optionalString("namespace") ?? "/"
            let hostID = try fields.optionalString("host_id") ?? ""
            return method == "enter_room"
                ? .enterRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
                : .leaveRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
        case "close_room":
            return .closeRoom(
                room: try fields.string("room"),
                namespace: try fields.optionalString("namespace") ?? "/",
                hostID: try fields.optionalString("host_id") ?? ""
            )
        case "callback":
            guard let id = fields.value("id")?.intValue else {
                throw fields.error(
                    fields.value("id") == nil ? .missingField : .wrongType,
                    "'id' must be an integer",
                    field: "id"
                )
            }
            guard case .array(let arguments)? = fields.value("args") else {
                throw fields.error(
                    fields.value("args") == nil ? .missingField : .wrongType,
                    "'args' must be a list",
                    field: "args"
                )
            }
            return .callback(
                hostID: try fields.string("host_id"),
                sid: try fields.string("sid"),
                namespace: try fields.optionalString("namespace") ?? "/",
                id: id,
                arguments: arguments
            )
        default:
            throw PubSubMessageError(
                code: .unknownMethod,
                message: "unknown method '\(method)'",
                method: method,
                excerpt: excerpt()
            )
        }
    }

    static func names(_ value: JSONValue) throws(PubSubMessageError) -> PubSubNames {
        switch value {
        case .null: return .none
        case .string(let name): return .one(name)
        case .array(let items):
            var names: [String] = []
            names.reserveCapacity(items.count)
            for item in items {
                guard case .string(let name) = item else {
                    throw PubSubMessageError(code: .wrongType, message: "list items must be strings", excerpt: "")
                }
                names.append(name)
            }
            return .list(names)
        default:
            throw PubSubMessageError(code: .wrongType, message: "must be null, a string or a list", excerpt: "")
        }
    }

    private struct Fields {
        var pairs: [(key: String, value: JSONValue)]
        var excerpt: () -> String
        var method: String?

        func value(_ key: String) -> JSONValue? {
            // Python dicts keep the last duplicate key; so do we.
            self.pairs.last(where: { $0.key == key })?.value
        }

        func error(_ code: PubSubMessageError.Code, _ message: String, field: String) -> PubSubMessageError {
            PubSubMessageError(code: code, message: message, method: self.method, field: field, excerpt: self.excerpt())
        }

        func string(_ key: String) throws(PubSubMessageError) -> String {
            switch self.value(key) {
            case .string(let text)?: return text
            case nil: throw self.error(.missingField, "missing '\(key)'", field: key)
            default: throw self.error(.wrongType, "'\(key)' must be a string", field: key)
            }
        }

        func optionalString(_ key: String) throws(PubSubMessageError) -> String? {
            switch self.value(key) {
            case .string(let text)?: return text
            case nil, .null?: return nil
            default: throw self.error(.wrongType, "'\(key)' must be a string", field: key)
            }
        }

        func optionalBool(_ key: String) throws(PubSubMessageError) -> Bool? {
            switch self.value(key) {
            case .bool(let flag)?: return flag
            case nil, .null?: return nil
            default: throw self.error(.wrongType, "'\(key)' must be true or false", field: key)
            }
        }

        func names(_ key: String) throws(PubSubMessageError) -> PubSubNames {
            guard let value = self.value(key) else { return .none }
            do {
                return try PubSubMessage.names(value)
            } catch {
                throw self.error(.wrongType, "'\(key)' \(error.message)", field: key)
            }
        }
    }

    private static func excerpt(_ bytes: ByteBuffer) -> String {
        LogSafe.excerpt(bytes.readableBytesView, limit: 200)
    }
}

/// Host ids as python-socketio makes them: `uuid.uuid4().hex`, 32 lowercase hex digits.
package enum PubSubHostID {
    /// A new random host id.
    package static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return Self.generate(using: &generator)
    }

    /// A new host id from `generator` (a version-4 UUID in hex).
    package static func generate(using generator: inout some RandomNumberGenerator) -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(32)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
