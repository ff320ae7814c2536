public import NIOCore

/// The compact JSON writer behind `write(to:)`, `writePythonJSON(to:)`, the Socket.IO encoder and the worker's
/// emit encoder.
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
    /// A `.binary` value was met (written as `null` when not collecting attachments).
    private(set) var sawBinary = false

    init(style: Style, collectingAttachments: Bool = false) {
        self.style = style
        self.attachments = collectingAttachments ? [] : nil
    }

    mutating func write<Output: JSONOutput>(_ value: JSONValue, to output: inout Output) {
        switch self.style {
        case .javaScript: self.write(value, in: JavaScriptForm.self, to: &output)
        case .python: self.write(value, in: PythonForm.self, to: &output)
        }
    }

    /// Writes `value` in `Form`, which is `style` as a type: specialized for each, the style costs no branch.
    mutating func write<Form: JSONForm, Output: JSONOutput>(
        _ value: JSONValue,
        in form: Form.Type,
        to output: inout Output
    ) {
        switch value {
        case .null:
            output.put("null")
        case .bool(let flag):
            if flag { output.put("true") } else { output.put("false") }
        case .int(let number):
            Self.writeInteger(number, to: &output)
        case .double(let number):
            Self.writeDouble(number, style: Form.style, to: &output)
        case .string(let text):
            Self.writeString(text, in: form, to: &output)
        case .array(let elements):
            output.put(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { Self.writeItemSeparator(in: form, to: &output) }
                first = false
                self.write(element, in: form, to: &output)
            }
            output.put(UInt8(ascii: "]"))
        case .object(let pairs):
            output.put(UInt8(ascii: "{"))
            var first = true
            for pair in pairs {
                if !first { Self.writeItemSeparator(in: form, to: &output) }
                first = false
                Self.writeString(pair.key, in: form, to: &output)
                switch Form.style {
                case .javaScript: output.put(UInt8(ascii: ":"))
                case .python: output.put(": ")
                }
                self.write(pair.value, in: form, to: &output)
            }
            output.put(UInt8(ascii: "}"))
        case .binary(let bytes):
            self.sawBinary = true
            if self.attachments != nil {
                let number = self.attachments!.count
                self.attachments!.append(bytes)
                switch Form.style {
                case .javaScript: output.put("{\"_placeholder\":true,\"num\":")
                case .python: output.put("{\"_placeholder\": true, \"num\": ")
                }
                Self.writeInteger(Int64(number), to: &output)
                output.put(UInt8(ascii: "}"))
            } else {
                output.put("null")
            }
        }
    }

    @inline(__always)
    private static func writeString<Form: JSONForm, Output: JSONOutput>(
        _ text: String,
        in form: Form.Type,
        to output: inout Output
    ) {
        switch Form.style {
        case .javaScript: Self.writeJavaScriptString(text, to: &output)
        case .python: Self.writePythonString(text, to: &output)
        }
    }

    @inline(__always)
    private static func writeItemSeparator<Form: JSONForm, Output: JSONOutput>(
        in form: Form.Type,
        to output: inout Output
    ) {
        switch Form.style {
        case .javaScript: output.put(UInt8(ascii: ","))
        case .python: output.put(", ")
        }
    }

    static func writeInteger<Output: JSONOutput>(_ number: Int64, to output: inout Output) {
        if number >= 0 && number < 10 {
            output.put(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: number))
            return
        }
        DecimalText.withDigits(of: number) { output.put($0) }
    }

    static func writeDouble<Output: JSONOutput>(_ number: Double, style: Style, to output: inout Output) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        switch style {
        case .javaScript: JSONNumberFormatting.writeJavaScript(number, to: &bytes)
        case .python: JSONNumberFormatting.writePython(number, to: &bytes)
        }
        bytes.withUnsafeBytes { output.put($0) }
    }

    /// JSON.stringify's string form: escapes `"`, `\` and C0 controls; everything else raw UTF-8.
    static func writeJavaScriptString<Output: JSONOutput>(_ text: String, to output: inout Output) {
        var text = text
        text.withUTF8 { Self.writeEscapedString(UnsafeRawBufferPointer($0), asciiOnly: false, to: &output) }
    }

    /// json.dumps's string form with ensure_ascii: only printable ASCII raw, everything else escaped,
    /// characters beyond the BMP as a surrogate pair.
    static func writePythonString<Output: JSONOutput>(_ text: String, to output: inout Output) {
        var text = text
        text.withUTF8 { Self.writeEscapedString(UnsafeRawBufferPointer($0), asciiOnly: true, to: &output) }
    }

    /// The UTF-8 text `utf8` as a quoted JSON string: `"`, `\` and C0 controls escaped and, when `asciiOnly` is set
    /// (json.dumps's ensure_ascii), DEL and every non-ASCII character too (`\uxxxx`, a surrogate pair beyond
    /// U+FFFF). Runs that need no escape are copied at once, found 8 bytes at a time. Inlined into each caller, so
    /// `asciiOnly` is a constant there.
    @inline(__always)
    private static func writeEscapedString<Output: JSONOutput>(
        _ utf8: UnsafeRawBufferPointer,
        asciiOnly: Bool,
        to output: inout Output
    ) {
        output.put(UInt8(ascii: "\""))
        let count = utf8.count
        var start = 0
        var index = 0
        // Bytes before `wordsFrom` are looked at one by one (an 8-byte word there needed an escape).
        var wordsFrom = 0
        while index < count {
            if index >= wordsFrom && index &+ 8 <= count {
                let word = utf8.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if Self.isPlainWord(word, asciiOnly: asciiOnly) {
                    index &+= 8
                    continue
                }
                wordsFrom = index &+ 8
            }
            let byte = utf8[index]
            let plain = byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
            if plain && (!asciiOnly || byte < 0x7F) {
                index &+= 1
                continue
            }
            if start < index {
                output.put(UnsafeRawBufferPointer(rebasing: utf8[start..<index]))
            }
            if byte < 0x80 {
                Self.writeASCIIEscape(byte, to: &output)
                index &+= 1
            } else {
                // Only with `asciiOnly`: a multi-byte UTF-8 sequence (the string is valid UTF-8), one scalar.
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
                    Self.writeUnicodeEscape(scalar, to: &output)
                } else {
                    let offset = scalar &- 0x10000
                    Self.writeUnicodeEscape(0xD800 &+ (offset >> 10), to: &output)
                    Self.writeUnicodeEscape(0xDC00 &+ (offset & 0x3FF), to: &output)
                }
                index &+= length
            }
            start = index
        }
        if start < count {
            output.put(UnsafeRawBufferPointer(rebasing: utf8[start..<count]))
        }
        output.put(UInt8(ascii: "\""))
    }

    /// Whether none of the 8 bytes in `word` needs escaping: none is below 0x20, `"` or `\`, and with
    /// `asciiOnly` none is DEL or above.
    @inline(__always)
    private static func isPlainWord(_ word: UInt64, asciiOnly: Bool) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & highs }
        let below0x20 = (word &- ones &* 0x20) & ~word & highs
        var special = hasZeroByte(word ^ (ones &* 0x22)) | hasZeroByte(word ^ (ones &* 0x5C))
        if asciiOnly {
            special |= (word & highs) | hasZeroByte(word ^ (ones &* 0x7F))
        }
        return (below0x20 | special) == 0
    }

    /// Writes the escape JSON.stringify and json.dumps both use for an ASCII byte that needs one (json.dumps
    /// also for DEL, as `\u007f`).
    private static func writeASCIIEscape<Output: JSONOutput>(_ byte: UInt8, to output: inout Output) {
        switch byte {
        case UInt8(ascii: "\""): output.put("\\\"")
        case UInt8(ascii: "\\"): output.put("\\\\")
        case 0x08: output.put("\\b")
        case 0x0C: output.put("\\f")
        case 0x0A: output.put("\\n")
        case 0x0D: output.put("\\r")
        case 0x09: output.put("\\t")
        default: Self.writeUnicodeEscape(UInt32(byte), to: &output)
        }
    }

    /// `\u` and four lowercase hex digits of `unit` (below 0x10000).
    private static func writeUnicodeEscape<Output: JSONOutput>(_ unit: UInt32, to output: inout Output) {
        @inline(__always) func hex(_ nibble: UInt32) -> UInt8 {
            let value = UInt8(truncatingIfNeeded: nibble & 0xF)
            return value < 10 ? UInt8(ascii: "0") &+ value : UInt8(ascii: "a") &+ (value &- 10)
        }
        let escape = (UInt8(ascii: "\\"), UInt8(ascii: "u"), hex(unit >> 12), hex(unit >> 8), hex(unit >> 4), hex(unit))
        withUnsafeBytes(of: escape) { output.put($0) }
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
    package func writePythonJSON(to buffer: inout ByteBuffer) {
        var writer = JSONWriter(style: .python)
        writer.write(self, to: &buffer)
    }

    /// The JSON text of this value as Python's `json.dumps(value)` writes it (see ``writePythonJSON(to:)``).
    package var pythonJSONString: String {
        var buffer = ByteBuffer()
        self.writePythonJSON(to: &buffer)
        return String(buffer: buffer)
    }
}

/// A JSON text form as a type (``JSONWriter/Style`` known at compile time), so that the writer's code is
/// specialized for each.
protocol JSONForm {
    static var style: JSONWriter.Style { get }
}

/// `JSON.stringify`'s form.
enum JavaScriptForm: JSONForm {
    static var style: JSONWriter.Style { .javaScript }
}

/// `json.dumps`'s form.
enum PythonForm: JSONForm {
    static var style: JSONWriter.Style { .python }
}

/// Where the JSON writers put their bytes: a `ByteBuffer`, or ``RawJSONOutput``'s window on the worker's hot path.
/// The writers are generic over it and specialized for each, so the window pays no `ByteBuffer` call per piece.
protocol JSONOutput {
    mutating func put(_ byte: UInt8)
    mutating func put(_ bytes: UnsafeRawBufferPointer)
    mutating func put(_ text: StaticString)
}

extension ByteBuffer: JSONOutput {
    @inline(__always)
    mutating func put(_ byte: UInt8) { self.writeInteger(byte) }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) { self.writeBytes(bytes) }

    @inline(__always)
    mutating func put(_ text: StaticString) { self.writeStaticString(text) }
}

/// A fixed-size window of writable bytes that the hot Python-JSON path stores into directly, without a
/// `ByteBuffer` call per piece (each such call pays uniqueness and exclusivity checks).
///
/// Every store is bounds-checked: what does not fit is not written and `overflowed` is set, so the caller can
/// retry with a larger window (the bytes written so far are then to be discarded).
struct RawJSONOutput: JSONOutput {
    private let base: UnsafeMutableRawPointer?
    private let capacity: Int
    /// The bytes written so far.
    private(set) var count = 0
    /// Something did not fit in the window; the output is incomplete.
    private(set) var overflowed = false

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
    mutating func put(_ byte: UInt8) {
        guard self.room(1) else { return }
        self.base.unsafelyUnwrapped.storeBytes(of: byte, toByteOffset: self.count, as: UInt8.self)
        self.count &+= 1
    }

    @inline(__always)
    mutating func put(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        guard self.room(length) else { return }
        (self.base.unsafelyUnwrapped + self.count).copyMemory(from: text.utf8Start, byteCount: length)
        self.count &+= length
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0, self.room(bytes.count) else { return }
        (self.base.unsafelyUnwrapped + self.count).copyMemory(from: source, byteCount: bytes.count)
        self.count &+= bytes.count
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

/// The decimal text of an integer, written once for the JSON writers and the Redis command framing.
package enum DecimalText {
    /// Calls `body` with the decimal digits of `number` (a `-` first when it is negative), formed on the stack:
    /// no allocation. (Other modules call it rather than inline it: without package CMO, a `package` body is not
    /// serialized.)
    @inlinable @inline(__always)
    package static func withDigits(of number: Int64, _ body: (UnsafeRawBufferPointer) -> Void) {
        // Up to 20 bytes, written backwards into a fixed-size tuple.
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &scratch) { raw in
            var index = raw.count
            var magnitude = number.magnitude
            repeat {
                index &-= 1
                raw[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if number < 0 {
                index &-= 1
                raw[index] = UInt8(ascii: "-")
            }
            body(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }
}
