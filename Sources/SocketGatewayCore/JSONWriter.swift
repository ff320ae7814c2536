public import NIOCore

/// The compact JSON writer behind `write(to:)`, `writePythonJSON(to:)` and the Socket.IO encoder.
struct JSONWriter {
    enum Style {
        /// JavaScript's `JSON.stringify(value)`: no spaces, non-ASCII raw as UTF-8.
        case javaScript
        /// Python's `json.dumps(value)`: `", "` and `": "`, `ensure_ascii=True`, floats as `repr`.
        case python
    }

    var style: Style
    /// `nil`: `.binary` is written as `null`. Non-nil: `.binary` is written as a Socket.IO placeholder
    /// `{"_placeholder":true,"num":N}` and its bytes are appended here (depth-first order).
    var attachments: [ByteBuffer]?

    init(style: Style, collectingAttachments: Bool = false) {
        self.style = style
        self.attachments = collectingAttachments ? [] : nil
    }

    mutating func write(_ value: JSONValue, to buffer: inout ByteBuffer) {
        switch value {
        case .null:
            buffer.writeStaticString("null")
        case .bool(let flag):
            if flag { buffer.writeStaticString("true") } else { buffer.writeStaticString("false") }
        case .int(let number):
            Self.writeInteger(number, to: &buffer)
        case .double(let number):
            Self.writeDouble(number, style: self.style, to: &buffer)
        case .string(let text):
            switch self.style {
            case .javaScript: Self.writeJavaScriptString(text, to: &buffer)
            case .python: Self.writePythonString(text, to: &buffer)
            }
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { self.writeItemSeparator(to: &buffer) }
                first = false
                self.write(element, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let pairs):
            buffer.writeInteger(UInt8(ascii: "{"))
            var first = true
            for pair in pairs {
                if !first { self.writeItemSeparator(to: &buffer) }
                first = false
                switch self.style {
                case .javaScript:
                    Self.writeJavaScriptString(pair.key, to: &buffer)
                    buffer.writeInteger(UInt8(ascii: ":"))
                case .python:
                    Self.writePythonString(pair.key, to: &buffer)
                    buffer.writeStaticString(": ")
                }
                self.write(pair.value, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        case .binary(let bytes):
            if self.attachments != nil {
                let number = self.attachments!.count
                self.attachments!.append(bytes)
                switch self.style {
                case .javaScript: buffer.writeStaticString("{\"_placeholder\":true,\"num\":")
                case .python: buffer.writeStaticString("{\"_placeholder\": true, \"num\": ")
                }
                Self.writeInteger(Int64(number), to: &buffer)
                buffer.writeInteger(UInt8(ascii: "}"))
            } else {
                buffer.writeStaticString("null")
            }
        }
    }

    private func writeItemSeparator(to buffer: inout ByteBuffer) {
        switch self.style {
        case .javaScript: buffer.writeInteger(UInt8(ascii: ","))
        case .python: buffer.writeStaticString(", ")
        }
    }

    static func writeInteger(_ number: Int64, to buffer: inout ByteBuffer) {
        if number >= 0 && number < 10 {
            buffer.writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: number))
            return
        }
        // Up to 20 bytes, written backwards into a fixed-size tuple: no allocation.
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &scratch) { raw in
            var index = raw.count
            var magnitude = number.magnitude
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if number < 0 {
                index -= 1
                raw[index] = UInt8(ascii: "-")
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }

    static func writeDouble(_ number: Double, style: Style, to buffer: inout ByteBuffer) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        switch style {
        case .javaScript: JSONNumberFormatting.writeJavaScript(number, to: &bytes)
        case .python: JSONNumberFormatting.writePython(number, to: &bytes)
        }
        buffer.writeBytes(bytes)
    }

    private static func writeUnicodeEscape(_ unit: UInt16, to buffer: inout ByteBuffer) {
        @inline(__always) func hex(_ nibble: UInt16) -> UInt8 {
            let value = UInt8(truncatingIfNeeded: nibble & 0xF)
            return value < 10 ? UInt8(ascii: "0") &+ value : UInt8(ascii: "a") &+ (value &- 10)
        }
        buffer.writeMultipleIntegers(
            UInt8(ascii: "\\"),
            UInt8(ascii: "u"),
            hex(unit >> 12),
            hex(unit >> 8),
            hex(unit >> 4),
            hex(unit)
        )
    }

    /// Writes the escape JSON.stringify and json.dumps both use for an ASCII byte that needs one.
    private static func writeASCIIEscape(_ byte: UInt8, to buffer: inout ByteBuffer) {
        switch byte {
        case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
        case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
        case 0x08: buffer.writeStaticString("\\b")
        case 0x0C: buffer.writeStaticString("\\f")
        case 0x0A: buffer.writeStaticString("\\n")
        case 0x0D: buffer.writeStaticString("\\r")
        case 0x09: buffer.writeStaticString("\\t")
        default: writeUnicodeEscape(UInt16(byte), to: &buffer)
        }
    }

    /// Writes the UTF-8 bytes of `utf8` from the start, escaping `"`, `\` and C0 controls and copying each run
    /// between them at once; stops before the first byte ≥ 0x7F when `stopAtNonASCII` is set.
    /// - Returns: The index it stopped at (`utf8.count` when it wrote everything).
    private static func writeEscapedRuns(
        _ utf8: UnsafeRawBufferPointer, stopAtNonASCII: Bool, to buffer: inout ByteBuffer
    ) -> Int {
        var start = 0
        var index = 0
        let count = utf8.count
        while index < count {
            let byte = utf8[index]
            if stopAtNonASCII && byte >= 0x7F { break }
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                if start < index {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[start..<index]))
                }
                writeASCIIEscape(byte, to: &buffer)
                start = index + 1
            }
            index += 1
        }
        if start < index {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[start..<index]))
        }
        return index
    }

    /// JSON.stringify's string form: escapes `"`, `\` and C0 controls; everything else raw UTF-8.
    static func writeJavaScriptString(_ text: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            _ = writeEscapedRuns(UnsafeRawBufferPointer(utf8), stopAtNonASCII: false, to: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// json.dumps's string form with ensure_ascii: only printable ASCII raw, everything else escaped,
    /// characters beyond the BMP as a surrogate pair.
    static func writePythonString(_ text: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        // Fast path: runs of printable ASCII are written with one copy each (one byte at a time was the worker's
        // hottest spot in a profile); the first non-ASCII byte hands the rest to the scalar loop below.
        var text = text
        var remainder: Substring?
        text.withUTF8 { utf8Typed in
            let utf8 = UnsafeRawBufferPointer(utf8Typed)
            let stop = writeEscapedRuns(utf8, stopAtNonASCII: true, to: &buffer)
            if stop < utf8.count {
                remainder = Substring(decoding: UnsafeRawBufferPointer(rebasing: utf8[stop...]), as: UTF8.self)
            }
        }
        guard let remainder else {
            buffer.writeInteger(UInt8(ascii: "\""))
            return
        }
        for scalar in remainder.unicodeScalars {
            let value = scalar.value
            if value >= 0x20 && value < 0x7F {
                if value == 0x22 || value == 0x5C {
                    writeASCIIEscape(UInt8(value), to: &buffer)
                } else {
                    buffer.writeInteger(UInt8(value))
                }
            } else if value < 0x20 {
                writeASCIIEscape(UInt8(value), to: &buffer)
            } else if value <= 0xFFFF {
                writeUnicodeEscape(UInt16(value), to: &buffer)
            } else {
                let offset = value - 0x10000
                writeUnicodeEscape(UInt16(0xD800 + (offset >> 10)), to: &buffer)
                writeUnicodeEscape(UInt16(0xDC00 + (offset & 0x3FF)), to: &buffer)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// A quick walk that counts binary attachments and estimates the compact size, so the encoder can write the
    /// header first and reserve capacity once.
    static func measure(_ value: JSONValue, binaryCount: inout Int, estimatedSize: inout Int) {
        switch value {
        case .null, .bool:
            estimatedSize += 5
        case .int, .double:
            estimatedSize += 12
        case .string(let text):
            estimatedSize += text.utf8.count + 2
        case .array(let elements):
            estimatedSize += 2 + elements.count
            for element in elements {
                measure(element, binaryCount: &binaryCount, estimatedSize: &estimatedSize)
            }
        case .object(let pairs):
            estimatedSize += 2
            for pair in pairs {
                estimatedSize += pair.key.utf8.count + 4
                measure(pair.value, binaryCount: &binaryCount, estimatedSize: &estimatedSize)
            }
        case .binary:
            binaryCount += 1
            estimatedSize += 28
        }
    }
}

extension JSONValue {
    /// Appends the compact JSON text of this value, byte for byte as JavaScript's `JSON.stringify` writes it.
    ///
    /// Strings escape `"`, `\` and control characters (`\b \f \n \r \t`, others as `\u00xx`) and keep every other
    /// character as raw UTF-8. Numbers: integers in full; doubles as JavaScript's `String(number)` (shortest
    /// round trip, `1` not `1.0`, `1e+21`, `1e-7`); NaN and ±Infinity as `null`. `.binary` is not JSON and is
    /// written as `null`: send binary through ``SocketIOPacket/encode(into:)``, which writes placeholders.
    /// - Parameter buffer: The buffer to append to.
    public func write(to buffer: inout ByteBuffer) {
        var writer = JSONWriter(style: .javaScript)
        writer.write(self, to: &buffer)
    }

    /// The compact JSON text of this value, as `JSON.stringify` writes it (see ``write(to:)``).
    public var jsonString: String {
        var buffer = ByteBuffer()
        self.write(to: &buffer)
        return String(buffer: buffer)
    }

    /// Appends the JSON text of this value exactly as Python's `json.dumps(value)` writes it with its defaults.
    ///
    /// Separators `", "` and `": "`; `ensure_ascii=True`, so every character outside printable ASCII is written
    /// as `\uxxxx` (lowercase hex, a surrogate pair beyond U+FFFF); floats as Python's `repr` (`1.0`, `1e+16`,
    /// `1.5e-07`, `NaN`, `Infinity`). This is what python-socketio publishes to Redis. `.binary` is written as
    /// `null`.
    /// - Parameter buffer: The buffer to append to.
    public func writePythonJSON(to buffer: inout ByteBuffer) {
        var writer = JSONWriter(style: .python)
        writer.write(self, to: &buffer)
    }

    /// The JSON text of this value as Python's `json.dumps(value)` writes it (see ``writePythonJSON(to:)``).
    public var pythonJSONString: String {
        var buffer = ByteBuffer()
        self.writePythonJSON(to: &buffer)
        return String(buffer: buffer)
    }
}

/// A fixed-size window of writable bytes that the hot Python-JSON path stores into directly, without a
/// `ByteBuffer` call per piece (each such call pays uniqueness and exclusivity checks).
///
/// Every store is bounds-checked: what does not fit is not written and `overflowed` is set, so the caller can
/// retry with a larger window (the bytes written so far are then to be discarded).
struct RawPythonJSONOutput {
    private let base: UnsafeMutableRawPointer?
    private let capacity: Int
    /// The bytes written so far.
    private(set) var count = 0
    /// Something did not fit in the window; the output is incomplete.
    private(set) var overflowed = false
    /// A `.binary` value was met (written as `null`, which is not what a binary emit publishes).
    private(set) var sawBinary = false

    init(_ window: UnsafeMutableRawBufferPointer) {
        self.base = window.baseAddress
        self.capacity = self.base == nil ? 0 : window.count
    }

    /// Whether `bytes` more fit; marks the output overflowed when not.
    @inline(__always)
    private mutating func room(_ bytes: Int) -> Bool {
        if bytes <= self.capacity &- self.count { return true }
        self.overflowed = true
        return false
    }

    @inline(__always)
    mutating func write(_ byte: UInt8) {
        guard self.room(1) else { return }
        self.base.unsafelyUnwrapped.storeBytes(of: byte, toByteOffset: self.count, as: UInt8.self)
        self.count &+= 1
    }

    @inline(__always)
    mutating func write(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        guard self.room(length) else { return }
        (self.base.unsafelyUnwrapped + self.count).copyMemory(from: text.utf8Start, byteCount: length)
        self.count &+= length
    }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0, self.room(bytes.count) else { return }
        (self.base.unsafelyUnwrapped + self.count).copyMemory(from: source, byteCount: bytes.count)
        self.count &+= bytes.count
    }

    mutating func writeInteger(_ number: Int64) {
        if number >= 0 && number < 10 {
            self.write(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: number))
            return
        }
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &scratch) { raw in
            var index = raw.count
            var magnitude = number.magnitude
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if number < 0 {
                index -= 1
                raw[index] = UInt8(ascii: "-")
            }
            self.write(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }

    private mutating func writeUnicodeEscape(_ unit: UInt32) {
        @inline(__always) func hex(_ nibble: UInt32) -> UInt8 {
            let value = UInt8(truncatingIfNeeded: nibble & 0xF)
            return value < 10 ? UInt8(ascii: "0") &+ value : UInt8(ascii: "a") &+ (value &- 10)
        }
        guard self.room(6) else { return }
        let target = self.base.unsafelyUnwrapped + self.count
        target.storeBytes(of: UInt8(ascii: "\\"), as: UInt8.self)
        target.storeBytes(of: UInt8(ascii: "u"), toByteOffset: 1, as: UInt8.self)
        target.storeBytes(of: hex(unit >> 12), toByteOffset: 2, as: UInt8.self)
        target.storeBytes(of: hex(unit >> 8), toByteOffset: 3, as: UInt8.self)
        target.storeBytes(of: hex(unit >> 4), toByteOffset: 4, as: UInt8.self)
        target.storeBytes(of: hex(unit), toByteOffset: 5, as: UInt8.self)
        self.count &+= 6
    }

    /// The escape json.dumps writes for an ASCII byte that needs one (`"`, `\`, C0 controls, DEL).
    private mutating func writeASCIIEscape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): self.write("\\\"")
        case UInt8(ascii: "\\"): self.write("\\\\")
        case 0x08: self.write("\\b")
        case 0x0C: self.write("\\f")
        case 0x0A: self.write("\\n")
        case 0x0D: self.write("\\r")
        case 0x09: self.write("\\t")
        default: self.writeUnicodeEscape(UInt32(byte))
        }
    }

    /// json.dumps's string form with ensure_ascii (same bytes as ``JSONWriter/writePythonString(_:to:)``).
    mutating func writePythonString(_ text: String) {
        self.write(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8Typed in
            let utf8 = UnsafeRawBufferPointer(utf8Typed)
            let count = utf8.count
            var start = 0
            var index = 0
            // Bytes before `wordsFrom` are looked at one by one (an 8-byte word there needed an escape).
            var wordsFrom = 0
            while index < count {
                if index >= wordsFrom && index &+ 8 <= count {
                    if Self.isPlainWord(utf8.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                        index &+= 8
                        continue
                    }
                    wordsFrom = index &+ 8
                }
                let byte = utf8[index]
                if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                    index &+= 1
                    continue
                }
                if start < index {
                    self.write(UnsafeRawBufferPointer(rebasing: utf8[start..<index]))
                }
                if byte < 0x80 {
                    self.writeASCIIEscape(byte)
                    index &+= 1
                } else {
                    // A multi-byte UTF-8 sequence (the string is valid UTF-8): one scalar, escaped as json.dumps does.
                    var scalar: UInt32
                    let length: Int
                    if byte < 0xE0 {
                        scalar = UInt32(byte & 0x1F)
                        length = 2
                    } else if byte < 0xF0 {
                        scalar = UInt32(byte & 0x0F)
                        length = 3
                    } else {
                        scalar = UInt32(byte & 0x07)
                        length = 4
                    }
                    for offset in 1..<length {
                        scalar = (scalar << 6) | UInt32(utf8[index &+ offset] & 0x3F)
                    }
                    if scalar <= 0xFFFF {
                        self.writeUnicodeEscape(scalar)
                    } else {
                        let offset = scalar &- 0x10000
                        self.writeUnicodeEscape(0xD800 &+ (offset >> 10))
                        self.writeUnicodeEscape(0xDC00 &+ (offset & 0x3FF))
                    }
                    index &+= length
                }
                start = index
            }
            if start < count {
                self.write(UnsafeRawBufferPointer(rebasing: utf8[start..<count]))
            }
        }
        self.write(UInt8(ascii: "\""))
    }

    /// Whether none of the 8 bytes in `word` needs escaping: all printable ASCII (0x20…0x7E) other than `"`
    /// and `\`.
    @inline(__always)
    private static func isPlainWord(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & highs }
        let below0x20 = (word &- ones &* 0x20) & ~word & highs
        let special =
            hasZeroByte(word ^ (ones &* 0x22)) | hasZeroByte(word ^ (ones &* 0x5C)) | hasZeroByte(word ^ (ones &* 0x7F))
        return (below0x20 | (word & highs) | special) == 0
    }

    /// json.dumps of `value` (same bytes as ``JSONValue/writePythonJSON(to:)``; `.binary` as `null`, and
    /// `sawBinary` set).
    mutating func writePython(_ value: JSONValue) {
        switch value {
        case .binary:
            self.sawBinary = true
            self.write("null")
        case .null:
            self.write("null")
        case .bool(let flag):
            if flag { self.write("true") } else { self.write("false") }
        case .int(let number):
            self.writeInteger(number)
        case .double(let number):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(24)
            JSONNumberFormatting.writePython(number, to: &bytes)
            bytes.withUnsafeBytes { self.write($0) }
        case .string(let text):
            self.writePythonString(text)
        case .array(let elements):
            self.write(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { self.write(", ") }
                first = false
                self.writePython(element)
            }
            self.write(UInt8(ascii: "]"))
        case .object(let pairs):
            self.write(UInt8(ascii: "{"))
            var first = true
            for pair in pairs {
                if !first { self.write(", ") }
                first = false
                self.writePythonString(pair.key)
                self.write(": ")
                self.writePython(pair.value)
            }
            self.write(UInt8(ascii: "}"))
        }
    }
}

extension JSONWriter {
    /// The most bytes `json.dumps` (ensure_ascii) can write for a string of `utf8Count` UTF-8 bytes: every byte
    /// escaped as `\u00xx`, quotes included. (Multi-byte characters take at most 6 bytes per input byte too.)
    @inline(__always)
    static func pythonStringBound(utf8Count: Int) -> Int { utf8Count &* 6 &+ 2 }

    /// An upper bound of the bytes `writePythonJSON` writes for `value`, or `nil` when it holds binary data.
    static func pythonBound(of value: JSONValue) -> Int? {
        switch value {
        case .null: return 4
        case .bool: return 5
        case .int: return 20
        case .double: return 32
        case .string(let text): return Self.pythonStringBound(utf8Count: text.utf8.count)
        case .array(let elements):
            var total = 2 &+ 2 &* elements.count
            for element in elements {
                guard let size = Self.pythonBound(of: element) else { return nil }
                total &+= size
            }
            return total
        case .object(let pairs):
            var total = 2 &+ 4 &* pairs.count
            for pair in pairs {
                guard let size = Self.pythonBound(of: pair.value) else { return nil }
                total &+= Self.pythonStringBound(utf8Count: pair.key.utf8.count) &+ size
            }
            return total
        case .binary:
            return nil
        }
    }
}
