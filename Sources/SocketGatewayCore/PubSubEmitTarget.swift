package import NIOCore

/// Whom an `emit` on python-socketio's channel is for — its namespace, its rooms and its sender — read from the
/// published bytes without reading the rest of the message.
///
/// A server with no member of the addressed rooms drops the message on this alone: its `data`, `event`, `binary`,
/// `skip_sid` and `callback` are not looked at, so a message that is malformed there but addressed to nobody here
/// is skipped, not refused. Everything else goes through ``PubSubMessage/read(_:)``, which checks every byte (or,
/// for a message with a target, ``PubSubMessage/read(_:scanned:)``, which checks every byte but takes the target
/// from here).
package struct PubSubEmitTarget: Sendable, Hashable {
    /// The namespace, `/` when missing or `null` (as ``PubSubMessage/decode(_:)`` reads it).
    package let namespace: String
    /// The rooms (`.none`: the whole namespace).
    package let room: PubSubNames
    /// The sender's `host_id`: where its characters are in the scanned bytes (offsets from the reader index) when
    /// its string holds no escape, else its text (`""` when missing or `null`).
    private let hostID: HostID

    private enum HostID: Sendable, Hashable {
        case bytes(Range<Int>)
        case text(String)
    }

    /// Where the host id's characters are in the scanned bytes, when they are compared there (no escape).
    var hostIDRange: Range<Int>? {
        if case .bytes(let range) = self.hostID { return range }
        return nil
    }

    /// The host id's text when it is not compared in the scanned bytes (`""` otherwise).
    var hostIDText: String {
        if case .text(let text) = self.hostID { return text }
        return ""
    }

    /// The sender's `host_id`, read from `bytes` (the bytes this target was scanned from).
    package func hostID(in bytes: ByteBuffer) -> String {
        switch self.hostID {
        case .text(let text): return text
        case .bytes(let range):
            return bytes.withUnsafeReadableBytes {
                String(decoding: UnsafeRawBufferPointer(rebasing: $0[range]), as: UTF8.self)
            }
        }
    }

    /// Whether the sender is `id`, compared in `bytes` (the bytes this target was scanned from) without making a
    /// `String`.
    package func isSent(byHost id: String, in bytes: ByteBuffer) -> Bool {
        switch self.hostID {
        case .text(let text): return text == id
        case .bytes(let range):
            var id = id
            return id.withUTF8 { own in
                bytes.withUnsafeReadableBytes { published in
                    UnsafeRawBufferPointer(rebasing: published[range]).elementsEqual(UnsafeRawBufferPointer(own))
                }
            }
        }
    }

    /// Reads the target of an `emit` from its published bytes: the top-level keys are compared in place (no
    /// `String` per key); `method`, `namespace`, `room` and `host_id` are read as ``PubSubMessage/decode(_:)``
    /// reads them (the last of duplicate keys wins, as in Python); every other value is only stepped over (strings
    /// to their closing quote, lists and objects to their closing bracket), not checked.
    ///
    /// `nil` when the bytes are not an emit or its target cannot be told this way: the message's outline is not a
    /// JSON object, a key holds an escape, or `method`, `namespace`, `room` or `host_id` is not what `decode`
    /// accepts. Such a message is for ``PubSubMessage/read(_:)``, which reads it whole or says what is wrong.
    /// For a message that `decode` accepts as an emit, this is `nil` or that emit's namespace, rooms and host id.
    /// - Parameter bytes: The published bytes.
    package static func scan(_ bytes: ByteBuffer) -> PubSubEmitTarget? {
        bytes.withUnsafeReadableBytes { readable in
            var scanner = PubSubHeaderScanner(bytes: readable)
            guard let header = scanner.scanMembers() else { return nil }
            return header.target(in: readable)
        }
    }

    init(namespace: String, room: PubSubNames, hostIDBytes: Range<Int>?, hostIDText: String) {
        self.namespace = namespace
        self.room = room
        self.hostID = hostIDBytes.map { .bytes($0) } ?? .text(hostIDText)
    }
}

/// Where the values of the keys that make an emit's target are, as the scanner found them (the last of each).
struct PubSubScannedHeader {
    var method: Range<Int>?
    var namespace: Range<Int>?
    var room: Range<Int>?
    var hostID: Range<Int>?

    /// The emit's target, or `nil` (see ``PubSubEmitTarget/scan(_:)``).
    func target(in bytes: UnsafeRawBufferPointer) -> PubSubEmitTarget? {
        guard let method, Self.equals(bytes, method, "\"emit\"") else { return nil }
        var namespace = "/"
        if let range = self.namespace, !Self.equals(bytes, range, "null") {
            guard let text = Self.string(bytes, range) else { return nil }
            namespace = text
        }
        var room = PubSubNames.none
        if let range = self.room, !Self.equals(bytes, range, "null") {
            if bytes[range.lowerBound] == UInt8(ascii: "[") {
                guard let names = Self.names(bytes, range) else { return nil }
                room = .list(names)
            } else {
                guard let name = Self.string(bytes, range) else { return nil }
                room = .one(name)
            }
        }
        guard let range = self.hostID, !Self.equals(bytes, range, "null") else {
            return PubSubEmitTarget(namespace: namespace, room: room, hostIDBytes: nil, hostIDText: "")
        }
        guard bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        let characters = (range.lowerBound + 1)..<(range.upperBound - 1)
        if !UnsafeRawBufferPointer(rebasing: bytes[characters]).contains(UInt8(ascii: "\\")) {
            // Compared in place: a host id that is not valid text is nobody's, and the message still goes by it.
            return PubSubEmitTarget(namespace: namespace, room: room, hostIDBytes: characters, hostIDText: "")
        }
        guard let text = Self.parsedString(bytes, range) else { return nil }
        return PubSubEmitTarget(namespace: namespace, room: room, hostIDBytes: nil, hostIDText: text)
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        return UnsafeRawBufferPointer(rebasing: bytes[range]).elementsEqual(
            UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        )
    }

    /// The text of the JSON string at `range` (quotes included), or `nil` when it is not one `decode` accepts.
    /// Printable ASCII without escapes (python-socketio's `ensure_ascii` output, nearly always) is made directly;
    /// anything else goes through the JSON parser.
    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        let characters = UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        for byte in characters where byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\\") {
            return Self.parsedString(bytes, range)
        }
        return String(decoding: characters, as: UTF8.self)
    }

    private static func parsedString(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard
            case .success(.string(let text)) = JSONParser.parse(
                UnsafeRawBufferPointer(rebasing: bytes[range]),
                maxDepth: 1,
                allowsNonFiniteNumbers: true
            )
        else { return nil }
        return text
    }

    /// A JSON list of strings at `range`, or `nil` when it is anything else.
    private static func names(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> [String]? {
        let list = UnsafeRawBufferPointer(rebasing: bytes[range])
        var scanner = PubSubHeaderScanner(bytes: list)
        var names: [String] = []
        scanner.index = 1
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "]") {
            scanner.index += 1
            return scanner.index == list.count ? names : nil
        }
        while true {
            scanner.skipWhitespace()
            let start = scanner.index
            guard scanner.peek == UInt8(ascii: "\""), scanner.skipString() != nil,
                let name = Self.string(list, start..<scanner.index)
            else { return nil }
            names.append(name)
            scanner.skipWhitespace()
            switch scanner.peek {
            case UInt8(ascii: ","):
                scanner.index += 1
            case UInt8(ascii: "]"):
                scanner.index += 1
                return scanner.index == list.count ? names : nil
            default:
                return nil
            }
        }
    }
}

/// Steps through a message's outline: the top-level object's keys (compared in place) and the extent of each
/// value, without checking what is inside values.
struct PubSubHeaderScanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var peek: UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x0A, 0x0D, 0x09: self.index += 1
            default: return
            }
        }
    }

    /// At a `"`: steps past the string's closing quote.
    /// - Returns: The characters' range and whether they hold a backslash; `nil` when the string does not end.
    mutating func skipString() -> (characters: Range<Int>, escaped: Bool)? {
        self.index += 1
        let start = self.index
        var escaped = false
        while self.index < self.bytes.count {
            // Eight bytes at a time while none of them is a quote or a backslash (most of a payload's strings):
            // the byte loop below only sees the word that holds one.
            while self.index + 8 <= self.bytes.count,
                !JSONStringWord.holdsQuoteOrBackslash(
                    self.bytes.loadUnaligned(fromByteOffset: self.index, as: UInt64.self)
                )
            {
                self.index += 8
            }
            guard self.index < self.bytes.count else { break }
            switch self.bytes[self.index] {
            case UInt8(ascii: "\""):
                self.index += 1
                return (start..<(self.index - 1), escaped)
            case UInt8(ascii: "\\"):
                escaped = true
                self.index += 2
            default:
                self.index += 1
            }
        }
        return nil
    }

    /// Steps over one value: a string, a list or object to its matching close (brackets counted, strings stepped
    /// over), or a run of the bytes numbers and `true`/`false`/`null`/`NaN`/`Infinity` are made of.
    /// - Returns: `false` when no value of that outline starts here or it does not end.
    mutating func skipValue() -> Bool {
        guard let first = self.peek else { return false }
        switch first {
        case UInt8(ascii: "\""):
            return self.skipString() != nil
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            var depth = 0
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case UInt8(ascii: "\""):
                    guard self.skipString() != nil else { return false }
                    continue
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    depth -= 1
                    if depth == 0 {
                        self.index += 1
                        return true
                    }
                default:
                    break
                }
                self.index += 1
            }
            return false
        default:
            let start = self.index
            while let byte = self.peek, Self.isScalarByte(byte) { self.index += 1 }
            return self.index > start
        }
    }

    private static func isScalarByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// Reads the top-level object's members: where the last value of each key of an emit's target is.
    /// - Returns: `nil` when the outline is not one object (with nothing but whitespace after it) or a key holds
    ///   an escape (it might spell one of the keys).
    mutating func scanMembers() -> PubSubScannedHeader? {
        var header = PubSubScannedHeader()
        self.skipWhitespace()
        guard self.peek == UInt8(ascii: "{") else { return nil }
        self.index += 1
        self.skipWhitespace()
        if self.peek == UInt8(ascii: "}") {
            self.index += 1
        } else {
            members: while true {
                self.skipWhitespace()
                guard self.peek == UInt8(ascii: "\""), let scanned = self.skipString(), !scanned.escaped else {
                    return nil
                }
                let key = scanned.characters
                self.skipWhitespace()
                guard self.peek == UInt8(ascii: ":") else { return nil }
                self.index += 1
                self.skipWhitespace()
                let start = self.index
                guard self.skipValue() else { return nil }
                let value = start..<self.index
                switch key.count {
                case 4 where self.key(key, is: "room"): header.room = value
                case 6 where self.key(key, is: "method"): header.method = value
                case 7 where self.key(key, is: "host_id"): header.hostID = value
                case 9 where self.key(key, is: "namespace"): header.namespace = value
                default: break
                }
                self.skipWhitespace()
                switch self.peek {
                case UInt8(ascii: ","):
                    self.index += 1
                case UInt8(ascii: "}"):
                    self.index += 1
                    break members
                default:
                    return nil
                }
            }
        }
        self.skipWhitespace()
        return self.index == self.bytes.count ? header : nil
    }

    private func key(_ range: Range<Int>, is name: StaticString) -> Bool {
        UnsafeRawBufferPointer(rebasing: self.bytes[range]).elementsEqual(
            UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        )
    }
}
