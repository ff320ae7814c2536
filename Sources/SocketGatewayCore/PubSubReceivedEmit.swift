package import NIOCore

/// An `emit` read from the channel without decoding its arguments: its target and the other small fields are
/// decoded; `data` stays as published and is copied into the Socket.IO packet as it is.
///
/// A server that has no member of the addressed rooms learns it from these fields and never looks at the
/// arguments. One that delivers writes them into the EVENT packet without building a `JSONValue` tree: numbers
/// stay as published (`1.0` stays `1.0`, as python-socketio's own server re-serialises what it loaded), strings
/// keep their escapes (`\u00e9` from Python's `ensure_ascii`); only whitespace between tokens is dropped.
package struct PubSubReceivedEmit: Sendable {
    /// The event name.
    package let event: String
    /// The namespace, `/` by default.
    package let namespace: String
    /// `none` = every client of the namespace; otherwise the rooms.
    package let room: PubSubNames
    /// Session ids (rooms) that must not receive the event.
    package let skipSid: PubSubNames
    /// Set when the emitting server wants the ack back.
    package let callback: PubSubCallback?
    /// The emitting manager's id.
    package var hostID: String {
        guard let range = self.hostIDRange, case .raw(let bytes, _, _, _) = self.arguments else {
            return self.hostIDText
        }
        return bytes.withUnsafeReadableBytes {
            String(decoding: UnsafeRawBufferPointer(rebasing: $0[range]), as: UTF8.self)
        }
    }
    /// The host id when it is not read from the bytes.
    private let hostIDText: String
    /// Where the host id's characters are in the message's bytes (offsets from the reader index), when its JSON
    /// string holds no escape: compared there, and made a `String` only when asked for.
    private let hostIDRange: Range<Int>?

    private enum Arguments: Sendable {
        /// The message's bytes; where the event name's JSON string and the `data` list are in them (offsets
        /// from the reader index); whether `data` holds NaN or ±Infinity.
        case raw(ByteBuffer, event: Range<Int>, data: Range<Int>, nonFinite: Bool)
        /// Decoded already (a binary emit: its attachments are decoded from base64 and put in place).
        case decoded([JSONValue])
    }

    private let arguments: Arguments

    package init(_ emit: PubSubEmit) {
        self.event = emit.event
        self.namespace = emit.namespace
        self.room = emit.room
        self.skipSid = emit.skipSid
        self.callback = emit.callback
        self.hostIDText = emit.hostID
        self.hostIDRange = nil
        self.arguments = .decoded(emit.arguments)
    }

    /// An emit whose arguments stay in `bytes`; its host id is `emit.hostID`, or the bytes at `hostID`.
    init(
        header emit: PubSubEmit,
        bytes: ByteBuffer,
        event: Range<Int>,
        data: Range<Int>,
        nonFinite: Bool,
        hostID: Range<Int>?
    ) {
        self.event = emit.event
        self.namespace = emit.namespace
        self.room = emit.room
        self.skipSid = emit.skipSid
        self.callback = emit.callback
        self.hostIDText = emit.hostID
        self.hostIDRange = hostID
        self.arguments = .raw(bytes, event: event, data: data, nonFinite: nonFinite)
    }

    /// Whether ``hostID`` is `id` (compared in the published bytes, without making a `String`).
    package func isSent(byHost id: String) -> Bool {
        guard let range = self.hostIDRange, case .raw(let bytes, _, _, _) = self.arguments else {
            return self.hostIDText == id
        }
        var id = id
        return id.withUTF8 { own in
            bytes.withUnsafeReadableBytes { published in
                UnsafeRawBufferPointer(rebasing: published[range]).elementsEqual(UnsafeRawBufferPointer(own))
            }
        }
    }

    /// Whether ``writeEventPacket(into:)`` can copy the arguments as published: not for binary emits (their
    /// attachments are decoded) nor for arguments holding `NaN` or `Infinity`, which JSON cannot carry to a
    /// client (the decoded path writes them as `null`, as `JSON.stringify` does).
    package var copiesArguments: Bool {
        if case .raw(_, _, _, let nonFinite) = self.arguments { return !nonFinite }
        return false
    }

    /// The arguments, decoded: for the catalog check, for emits that ask for acks, and where they cannot be
    /// copied (see ``copiesArguments``). The bytes were checked when the message was read, so this does not fail
    /// for a message read by ``PubSubMessage/read(_:)``.
    /// - Throws: `PubSubMessageError` if the bytes are not a JSON list after all.
    package func decodedArguments() throws(PubSubMessageError) -> [JSONValue] {
        switch self.arguments {
        case .decoded(let arguments):
            return arguments
        case .raw(let bytes, _, let data, _):
            let slice = bytes.getSlice(at: bytes.readerIndex + data.lowerBound, length: data.count) ?? ByteBuffer()
            // `data` sits inside the message's object: one level less is left for it.
            let maxDepth = PubSubMessage.maximumDepth - 1
            guard case .array(let arguments)? = try? JSONValue.parsePythonJSON(slice, maxDepth: maxDepth) else {
                throw PubSubMessageError(
                    code: .wrongType,
                    message: "'data' must be a list",
                    method: "emit",
                    field: "data",
                    excerpt: LogSafe.excerpt(bytes.readableBytesView, limit: 200)
                )
            }
            return arguments
        }
    }

    /// The whole emit, arguments decoded.
    /// - Throws: See ``decodedArguments()``.
    package func decoded() throws(PubSubMessageError) -> PubSubEmit {
        PubSubEmit(
            event: self.event,
            arguments: try self.decodedArguments(),
            namespace: self.namespace,
            room: self.room,
            skipSid: self.skipSid,
            callback: self.callback,
            hostID: self.hostID
        )
    }

    /// The most bytes ``writeEventPacket(into:)`` writes (0 where the arguments are not copied).
    package var eventPacketCapacity: Int {
        guard case .raw(_, let event, let data, _) = self.arguments else { return 0 }
        return 8 + self.namespace.utf8.count + event.count + data.count
    }

    /// Appends the Socket.IO EVENT packet's text (without the Engine.IO `4`): `2`, the namespace and `,` unless
    /// it is `/`, then `[` the event name's JSON string, `,` each argument `]`, copied from the published bytes
    /// with the whitespace between tokens left out.
    /// - Precondition: ``copiesArguments``.
    package func writeEventPacket(into buffer: inout ByteBuffer) {
        guard case .raw(let bytes, let event, let data, false) = self.arguments else {
            preconditionFailure("writeEventPacket(into:) needs arguments that can be copied (copiesArguments)")
        }
        buffer.reserveCapacity(minimumWritableBytes: self.eventPacketCapacity)
        buffer.writeInteger(UInt8(ascii: "2"))
        if self.namespace != "/" && !self.namespace.isEmpty {
            buffer.writeString(self.namespace)
            buffer.writeInteger(UInt8(ascii: ","))
        }
        buffer.writeInteger(UInt8(ascii: "["))
        bytes.withUnsafeReadableBytes { published in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: published[event]))
            // The list's inside, between its brackets (checked JSON: `[` first, `]` last).
            let inside = UnsafeRawBufferPointer(rebasing: published[(data.lowerBound + 1)..<(data.upperBound - 1)])
            Self.writeWithoutWhitespace(inside, leadingComma: true, into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// Copies checked JSON text without the whitespace outside its strings; with `leadingComma`, writes `,`
    /// first unless the text is only whitespace.
    private static func writeWithoutWhitespace(
        _ text: UnsafeRawBufferPointer,
        leadingComma: Bool,
        into buffer: inout ByteBuffer
    ) {
        var needsComma = leadingComma
        var runStart = 0
        var inString = false
        var escaped = false
        var index = 0
        while index < text.count {
            let byte = text[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
                if runStart < index {
                    if needsComma {
                        buffer.writeInteger(UInt8(ascii: ","))
                        needsComma = false
                    }
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: text[runStart..<index]))
                }
                runStart = index + 1
            }
            index += 1
        }
        if runStart < text.count {
            if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: text[runStart..<text.count]))
        }
    }
}

/// A message read from the channel: an `emit` with its arguments left as published, or any other message
/// decoded whole.
package enum PubSubReceived: Sendable {
    /// An emit (its arguments decoded only when asked for).
    case emit(PubSubReceivedEmit)
    /// Any other method.
    case message(PubSubMessage)

    /// The sender's host id; for `callback`, the host the ack is addressed to.
    package var hostID: String {
        switch self {
        case .emit(let emit): return emit.hostID
        case .message(let message): return message.hostID
        }
    }

    /// See ``PubSubMessage/isRelevant(toHost:)``.
    package func isRelevant(toHost ownHostID: String) -> Bool {
        switch self {
        case .emit(let emit): return !emit.isSent(byHost: ownHostID)
        case .message(let message): return message.isRelevant(toHost: ownHostID)
        }
    }

    /// The message decoded whole, as ``PubSubMessage/decode(_:)`` returns it.
    /// - Throws: See ``PubSubReceivedEmit/decodedArguments()``.
    package func decoded() throws(PubSubMessageError) -> PubSubMessage {
        switch self {
        case .emit(let emit): return .emit(try emit.decoded())
        case .message(let message): return message
        }
    }
}

extension PubSubMessage {
    /// Reads one message published on python-socketio's channel, leaving an emit's arguments as published.
    ///
    /// Every byte is checked as ``decode(_:)`` checks it: what `decode` refuses, this refuses with the same
    /// error, and what it accepts this accepts with the same fields. Only the `data` list of a non-binary emit is
    /// not built into a `JSONValue` tree (see ``PubSubReceivedEmit``).
    /// - Parameter bytes: The published bytes (UTF-8 JSON).
    /// - Returns: The message.
    /// - Throws: `PubSubMessageError`, as ``decode(_:)``.
    package static func read(_ bytes: ByteBuffer) throws(PubSubMessageError) -> PubSubReceived {
        // One pass over the members; of duplicate keys the last wins, as in `decode`.
        var fields = EmitFields()
        let valid = bytes.withUnsafeReadableBytes { readable in
            JSONParser.scanObject(readable, maxDepth: Self.maximumDepth, skipping: EmitFields.unbuiltKeys) { member in
                fields.take(member)
            }
        }
        // Anything unusual (not an object, another method, a binary emit, a field of another type): the general
        // path, which says what is wrong, or decodes what is right.
        guard valid, let header = fields.header(in: bytes, target: nil) else {
            return try Self.decodeWhole(bytes)
        }
        return .emit(header.received(bytes))
    }

    /// Reads an emit whose target ``PubSubEmitTarget/scan(_:)`` has read from the same bytes: as ``read(_:)``,
    /// but its `method`, `namespace`, `room` and `host_id` are only checked, not read again (the target's are
    /// taken), and no key is made a `String` (the scan found none with an escape, so their bytes are compared).
    ///
    /// Returns and throws what ``read(_:)`` returns and throws for `bytes`: every byte is checked as `decode`
    /// checks it, so a message malformed past its target is refused with `decode`'s error.
    /// - Parameters:
    ///   - bytes: The published bytes (UTF-8 JSON).
    ///   - target: What `PubSubEmitTarget.scan(bytes)` returned for these bytes.
    /// - Returns: The emit: a message with a target is one (the target is read from a last `method` that is
    ///   `"emit"`, and whatever bytes `decode` accepts it reads as the scan does).
    /// - Throws: `PubSubMessageError`, as ``decode(_:)``.
    package static func read(
        _ bytes: ByteBuffer,
        scanned target: PubSubEmitTarget
    ) throws(PubSubMessageError) -> PubSubReceivedEmit {
        // One pass that checks every byte and builds nothing; of duplicate keys the last wins, as in `decode`.
        // The outline is valid JSON when it passes, so the scan's loose outline was the parser's: the last
        // `method` is `"emit"`, and the target's values are those of the last `namespace`, `room` and `host_id`.
        let fields = bytes.withUnsafeReadableBytes { readable -> EmitFields? in
            var members = ScannedEmitMembers()
            let valid = JSONParser.checkObject(readable, maxDepth: Self.maximumDepth) { key, value, nonFinite in
                members.take(key: UnsafeRawBufferPointer(rebasing: readable[key]), value: value, nonFinite: nonFinite)
            }
            return valid ? members.fields(in: readable) : nil
        }
        guard let header = fields?.header(in: bytes, target: target) else {
            // A binary emit, or one `decode` refuses (with the error it says why).
            switch try Self.decode(bytes) {
            case .emit(let emit):
                return PubSubReceivedEmit(emit)
            case let message:
                // Not reached: bytes `decode` accepts have the outline the scan read, whose method is "emit".
                throw PubSubMessageError(
                    code: .wrongType,
                    message: "'method' is '\(message.method)', but the message's target was read as an emit's",
                    method: message.method,
                    field: "method",
                    excerpt: LogSafe.excerpt(bytes.readableBytesView, limit: 200)
                )
            }
        }
        return header.received(bytes)
    }

    /// Where the members an emit needs besides its target are, as a check of the whole message finds them (the
    /// last of each key); keys compared as bytes, which is right for keys without escapes.
    private struct ScannedEmitMembers {
        var event: Range<Int>?
        var data: (range: Range<Int>, nonFinite: Bool)?
        var binary: Range<Int>?
        var skipSid: Range<Int>?
        var callback: Range<Int>?

        mutating func take(key: UnsafeRawBufferPointer, value: Range<Int>, nonFinite: Bool) {
            switch key.count {
            case 4 where Self.key(key, is: "data"): self.data = (value, nonFinite)
            case 5 where Self.key(key, is: "event"): self.event = value
            case 6 where Self.key(key, is: "binary"): self.binary = value
            case 8 where Self.key(key, is: "skip_sid"): self.skipSid = value
            case 8 where Self.key(key, is: "callback"): self.callback = value
            default: break
            }
        }

        private static func key(_ key: UnsafeRawBufferPointer, is name: StaticString) -> Bool {
            key.elementsEqual(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }

        /// The members as ``EmitFields`` holds them, their small values built from checked bytes; `nil` if one
        /// cannot be (not reached for checked bytes).
        func fields(in bytes: UnsafeRawBufferPointer) -> EmitFields? {
            var fields = EmitFields()
            func value(_ range: Range<Int>?) -> JSONValue?? {
                guard let range else { return .some(nil) }
                // A member's value sits inside the message's object: one level less is left for it.
                guard
                    case .success(let value) = JSONParser.parse(
                        UnsafeRawBufferPointer(rebasing: bytes[range]),
                        maxDepth: PubSubMessage.maximumDepth - 1,
                        allowsNonFiniteNumbers: true
                    )
                else { return nil }
                return .some(value)
            }
            guard let event = value(self.event), let binary = value(self.binary), let skipSid = value(self.skipSid),
                let callback = value(self.callback)
            else { return nil }
            if let event, let range = self.event {
                fields.event = JSONScannedMember(key: "event", value: event, range: range, holdsNonFiniteNumbers: false)
            }
            if let data = self.data {
                fields.data = JSONScannedMember(
                    key: "data",
                    value: nil,
                    range: data.range,
                    holdsNonFiniteNumbers: data.nonFinite
                )
            }
            fields.binary = binary
            fields.skipSid = skipSid
            fields.callback = callback
            return fields
        }
    }

    /// The members of a message as they are read, and the emit they make when they are what `decode` accepts.
    private struct EmitFields {
        var method: JSONValue?
        var event: JSONScannedMember?
        var data: JSONScannedMember?
        var binary: JSONValue?
        var namespace: JSONValue?
        var room: JSONValue?
        var skipSid: JSONValue?
        var callback: JSONValue?
        /// Checked but not built: compared in the bytes (see ``PubSubReceivedEmit/isSent(byHost:)``).
        var hostID: JSONScannedMember?

        /// The members whose values are checked but not built.
        static let unbuiltKeys = ["data", "host_id"]

        mutating func take(_ member: JSONScannedMember) {
            switch member.key {
            case "method": self.method = member.value
            case "event": self.event = member
            case "data": self.data = member
            case "binary": self.binary = member.value
            case "namespace": self.namespace = member.value
            case "room": self.room = member.value
            case "skip_sid": self.skipSid = member.value
            case "callback": self.callback = member.value
            case "host_id": self.hostID = member
            default: break
            }
        }

        /// An emit's fields, checked as `decode` checks them; `nil` for anything else. With `target` (scanned from
        /// `bytes`), its method is an emit's and its namespace, rooms and host id are the target's.
        func header(in bytes: ByteBuffer, target: PubSubEmitTarget?) -> Header? {
            guard let target = target ?? self.target(in: bytes), let event = self.event,
                case .string(let name)? = event.value, let data = self.data,
                bytes.getInteger(at: bytes.readerIndex + data.range.lowerBound, as: UInt8.self) == UInt8(ascii: "[")
            else { return nil }
            switch self.binary {
            case nil, .null?, .bool(false)?: break
            default: return nil  // binary (decoded at once), or not a bool
            }
            var callback: PubSubCallback?
            switch self.callback {
            case nil, .null?:
                callback = nil
            case .array(let items)? where items.count == 3:
                guard let namespace = items[1].stringValue, let id = items[2].intValue,
                    let room = try? PubSubMessage.names(items[0])
                else { return nil }
                callback = PubSubCallback(room: room, namespace: namespace, id: id)
            default:
                return nil
            }
            guard let skipSid = Self.names(self.skipSid) else { return nil }
            return Header(
                emit: PubSubEmit(
                    event: name,
                    arguments: [],
                    namespace: target.namespace,
                    room: target.room,
                    skipSid: skipSid,
                    callback: callback,
                    hostID: target.hostIDText
                ),
                event: event.range,
                data: data,
                hostID: target.hostIDRange
            )
        }

        /// The emit's target as `decode` reads it, from the members read; `nil` for another method or a field of
        /// another type.
        private func target(in bytes: ByteBuffer) -> PubSubEmitTarget? {
            guard case .string("emit")? = self.method, let namespace = Self.optionalString(self.namespace),
                let hostID = Self.hostID(self.hostID, in: bytes), let room = Self.names(self.room)
            else { return nil }
            return PubSubEmitTarget(
                namespace: namespace ?? "/",
                room: room,
                hostIDBytes: hostID.range,
                hostIDText: hostID.text
            )
        }

        /// `host_id` as `decode` reads it (missing or null: `""`): where its characters are when its string holds
        /// no escape, else its text; `nil` for another type.
        private static func hostID(
            _ member: JSONScannedMember?,
            in bytes: ByteBuffer
        ) -> (text: String, range: Range<Int>?)? {
            guard let member else { return ("", nil) }
            return bytes.withUnsafeReadableBytes { readable -> (text: String, range: Range<Int>?)? in
                let value = UnsafeRawBufferPointer(rebasing: readable[member.range])
                guard value.first == UInt8(ascii: "\"") else {
                    return value.elementsEqual("null".utf8) ? ("", nil) : nil
                }
                // A checked string: `"` … `"`.
                let characters = (member.range.lowerBound + 1)..<(member.range.upperBound - 1)
                guard UnsafeRawBufferPointer(rebasing: readable[characters]).contains(UInt8(ascii: "\\")) else {
                    return ("", characters)
                }
                let slice = bytes.getSlice(at: bytes.readerIndex + member.range.lowerBound, length: member.range.count)!
                guard case .string(let text)? = try? JSONValue.parsePythonJSON(slice, maxDepth: 1) else { return nil }
                return (text, nil)
            }
        }

        /// `.some(nil)` for a missing or null field, `.some(text)` for a string, `nil` for another type.
        private static func optionalString(_ value: JSONValue?) -> String?? {
            switch value {
            case nil, .null?: return .some(nil)
            case .string(let text)?: return .some(text)
            default: return nil
            }
        }

        /// What `decode` reads from `room` and `skip_sid`; `nil` where it refuses the field.
        private static func names(_ value: JSONValue?) -> PubSubNames? {
            guard let value else { return PubSubNames.none }
            return try? PubSubMessage.names(value)
        }
    }

    /// An emit's fields (arguments left out), and where its event name and arguments are.
    private struct Header {
        var emit: PubSubEmit
        var event: Range<Int>
        var data: JSONScannedMember
        var hostID: Range<Int>?

        func received(_ bytes: ByteBuffer) -> PubSubReceivedEmit {
            PubSubReceivedEmit(
                header: self.emit,
                bytes: bytes,
                event: self.event,
                data: self.data.range,
                nonFinite: self.data.holdsNonFiniteNumbers,
                hostID: self.hostID
            )
        }
    }

    private static func decodeWhole(_ bytes: ByteBuffer) throws(PubSubMessageError) -> PubSubReceived {
        switch try Self.decode(bytes) {
        case .emit(let emit): return .emit(PubSubReceivedEmit(emit))
        case let message: return .message(message)
        }
    }
}
