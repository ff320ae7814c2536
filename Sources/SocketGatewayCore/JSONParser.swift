public import NIOCore

/// A strict RFC 8259 recursive-descent parser over UTF-8 bytes.
///
/// Recursion depth is bounded by `maxDepth`; every loop advances through the input, so any input terminates.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var index: Int = 0
    private let maxDepth: Int
    /// Whether `NaN`, `Infinity` and `-Infinity` are numbers, as Python's `json.loads` reads them (and
    /// `json.dumps` writes them): python-socketio's pub/sub messages may hold them.
    private let allowsNonFiniteNumbers: Bool
    /// Reused for strings that contain escapes.
    private var scratch: [UInt8] = []

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, allowsNonFiniteNumbers: Bool = false) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.allowsNonFiniteNumbers = allowsNonFiniteNumbers
    }

    static func parse(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int,
        allowsNonFiniteNumbers: Bool = false
    ) -> Result<JSONValue, JSONParseError> {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth, allowsNonFiniteNumbers: allowsNonFiniteNumbers)
        do throws(JSONParseError) {
            return .success(try parser.parseDocument())
        } catch {
            return .failure(error)
        }
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        self.skipWhitespace()
        let value = try self.parseValue(depth: 0)
        self.skipWhitespace()
        if self.index < self.bytes.count {
            throw self.error(.trailingData, "expected the end of the input after the value, found \(self.found())")
        }
        return value
    }

    // MARK: Errors

    private func found(at position: Int? = nil) -> String {
        let position = position ?? self.index
        guard position < self.bytes.count else { return "the end of the input" }
        let byte = self.bytes[position]
        if byte >= 0x21 && byte < 0x7F {
            return "'\(Character(Unicode.Scalar(byte)))'"
        }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    private func error(_ code: JSONParseError.Code.Base, _ message: String, at position: Int? = nil) -> JSONParseError {
        JSONParseError(code: JSONParseError.Code(code), offset: position ?? self.index, message: message)
    }

    private func unexpected(_ expectation: String) -> JSONParseError {
        if self.index >= self.bytes.count {
            return self.error(.unexpectedEndOfInput, "expected \(expectation), found the end of the input")
        }
        return self.error(.unexpectedCharacter, "expected \(expectation), found \(self.found())")
    }

    // MARK: Values

    private mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard self.index < self.bytes.count else { throw self.unexpected("a value") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            return try self.parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            return try self.parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.expectLiteral("null")
            return .null
        case UInt8(ascii: "-")
        where self.allowsNonFiniteNumbers && self.index + 1 < self.bytes.count
            && self.bytes[self.index + 1] == UInt8(ascii: "I"):
            self.index += 1
            try self.expectLiteral("Infinity")
            return .double(-.infinity)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try self.parseNumber()
        case UInt8(ascii: "I") where self.allowsNonFiniteNumbers:
            try self.expectLiteral("Infinity")
            return .double(.infinity)
        case UInt8(ascii: "N") where self.allowsNonFiniteNumbers:
            try self.expectLiteral("NaN")
            return .double(.nan)
        default:
            throw self.unexpected("a value (object, array, string, number, true, false or null)")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let start = self.index
        let count = literal.utf8CodeUnitCount
        let pointer = literal.utf8Start
        for offset in 0..<count {
            guard self.index < self.bytes.count else {
                throw self.error(.unexpectedEndOfInput, "expected '\(literal)', found the end of the input")
            }
            guard self.bytes[self.index] == pointer[offset] else {
                throw self.error(
                    .unexpectedCharacter,
                    "expected '\(literal)' (started at byte \(start)), found \(self.found())"
                )
            }
            self.index += 1
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > self.maxDepth {
            throw self.error(
                .depthLimitExceeded,
                "arrays and objects are nested deeper than the limit of \(self.maxDepth)"
            )
        }
        self.index += 1  // [
        var elements: [JSONValue] = []
        self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            return .array(elements)
        }
        while true {
            self.skipWhitespace()
            elements.append(try self.parseValue(depth: depth))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.unexpected("',' or ']' in an array") }
            switch self.bytes[self.index] {
            case UInt8(ascii: ","):
                self.index += 1
            case UInt8(ascii: "]"):
                self.index += 1
                return .array(elements)
            default:
                throw self.unexpected("',' or ']' in an array")
            }
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > self.maxDepth {
            throw self.error(
                .depthLimitExceeded,
                "arrays and objects are nested deeper than the limit of \(self.maxDepth)"
            )
        }
        self.index += 1  // {
        var pairs: [(key: String, value: JSONValue)] = []
        self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            return .object(pairs)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.unexpected("a string key in an object")
            }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                throw self.unexpected("':' after an object key")
            }
            self.index += 1
            self.skipWhitespace()
            let value = try self.parseValue(depth: depth)
            pairs.append((key: key, value: value))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.unexpected("',' or '}' in an object") }
            switch self.bytes[self.index] {
            case UInt8(ascii: ","):
                self.index += 1
            case UInt8(ascii: "}"):
                self.index += 1
                return .object(pairs)
            default:
                throw self.unexpected("',' or '}' in an object")
            }
        }
    }

    // MARK: Numbers

    private func isDigit(_ position: Int) -> Bool {
        position < self.bytes.count && self.bytes[position] >= UInt8(ascii: "0")
            && self.bytes[position] <= UInt8(ascii: "9")
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = self.index
        var negative = false
        if self.bytes[self.index] == UInt8(ascii: "-") {
            negative = true
            self.index += 1
        }
        guard self.isDigit(self.index) else {
            if self.index >= self.bytes.count {
                throw self.error(.unexpectedEndOfInput, "expected a digit after '-', found the end of the input")
            }
            throw self.error(.invalidNumber, "expected a digit after '-', found \(self.found())")
        }
        // Integer part, accumulated as a negative magnitude so Int64.min fits.
        var accumulator: Int64 = 0
        var overflow = false
        if self.bytes[self.index] == UInt8(ascii: "0") {
            self.index += 1
            if self.isDigit(self.index) {
                throw self.error(.invalidNumber, "a number must not have a leading zero", at: self.index - 1)
            }
        } else {
            while self.isDigit(self.index) {
                let digit = Int64(self.bytes[self.index] &- UInt8(ascii: "0"))
                if !overflow {
                    let (times10, o1) = accumulator.multipliedReportingOverflow(by: 10)
                    let (next, o2) = times10.subtractingReportingOverflow(digit)
                    if o1 || o2 { overflow = true } else { accumulator = next }
                }
                self.index += 1
            }
        }
        var isInteger = true
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: ".") {
            isInteger = false
            self.index += 1
            guard self.isDigit(self.index) else {
                if self.index >= self.bytes.count {
                    throw self.error(.unexpectedEndOfInput, "expected a digit after '.', found the end of the input")
                }
                throw self.error(.invalidNumber, "expected a digit after '.', found \(self.found())")
            }
            while self.isDigit(self.index) { self.index += 1 }
        }
        if self.index < self.bytes.count && (self.bytes[self.index] | 0x20) == UInt8(ascii: "e") {
            isInteger = false
            self.index += 1
            if self.index < self.bytes.count
                && (self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-"))
            {
                self.index += 1
            }
            guard self.isDigit(self.index) else {
                if self.index >= self.bytes.count {
                    throw self.error(
                        .unexpectedEndOfInput,
                        "expected a digit in the exponent, found the end of the input"
                    )
                }
                throw self.error(.invalidNumber, "expected a digit in the exponent, found \(self.found())")
            }
            while self.isDigit(self.index) { self.index += 1 }
        }
        if isInteger && !overflow {
            if negative { return .int(accumulator) }
            if accumulator != Int64.min { return .int(-accumulator) }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
        guard let double = Double(text) else {
            throw self.error(.invalidNumber, "could not read the number '\(text)'", at: start)
        }
        return .double(double)
    }

    // MARK: Strings

    private static func hexValue(_ byte: UInt8) -> UInt16? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt16(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt16(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt16(byte &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }

    /// Reads the four hex digits after `\u`; `self.index` is at the first digit.
    private mutating func readHex4() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard self.index < self.bytes.count else {
                throw self.error(
                    .unexpectedEndOfInput,
                    "expected four hexadecimal digits after '\\u', found the end of the input"
                )
            }
            guard let digit = Self.hexValue(self.bytes[self.index]) else {
                throw self.error(
                    .invalidUnicodeEscape,
                    "expected four hexadecimal digits after '\\u', found \(self.found())"
                )
            }
            value = value << 4 | digit
            self.index += 1
        }
        return value
    }

    private mutating func appendScalar(_ value: UInt32) {
        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
        self.scratch.append(contentsOf: UTF8.encode(scalar)!)
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        let open = self.index
        self.index += 1  // "
        let contentStart = self.index
        var sawNonASCII = false
        // Fast path: no escapes.
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let content = UnsafeRawBufferPointer(rebasing: self.bytes[contentStart..<self.index])
                self.index += 1
                return try self.makeString(content, validate: sawNonASCII, start: contentStart)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 {
                throw self.error(
                    .controlCharacterInString,
                    "expected a character or '\"', found raw control character 0x\(String(byte, radix: 16, uppercase: true)) (escape it)"
                )
            }
            if byte >= 0x80 { sawNonASCII = true }
            self.index += 1
        }
        guard self.index < self.bytes.count else {
            throw self.error(
                .unexpectedEndOfInput,
                "expected '\"' to close the string that starts at byte \(open), found the end of the input"
            )
        }
        // Slow path: escapes.
        self.scratch.removeAll(keepingCapacity: true)
        self.scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: self.bytes[contentStart..<self.index]))
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                self.index += 1
                let result: Result<String, JSONParseError> = self.scratch.withUnsafeBytes { content in
                    do throws(JSONParseError) {
                        return .success(try self.makeString(content, validate: sawNonASCII, start: contentStart))
                    } catch {
                        return .failure(error)
                    }
                }
                return try result.get()
            }
            if byte < 0x20 {
                throw self.error(
                    .controlCharacterInString,
                    "expected a character or '\"', found raw control character 0x\(String(byte, radix: 16, uppercase: true)) (escape it)"
                )
            }
            if byte != UInt8(ascii: "\\") {
                if byte >= 0x80 { sawNonASCII = true }
                self.scratch.append(byte)
                self.index += 1
                continue
            }
            self.index += 1
            guard self.index < self.bytes.count else {
                throw self.error(
                    .unexpectedEndOfInput,
                    "expected an escape character after '\\', found the end of the input"
                )
            }
            let escape = self.bytes[self.index]
            self.index += 1
            switch escape {
            case UInt8(ascii: "\""): self.scratch.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): self.scratch.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): self.scratch.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): self.scratch.append(0x08)
            case UInt8(ascii: "f"): self.scratch.append(0x0C)
            case UInt8(ascii: "n"): self.scratch.append(0x0A)
            case UInt8(ascii: "r"): self.scratch.append(0x0D)
            case UInt8(ascii: "t"): self.scratch.append(0x09)
            case UInt8(ascii: "u"):
                let unit = try self.readHex4()
                switch unit {
                case 0xD800...0xDBFF:
                    // A high surrogate: combine with a following \uDC00-\uDFFF; alone it becomes U+FFFD, as a
                    // JavaScript string holding a lone surrogate does when it is written out as UTF-8.
                    if self.index + 1 < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "\\")
                        && self.bytes[self.index + 1] == UInt8(ascii: "u")
                    {
                        let save = self.index
                        self.index += 2
                        let low = try self.readHex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            self.appendScalar(0x10000 + (UInt32(unit - 0xD800) << 10) + UInt32(low - 0xDC00))
                        } else {
                            self.appendScalar(0xFFFD)
                            self.index = save  // reprocess the second escape on its own
                        }
                    } else {
                        self.appendScalar(0xFFFD)
                    }
                case 0xDC00...0xDFFF:
                    self.appendScalar(0xFFFD)
                default:
                    self.appendScalar(UInt32(unit))
                }
            default:
                throw self.error(
                    .invalidEscape,
                    "expected one of \" \\ / b f n r t u after '\\', found \(self.found(at: self.index - 1))",
                    at: self.index - 1
                )
            }
        }
        throw self.error(
            .unexpectedEndOfInput,
            "expected '\"' to close the string that starts at byte \(open), found the end of the input"
        )
    }

    private func makeString(
        _ content: UnsafeRawBufferPointer,
        validate: Bool,
        start: Int
    ) throws(JSONParseError) -> String {
        if !validate {
            return String(decoding: content, as: UTF8.self)
        }
        guard let string = String(validating: content, as: UTF8.self) else {
            throw self.error(
                .invalidUTF8,
                "expected valid UTF-8 in the string that starts at byte \(start - 1)",
                at: start
            )
        }
        return string
    }
}

// MARK: - Reading an object's members without building every value

/// One member of the top-level object that ``JSONParser/scanObject(_:maxDepth:skipping:)`` read.
struct JSONScannedMember {
    /// The key, unescaped.
    var key: String
    /// The value; `nil` for the values of skipped keys, which were checked but not built.
    var value: JSONValue?
    /// Where the value's bytes are, as offsets into the scanned bytes.
    var range: Range<Int>
    /// Whether the skipped value holds `NaN`, `Infinity` or `-Infinity` (never set for built values).
    var holdsNonFiniteNumbers: Bool
}

/// What ``JSONParser``'s loop over a top-level object's members does with each member's key and value: build
/// them, or only check them; the loop reads the braces, colons and commas around them. A generic parameter, so
/// that each reader is a specialisation of the loop of its own: nothing called through a table, nothing allocated.
private protocol JSONObjectMemberReader {
    /// What ``readKey(_:)`` makes of a key.
    associatedtype Key
    /// What ``readMember(key:_:)`` makes of a member.
    associatedtype Member

    /// Reads the key string whose opening quote is at the parser's index, and leaves the index past its closing
    /// quote.
    func readKey(_ parser: inout JSONParser) throws(JSONParseError) -> Key

    /// Reads the member's value at the parser's index (at depth 1, a member of the top-level object), and leaves
    /// the index past it.
    /// - Returns: The member, with where its value's bytes are.
    func readMember(key: Key, _ parser: inout JSONParser) throws(JSONParseError) -> Member
}

extension JSONParser {
    /// Reads a top-level JSON object member by member as Python's `json.loads` would (non-finite numbers
    /// allowed), building every value except those of `skippedKeys`, which are checked as strictly as
    /// `parse` checks them (grammar, escapes, UTF-8, depth) but not built.
    ///
    /// Whatever this accepts, `parse(_:maxDepth:allowsNonFiniteNumbers: true)` accepts as well, and the reverse.
    /// - Parameter visit: Called with each member in order (duplicates too), also when a later byte turns out to be
    ///   invalid: use what it saw only when this returns `true`.
    /// - Returns: Whether the bytes are one valid JSON object.
    static func scanObject(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int,
        skipping skippedKeys: [String],
        visit: (JSONScannedMember) -> Void
    ) -> Bool {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth, allowsNonFiniteNumbers: true)
        do throws(JSONParseError) {
            return try parser.readObjectMembers(BuildingMembers(skippedKeys: skippedKeys), visit: visit)
        } catch {
            return false
        }
    }

    /// Checks a top-level JSON object as ``scanObject(_:maxDepth:skipping:visit:)`` checks it (as `parse` would,
    /// non-finite numbers allowed), building nothing: neither its keys nor its values.
    /// - Parameter visit: Called with each member in order (duplicates too), also when a later byte turns out to be
    ///   invalid: where its key's characters are (between the quotes, escapes as written) and where its value is,
    ///   as offsets into `bytes`, and whether the value holds `NaN`, `Infinity` or `-Infinity`.
    /// - Returns: Whether the bytes are one valid JSON object.
    static func checkObject(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int,
        visit: (_ key: Range<Int>, _ value: Range<Int>, _ holdsNonFiniteNumbers: Bool) -> Void
    ) -> Bool {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth, allowsNonFiniteNumbers: true)
        do throws(JSONParseError) {
            return try parser.readObjectMembers(CheckingMembers()) {
                visit($0.key, $0.value, $0.holdsNonFiniteNumbers)
            }
        } catch {
            return false
        }
    }

    /// Reads a top-level object's braces, colons and commas (refusing what `parseObject` refuses, with its
    /// errors), and has `reader` read each member's key and value.
    /// - Parameter visit: Called with each member, in order, as `reader` made it.
    /// - Returns: `false` when the bytes do not start with an object (or `maxDepth` is below 1); `true` when they
    ///   are one valid object.
    private mutating func readObjectMembers<Reader: JSONObjectMemberReader>(
        _ reader: Reader,
        visit: (Reader.Member) -> Void
    ) throws(JSONParseError) -> Bool {
        self.skipWhitespace()
        guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "{"), self.maxDepth >= 1 else {
            return false
        }
        self.index += 1
        self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
        } else {
            members: while true {
                self.skipWhitespace()
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                    throw self.unexpected("a string key in an object")
                }
                let key = try reader.readKey(&self)
                self.skipWhitespace()
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                    throw self.unexpected("':' after an object key")
                }
                self.index += 1
                self.skipWhitespace()
                let member = try reader.readMember(key: key, &self)
                visit(member)
                self.skipWhitespace()
                guard self.index < self.bytes.count else { throw self.unexpected("',' or '}' in an object") }
                switch self.bytes[self.index] {
                case UInt8(ascii: ","):
                    self.index += 1
                case UInt8(ascii: "}"):
                    self.index += 1
                    break members
                default:
                    throw self.unexpected("',' or '}' in an object")
                }
            }
        }
        self.skipWhitespace()
        guard self.index == self.bytes.count else {
            throw self.error(.trailingData, "expected the end of the input after the value, found \(self.found())")
        }
        return true
    }

    /// For ``scanObject(_:maxDepth:skipping:visit:)``: builds each key, and each value but those of `skippedKeys`,
    /// which it checks without building.
    private struct BuildingMembers: JSONObjectMemberReader {
        let skippedKeys: [String]

        @inline(__always)
        func readKey(_ parser: inout JSONParser) throws(JSONParseError) -> String {
            try parser.parseString()
        }

        @inline(__always)
        func readMember(key: String, _ parser: inout JSONParser) throws(JSONParseError) -> JSONScannedMember {
            let start = parser.index
            if self.skippedKeys.contains(key) {
                let nonFinite = try parser.skipValue(depth: 1)
                return JSONScannedMember(
                    key: key,
                    value: nil,
                    range: start..<parser.index,
                    holdsNonFiniteNumbers: nonFinite
                )
            }
            let value = try parser.parseValue(depth: 1)
            return JSONScannedMember(key: key, value: value, range: start..<parser.index, holdsNonFiniteNumbers: false)
        }
    }

    /// For ``checkObject(_:maxDepth:visit:)``: builds nothing. A member is where its key's characters are (between
    /// the quotes) and where its value is, and whether the value holds `NaN`, `Infinity` or `-Infinity`.
    private struct CheckingMembers: JSONObjectMemberReader {
        @inline(__always)
        func readKey(_ parser: inout JSONParser) throws(JSONParseError) -> Range<Int> {
            let start = parser.index + 1
            try parser.skipString()
            return start..<(parser.index - 1)
        }

        @inline(__always)
        func readMember(
            key: Range<Int>,
            _ parser: inout JSONParser
        ) throws(JSONParseError) -> (key: Range<Int>, value: Range<Int>, holdsNonFiniteNumbers: Bool) {
            let start = parser.index
            let nonFinite = try parser.skipValue(depth: 1)
            return (key, start..<parser.index, nonFinite)
        }
    }

    /// Checks one value as `parseValue(depth:)` reads it, without building it.
    /// - Returns: Whether it holds `NaN`, `Infinity` or `-Infinity`.
    private mutating func skipValue(depth: Int) throws(JSONParseError) -> Bool {
        guard self.index < self.bytes.count else { throw self.unexpected("a value") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            return try self.skipContainer(depth: depth + 1)
        case UInt8(ascii: "\""):
            try self.skipString()
            return false
        case UInt8(ascii: "t"):
            try self.expectLiteral("true")
            return false
        case UInt8(ascii: "f"):
            try self.expectLiteral("false")
            return false
        case UInt8(ascii: "n"):
            try self.expectLiteral("null")
            return false
        case UInt8(ascii: "-")
        where self.allowsNonFiniteNumbers && self.index + 1 < self.bytes.count
            && self.bytes[self.index + 1] == UInt8(ascii: "I"):
            self.index += 1
            try self.expectLiteral("Infinity")
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try self.skipNumber()
            return false
        case UInt8(ascii: "I") where self.allowsNonFiniteNumbers:
            try self.expectLiteral("Infinity")
            return true
        case UInt8(ascii: "N") where self.allowsNonFiniteNumbers:
            try self.expectLiteral("NaN")
            return true
        default:
            throw self.unexpected("a value (object, array, string, number, true, false or null)")
        }
    }

    /// An array or an object, iteratively for its members and recursively for nested containers (bounded by
    /// `maxDepth`, as in `parseArray`/`parseObject`).
    private mutating func skipContainer(depth: Int) throws(JSONParseError) -> Bool {
        if depth > self.maxDepth {
            throw self.error(
                .depthLimitExceeded,
                "arrays and objects are nested deeper than the limit of \(self.maxDepth)"
            )
        }
        let isObject = self.bytes[self.index] == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        let what = isObject ? "an object" : "an array"
        self.index += 1
        self.skipWhitespace()
        if self.index < self.bytes.count && self.bytes[self.index] == close {
            self.index += 1
            return false
        }
        var nonFinite = false
        while true {
            self.skipWhitespace()
            if isObject {
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                    throw self.unexpected("a string key in an object")
                }
                try self.skipString()
                self.skipWhitespace()
                guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                    throw self.unexpected("':' after an object key")
                }
                self.index += 1
                self.skipWhitespace()
            }
            if try self.skipValue(depth: depth) { nonFinite = true }
            self.skipWhitespace()
            guard self.index < self.bytes.count else {
                throw self.unexpected("',' or '\(Character(Unicode.Scalar(close)))' in \(what)")
            }
            switch self.bytes[self.index] {
            case UInt8(ascii: ","):
                self.index += 1
            case close:
                self.index += 1
                return nonFinite
            default:
                throw self.unexpected("',' or '\(Character(Unicode.Scalar(close)))' in \(what)")
            }
        }
    }

    /// A number, by the grammar `parseNumber` follows (every such text converts).
    private mutating func skipNumber() throws(JSONParseError) {
        if self.bytes[self.index] == UInt8(ascii: "-") { self.index += 1 }
        guard self.isDigit(self.index) else { throw self.error(.invalidNumber, "expected a digit after '-'") }
        if self.bytes[self.index] == UInt8(ascii: "0") {
            self.index += 1
            if self.isDigit(self.index) {
                throw self.error(.invalidNumber, "a number must not have a leading zero", at: self.index - 1)
            }
        } else {
            while self.isDigit(self.index) { self.index += 1 }
        }
        if self.index < self.bytes.count && self.bytes[self.index] == UInt8(ascii: ".") {
            self.index += 1
            guard self.isDigit(self.index) else { throw self.error(.invalidNumber, "expected a digit after '.'") }
            while self.isDigit(self.index) { self.index += 1 }
        }
        if self.index < self.bytes.count && (self.bytes[self.index] | 0x20) == UInt8(ascii: "e") {
            self.index += 1
            if self.index < self.bytes.count
                && (self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-"))
            {
                self.index += 1
            }
            guard self.isDigit(self.index) else {
                throw self.error(.invalidNumber, "expected a digit in the exponent")
            }
            while self.isDigit(self.index) { self.index += 1 }
        }
    }

    /// A string, checked as `parseString` checks it (control characters, escapes, UTF-8), without building it.
    private mutating func skipString() throws(JSONParseError) {
        let open = self.index
        self.index += 1  // "
        var sawNonASCII = false
        while self.index < self.bytes.count {
            // Eight bytes at a time while they are printable ASCII other than a quote or a backslash (most of a
            // payload's strings): the byte loop below only sees the word that holds another byte.
            while self.index + 8 <= self.bytes.count,
                JSONStringWord.isPlainASCII(self.bytes.loadUnaligned(fromByteOffset: self.index, as: UInt64.self))
            {
                self.index += 8
            }
            guard self.index < self.bytes.count else { break }
            let byte = self.bytes[self.index]
            switch byte {
            case UInt8(ascii: "\""):
                self.index += 1
                if sawNonASCII {
                    try self.validateUTF8(from: open + 1, to: self.index - 1)
                }
                return
            case UInt8(ascii: "\\"):
                self.index += 1
                guard self.index < self.bytes.count else {
                    throw self.error(.unexpectedEndOfInput, "expected an escape character after '\\'")
                }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    // Any four hex digits: lone surrogates are read (as U+FFFD), like `parseString` does.
                    _ = try self.readHex4()
                default:
                    throw self.error(.invalidEscape, "invalid escape", at: self.index - 1)
                }
            case 0..<0x20:
                throw self.error(.controlCharacterInString, "raw control character in a string")
            default:
                if byte >= 0x80 { sawNonASCII = true }
                self.index += 1
            }
        }
        throw self.error(.unexpectedEndOfInput, "expected '\"' to close the string that starts at byte \(open)")
    }

    /// Checks that the raw bytes of a string (escapes are ASCII and pass) are well-formed UTF-8, as
    /// `String(validating:as:)` requires: no overlong forms, no surrogates, nothing above U+10FFFF.
    private func validateUTF8(from start: Int, to end: Int) throws(JSONParseError) {
        var position = start
        while position < end {
            let lead = self.bytes[position]
            if lead < 0x80 {
                position += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                high = 0x9F
            case 0xF0:
                length = 4
                low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                high = 0x8F
            default:
                throw self.error(.invalidUTF8, "expected valid UTF-8 in the string", at: position)
            }
            guard position + length <= end else {
                throw self.error(.invalidUTF8, "expected valid UTF-8 in the string", at: position)
            }
            let second = self.bytes[position + 1]
            guard second >= low && second <= high else {
                throw self.error(.invalidUTF8, "expected valid UTF-8 in the string", at: position)
            }
            var next = position + 2
            while next < position + length {
                guard self.bytes[next] & 0xC0 == 0x80 else {
                    throw self.error(.invalidUTF8, "expected valid UTF-8 in the string", at: position)
                }
                next += 1
            }
            position += length
        }
    }
}

extension JSONValue {
    /// Parses one JSON text (RFC 8259, strict) from the readable bytes of `buffer`.
    ///
    /// Integers without fraction or exponent that fit in 64 bits become `.int`, other numbers `.double` (huge
    /// exponents become ±infinity, as in JavaScript). Object keys keep their order, duplicates included. An
    /// escaped lone surrogate (`"\ud800"`) becomes U+FFFD. Whitespace may surround the value; anything else after
    /// it is an error.
    /// - Parameters:
    ///   - buffer: The JSON text in UTF-8. Its reader index is not moved.
    ///   - maxDepth: The deepest nesting of arrays and objects accepted.
    /// - Returns: The value.
    /// - Throws: `JSONParseError` with the byte offset and what was expected there.
    public static func parse(_ buffer: ByteBuffer, maxDepth: Int = 128) throws(JSONParseError) -> JSONValue {
        let result = buffer.withUnsafeReadableBytes { JSONParser.parse($0, maxDepth: maxDepth) }
        return try result.get()
    }

    /// Parses one JSON text from a string (see ``parse(_:maxDepth:)-(ByteBuffer,_)``).
    /// - Parameters:
    ///   - text: The JSON text.
    ///   - maxDepth: The deepest nesting of arrays and objects accepted.
    /// - Returns: The value.
    /// - Throws: `JSONParseError` with the byte offset (in UTF-8) and what was expected there.
    public static func parse(_ text: String, maxDepth: Int = 128) throws(JSONParseError) -> JSONValue {
        var text = text
        let result = text.withUTF8 { JSONParser.parse(UnsafeRawBufferPointer($0), maxDepth: maxDepth) }
        return try result.get()
    }

    /// Parses one JSON text from UTF-8 bytes (see ``parse(_:maxDepth:)-(ByteBuffer,_)``).
    /// - Parameters:
    ///   - bytes: The JSON text in UTF-8.
    ///   - maxDepth: The deepest nesting of arrays and objects accepted.
    /// - Returns: The value.
    /// - Throws: `JSONParseError` with the byte offset and what was expected there.
    public static func parse(_ bytes: some Sequence<UInt8>, maxDepth: Int = 128) throws(JSONParseError) -> JSONValue {
        let result =
            bytes.withContiguousStorageIfAvailable { JSONParser.parse(UnsafeRawBufferPointer($0), maxDepth: maxDepth) }
            ?? Array(bytes).withUnsafeBytes { JSONParser.parse($0, maxDepth: maxDepth) }
        return try result.get()
    }

    /// Parses one JSON text from UTF-8 bytes (see ``parse(_:maxDepth:)-(ByteBuffer,_)``).
    /// - Parameters:
    ///   - bytes: The JSON text in UTF-8.
    ///   - maxDepth: The deepest nesting of arrays and objects accepted.
    /// - Returns: The value.
    /// - Throws: `JSONParseError` with the byte offset and what was expected there.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 128) throws(JSONParseError) -> JSONValue {
        let result = bytes.withUnsafeBytes { JSONParser.parse($0, maxDepth: maxDepth) }
        return try result.get()
    }

    /// Parses one JSON text as Python's `json.loads` reads it: RFC 8259 plus `NaN`, `Infinity` and `-Infinity`
    /// (which `json.dumps` writes for non-finite floats, so python-socketio may publish them).
    /// - Parameters:
    ///   - buffer: The JSON text in UTF-8. Its reader index is not moved.
    ///   - maxDepth: The deepest nesting of arrays and objects accepted.
    /// - Returns: The value; the non-finite constants become non-finite `.double`s.
    /// - Throws: `JSONParseError` with the byte offset and what was expected there.
    package static func parsePythonJSON(_ buffer: ByteBuffer, maxDepth: Int) throws(JSONParseError) -> JSONValue {
        let result = buffer.withUnsafeReadableBytes {
            JSONParser.parse($0, maxDepth: maxDepth, allowsNonFiniteNumbers: true)
        }
        return try result.get()
    }
}
