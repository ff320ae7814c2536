import NIOCore
import SocketGatewayCore
import Testing

/// `PubSubEmitTarget.scan` reads an emit's namespace, rooms and host id from its bytes without reading the rest. It
/// must agree with `PubSubMessage.decode` on every message that `decode` accepts (or step aside with `nil`, leaving
/// the message to `read`), and never name a target for a message that is not an emit. Where it names one,
/// `PubSubMessage.read(_:scanned:)` (which reads on from the target) returns or throws what `read` does.
@Suite struct PubSubEmitTargetTests {
    /// What `decode` makes of `bytes`, as a target: `nil` for a message that is not an emit or does not decode.
    static func reference(_ bytes: ByteBuffer) -> (namespace: String, room: PubSubNames, hostID: String)? {
        guard case .emit(let emit)? = try? PubSubMessage.decode(bytes) else { return nil }
        return (emit.namespace, emit.room, emit.hostID)
    }

    /// `scan` agrees with `decode`: where both read the message, the same target; `scan` names no target for a
    /// message that `decode` reads as another method. With `complete`, `scan` must read every emit `decode` reads.
    static func expectAgreement(
        _ text: [UInt8],
        complete: Bool,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let bytes = ByteBuffer(bytes: text)
        let scanned = PubSubEmitTarget.scan(bytes)
        let decoded = Result { () throws(PubSubMessageError) in try PubSubMessage.decode(bytes) }
        // The label is made only for a failure: this runs tens of thousands of times per test.
        func label() -> String { String(decoding: text, as: UTF8.self) }
        if let scanned {
            Self.expectReadAgreement(bytes, scanned: scanned, label: label, sourceLocation: sourceLocation)
        }
        switch (scanned, decoded) {
        case (let target?, .success(.emit(let emit))):
            let hostID = target.hostID(in: bytes)
            let agrees =
                target.namespace == emit.namespace && target.room == emit.room && hostID == emit.hostID
                && target.isSent(byHost: emit.hostID, in: bytes) && !target.isSent(byHost: emit.hostID + "x", in: bytes)
            if !agrees {
                Issue.record(
                    """
                    scan and decode disagree: namespace \(target.namespace) / \(emit.namespace), room \(target.room) / \
                    \(String(describing: emit.room)), host \(String(describing: hostID)) / \(emit.hostID): \(label())
                    """,
                    sourceLocation: sourceLocation
                )
            }
        case (_?, .success(let other)):
            Issue.record(
                "scan named a target for a \(other.method) message: \(label())",
                sourceLocation: sourceLocation
            )
        case (nil, .success(.emit)):
            if complete {
                Issue.record("scan did not read an emit that decode reads: \(label())", sourceLocation: sourceLocation)
            }
        case (_, .failure), (nil, .success):
            // A malformed message: with a target it is skipped when that target names nobody here, and refused by
            // `read` (the same error as `decode`) when it is for someone here.
            break
        }
    }

    /// `read(_:scanned:)` with the target `scan` found agrees with `read`: the same message (the same fields, the
    /// same packet written from the published arguments) or the same error.
    static func expectReadAgreement(
        _ bytes: ByteBuffer,
        scanned target: PubSubEmitTarget,
        label: () -> String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let whole = Result { () throws(PubSubMessageError) in try PubSubMessage.read(bytes) }
        let fromTarget = Result { () throws(PubSubMessageError) in try PubSubMessage.read(bytes, scanned: target) }
        switch (whole, fromTarget) {
        case (.success(.emit(let read)), .success(let reread)):
            var agrees =
                read.event == reread.event && read.namespace == reread.namespace && read.room == reread.room
                && read.skipSid == reread.skipSid && read.callback == reread.callback && read.hostID == reread.hostID
                && read.isSent(byHost: read.hostID) && reread.isSent(byHost: read.hostID)
                && !reread.isSent(byHost: read.hostID + "x") && read.copiesArguments == reread.copiesArguments
                && (try? read.decoded()) == (try? reread.decoded())
            if agrees && read.copiesArguments {
                var packet = ByteBuffer()
                read.writeEventPacket(into: &packet)
                var repacket = ByteBuffer()
                reread.writeEventPacket(into: &repacket)
                agrees = packet == repacket
            }
            if !agrees {
                Issue.record(
                    "read and read(scanned:) disagree: \(read.event) / \(reread.event): \(label())",
                    sourceLocation: sourceLocation
                )
            }
        case (.failure(let error), .failure(let reerror)):
            if error != reerror {
                Issue.record(
                    "read and read(scanned:) refuse differently: \(error) / \(reerror): \(label())",
                    sourceLocation: sourceLocation
                )
            }
        default:
            Issue.record(
                "read and read(scanned:) disagree: \(whole) / \(fromTarget): \(label())",
                sourceLocation: sourceLocation
            )
        }
    }

    static let host = "48fd94e6b4914e3aad7abecff8f06139"

    /// The members of an emit as python-socketio writes them, as (key, JSON value) pairs.
    static func members(
        room: String = #""r1""#,
        namespace: String = #""/""#,
        data: String = #"[{"t": 1, "room": "inner", "method": "disconnect"}]"#,
        hostID: String? = nil
    ) -> [(String, String)] {
        [
            ("method", #""emit""#), ("event", #""tick""#), ("data", data), ("binary", "false"),
            ("namespace", namespace), ("room", room), ("skip_sid", "null"), ("callback", "null"),
            ("host_id", hostID ?? "\"\(Self.host)\""),
        ]
    }

    static func object(_ members: [(String, String)], separator: String = ", ", colon: String = ": ") -> String {
        "{" + members.map { "\"\($0.0)\"\(colon)\($0.1)" }.joined(separator: separator) + "}"
    }

    @Test(arguments: PubSubFixtures.names)
    func fixturesAgreeWithDecode(_ name: String) throws {
        let bytes = try PubSubFixtures.bytes(name)
        Self.expectAgreement(Array(bytes.readableBytesView), complete: true)
        let isEmit: Bool
        if case .emit = try PubSubMessage.decode(bytes) { isEmit = true } else { isEmit = false }
        #expect((PubSubEmitTarget.scan(bytes) != nil) == isEmit, "\(name)")
    }

    @Test func readsTheTargetOfAnEmit() throws {
        let bytes = ByteBuffer(string: Self.object(Self.members()))
        let target = try #require(PubSubEmitTarget.scan(bytes))
        #expect(target.namespace == "/" && target.room == .one("r1"))
        #expect(target.hostID(in: bytes) == Self.host)
        #expect(target.isSent(byHost: Self.host, in: bytes))
        #expect(!target.isSent(byHost: String(Self.host.dropLast()), in: bytes))
        #expect(!target.isSent(byHost: "", in: bytes))
    }

    /// The four keys that matter (`method`, `namespace`, `room`, `host_id`) in every order and at every place among
    /// the others, with python's separators, compact ones and extra whitespace.
    @Test func everyKeyOrder() async {
        let members = Self.members(room: #"["r1", "r2"]"#, namespace: #""/chat""#)
        let matter = members.filter { ["method", "namespace", "room", "host_id"].contains($0.0) }
        let others = members.filter { !["method", "namespace", "room", "host_id"].contains($0.0) }
        var count = 0
        for places in Self.combinations(of: 4, from: Array(0..<members.count)) {
            await Task.yield()
            for order in Self.permutations(Array(0..<4)) {
                var ordered: [(String, String)] = []
                var rest = others[...]
                for slot in 0..<members.count {
                    if let which = places.firstIndex(of: slot) {
                        ordered.append(matter[order[which]])
                    } else {
                        ordered.append(rest.removeFirst())
                    }
                }
                for (separator, colon) in [(", ", ": "), (",", ":"), (" ,\n\t", " \r\n: ")] {
                    let text = " \n" + Self.object(ordered, separator: separator, colon: colon) + "\t\r\n "
                    Self.expectAgreement(Array(text.utf8), complete: true)
                    count += 1
                }
            }
        }
        #expect(count == 126 * 24 * 3)
        // Only the keys that matter, alone and in every order.
        let alone = [("method", #""emit""#), ("namespace", #""/n""#), ("room", #""r""#), ("host_id", #""h""#)]
        for order in Self.permutations(Array(alone.indices)) {
            let text = Self.object(order.map { alone[$0] })
            let bytes = ByteBuffer(string: text)
            let target = PubSubEmitTarget.scan(bytes)
            #expect(target?.namespace == "/n" && target?.room == .one("r") && target?.hostID(in: bytes) == "h")
        }
    }

    /// Missing and `null` fields read as `decode` reads them: `/`, no room (the namespace), host id `""`.
    @Test func missingAndNullFields() throws {
        for text in [
            #"{"method": "emit", "event": "e", "data": []}"#,
            #"{"method": "emit", "event": "e", "data": [], "namespace": null, "room": null, "host_id": null}"#,
        ] {
            let bytes = ByteBuffer(string: text)
            let target = try #require(PubSubEmitTarget.scan(bytes))
            #expect(target.namespace == "/" && target.room == .none && target.hostID(in: bytes) == "")
            #expect(target.isSent(byHost: "", in: bytes))
            Self.expectAgreement(Array(text.utf8), complete: true)
        }
    }

    /// Escapes and non-ASCII text in the values read: decoded as JSON (`ensure_ascii` escapes, raw UTF-8, escaped
    /// quotes and backslashes), lists of rooms included.
    @Test func escapesAndUnicodeInValues() throws {
        let cases: [(room: String, namespace: String, hostID: String, PubSubNames, String, String)] = [
            (#""caf\u00e9""#, #""/\u00e9""#, #""h\u00e9""#, .one("café"), "/é", "hé"),
            (#""日本""#, #""/日""#, #""h日""#, .one("日本"), "/日", "h日"),
            (#""a\"b\\c\/""#, #""/\n""#, #""a\"b""#, .one("a\"b\\c/"), "/\n", "a\"b"),
            (#""\ud83d\ude00""#, #""/""#, #""\u0068""#, .one("😀"), "/", "h"),
            (#"["x\u00e9", "y\"]", "\u005b"]"#, #""/""#, #""h""#, .list(["xé", "y\"]", "["]), "/", "h"),
            (#"[ "a" , "b" ]"#, #""/""#, #""h""#, .list(["a", "b"]), "/", "h"),
            (#"[]"#, #""/""#, #""h""#, .list([]), "/", "h"),
            (#"["only"]"#, #""/""#, #""h""#, .list(["only"]), "/", "h"),
            (#""""#, #""""#, #""""#, .one(""), "", ""),
            (#""del\#u{7F}""#, #""/""#, #""h""#, .one("del\u{7F}"), "/", "h"),
        ]
        for (room, namespace, hostID, names, expectedNamespace, expectedHost) in cases {
            let text = Self.object(Self.members(room: room, namespace: namespace, hostID: hostID))
            let bytes = ByteBuffer(string: text)
            let target = try #require(PubSubEmitTarget.scan(bytes), "\(text)")
            #expect(target.room == names, "\(text)")
            #expect(target.namespace == expectedNamespace, "\(text)")
            #expect(target.hostID(in: bytes) == expectedHost, "\(text)")
            #expect(target.isSent(byHost: expectedHost, in: bytes), "\(text)")
            Self.expectAgreement(Array(text.utf8), complete: true)
        }
    }

    /// Strings are stepped over eight bytes at a time until a word holds a quote or a backslash: strings of every
    /// length up to three words, with an escape (`\"`, `\\`, `\u0041`) at every offset, and keys and values that
    /// end at every offset of a word, read as `decode` reads them, in the room and in the skipped data.
    @Test func stringsOfEveryLengthWithAnEscapeAtEveryOffset() throws {
        let escapes = [#"\""#, #"\\"#, #"\u0041"#]
        let unescaped = ["\"", "\\", "A"]
        for length in 0..<24 {
            for escapeAt in -1..<length {
                let kind = max(0, escapeAt) % escapes.count
                var characters = Array(repeating: "x", count: length)
                if escapeAt >= 0 { characters[escapeAt] = escapes[kind] }
                var expected = Array(repeating: "x", count: length)
                if escapeAt >= 0 { expected[escapeAt] = unescaped[kind] }
                let string = "\"" + characters.joined() + "\""
                let text = Self.object(Self.members(room: string, data: "[" + string + ", {" + string + ": 1}]"))
                let bytes = ByteBuffer(string: text)
                let target = try #require(PubSubEmitTarget.scan(bytes), "\(text)")
                #expect(target.room == .one(expected.joined()), "\(text)")
                Self.expectAgreement(Array(text.utf8), complete: true)
            }
        }
    }

    /// A key with an escape might spell one of the keys that matter (`"r\u006fom"` is `room`): `scan` steps aside
    /// and `read` decides. Keys that only look alike are other keys.
    @Test func escapedKeysLeaveTheMessageToRead() throws {
        for key in [#"r\u006fom"#, #"method\u0000"#, #"\u0068ost_id"#, #"x\"y"#, #"unrelated\n"#] {
            let text = #"{"method": "emit", "event": "e", "data": [], "room": "a", ""# + key + #"": "b"}"#
            #expect(PubSubEmitTarget.scan(ByteBuffer(string: text)) == nil, "\(text)")
            Self.expectAgreement(Array(text.utf8), complete: false)
        }
        for key in ["rooms", "Room", "room ", "hostid", "host_id_", "names", "namespaces", "methods", ""] {
            let text = #"{"method": "emit", "event": "e", "data": [], "room": "a", ""# + key + #"": "b"}"#
            let target = try #require(PubSubEmitTarget.scan(ByteBuffer(string: text)), "\(text)")
            #expect(target.room == .one("a"), "\(text)")
            Self.expectAgreement(Array(text.utf8), complete: true)
        }
    }

    /// Keys and brackets inside `data`, `event`, `skip_sid` and `callback` are not the message's: only the top level
    /// counts.
    @Test func nestedValuesAreSteppedOver() throws {
        let data =
            #"[{"room": "inner", "namespace": "/x", "host_id": "me", "method": "leave_room"}, "]}\"{[", ["#
            + #"[[{"a": [1, {"b": "\\"}]}]]], "\u005d\u007d", 1.5e-3, -0.0, NaN, Infinity, -Infinity, true, null]"#
        let text = Self.object(
            [
                ("event", #""{\"room\": \"e\"}""#), ("skip_sid", #"["}", "]"]"#),
                ("callback", #"[["cb]"], "/}", 3]"#),
            ] + Self.members(data: data)
        )
        let bytes = ByteBuffer(string: text)
        let target = try #require(PubSubEmitTarget.scan(bytes))
        #expect(target.room == .one("r1") && target.namespace == "/" && target.hostID(in: bytes) == Self.host)
        Self.expectAgreement(Array(text.utf8), complete: true)
    }

    /// Python keeps the last of duplicate keys, and so does `decode`: so does `scan`, for every key that matters.
    @Test func duplicateKeysLastOneWins() throws {
        let cases = [
            #"{"room": "a", "method": "emit", "room": "b"}"#,
            #"{"method": "disconnect", "sid": "s", "method": "emit", "namespace": "/a", "namespace": "/b"}"#,
            #"{"method": "emit", "room": "a", "method": "disconnect", "sid": "s"}"#,
            #"{"method": "emit", "host_id": "a", "host_id": "b", "room": ["x"], "room": null}"#,
        ]
        for text in cases {
            Self.expectAgreement(Array(text.utf8), complete: false)
        }
        let first = try #require(PubSubEmitTarget.scan(ByteBuffer(string: cases[0])))
        #expect(first.room == .one("b"))
        let second = try #require(PubSubEmitTarget.scan(ByteBuffer(string: cases[1])))
        #expect(second.namespace == "/b")
        #expect(PubSubEmitTarget.scan(ByteBuffer(string: cases[2])) == nil)
        let bytes = ByteBuffer(string: cases[3])
        let fourth = try #require(PubSubEmitTarget.scan(bytes))
        #expect(fourth.room == PubSubNames.none && fourth.hostID(in: bytes) == "b")
    }

    /// What `scan` cannot read as `decode` would — another method, a field of another type, an outline that is
    /// not one object — is left to `read` (`nil`).
    @Test func leavesEverythingElseToRead() {
        for text in [
            "", " ", "{}", "[]", "null", "\"emit\"", "not json", #"{"method": "emit""#, #"{"method": "emit",}"#,
            #"{"method": "emit"} x"#, #"{"method": "emit"}}"#, #"{"method": "emit" "room": "a"}"#,
            #"{"method" "emit"}"#, #"{method: "emit"}"#, #"{"method": emit}"#, #"{"method": "Emit"}"#,
            #"{"method": "emit "}"#, #"{"method": "\u0065mit"}"#, #"{"method": ["emit"]}"#, #"{"method": null}"#,
            #"{"method": "emit", "room": 5}"#, #"{"method": "emit", "room": true}"#,
            #"{"method": "emit", "room": {"a": 1}}"#, #"{"method": "emit", "room": ["a", 1]}"#,
            #"{"method": "emit", "room": ["a", null]}"#, #"{"method": "emit", "room": ["a",]}"#,
            #"{"method": "emit", "room": [,"a"]}"#, #"{"method": "emit", "room": ["a" "b"]}"#,
            #"{"method": "emit", "room": ["a"]]}"#, #"{"method": "emit", "namespace": 1}"#,
            #"{"method": "emit", "namespace": ["/"]}"#, #"{"method": "emit", "host_id": 5}"#,
            #"{"method": "emit", "host_id": ["h"]}"#, #"{"method": "emit", "room": "a\u12"}"#,
            #"{"method": "emit", "room": "a\x"}"#, "{\"method\": \"emit\", \"room\": \"a\u{1}\"}",
            #"{"method": "emit", "namespace": "/\uZZZZ"}"#, #"{"method": "emit", "host_id": "\u00"}"#,
            #"{"method": "emit", "data": }"#, #"{"method": "emit", "data": [1, 2}"#, #"{"method": "emit", "data": :}"#,
            #"{"method": "emit", "data": "unterminated}"#, #"{"method": "emit", "data": ["\"]}"#,
            #"{"method": "emit", "event": "e", "data": [1]]}"#,
        ] {
            #expect(PubSubEmitTarget.scan(ByteBuffer(string: text)) == nil, "\(text)")
            Self.expectAgreement(Array(text.utf8), complete: false)
        }
        for invalid: [UInt8] in [[0xC3], [0xED, 0xA0, 0x80], [0xFF], [0xC0, 0xAF]] {
            let text = Array(#"{"method": "emit", "room": "a"#.utf8) + invalid + Array(#""}"#.utf8)
            #expect(PubSubEmitTarget.scan(ByteBuffer(bytes: text)) == nil)
            Self.expectAgreement(text, complete: false)
        }
    }

    /// The decision the skip path takes: the message is read up to its target only, so a message that is
    /// malformed elsewhere (its data, a missing event, a mistyped callback) still has a target; `decode` refuses
    /// it, and the server skips it when the target names nobody here, or refuses it (through `read`) when not.
    @Test func malformedElsewhereStillHasATarget() throws {
        for text in [
            #"{"method": "emit", "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": 5, "data": "x", "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": "e", "data": [1,, :, ], "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": "e", "data": ["bad \u12 escape"], "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": "e", "data": [tru, 01, 1.], "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": "e", "data": [1], "binary": "yes", "room": "r", "host_id": "h"}"#,
            #"{"method": "emit", "event": "e", "data": [1], "callback": [1], "room": "r", "host_id": "h"}"#,
        ] {
            let bytes = ByteBuffer(string: text)
            let target = try #require(PubSubEmitTarget.scan(bytes), "\(text)")
            #expect(target.room == .one("r") && target.hostID(in: bytes) == "h", "\(text)")
            #expect(throws: PubSubMessageError.self, "\(text)") { try PubSubMessage.read(bytes) }
            // Read on from its target (for someone here): refused with decode's error.
            let refusal = Result { () throws(PubSubMessageError) in try PubSubMessage.read(bytes, scanned: target) }
            let reference = Result { () throws(PubSubMessageError) in try PubSubMessage.decode(bytes) }
            guard case .failure(let error) = refusal, case .failure(let expected) = reference else {
                Issue.record("read(scanned:) or decode accepted \(text)")
                continue
            }
            #expect(error == expected, "\(text)")
        }
    }

    /// python-socketio's own bytes, read on from their target: what `read` gives, and what `decode` gives.
    @Test(arguments: PubSubFixtures.names)
    func readingOnFromTheTargetIsReading(_ name: String) throws {
        let bytes = try PubSubFixtures.bytes(name)
        guard let target = PubSubEmitTarget.scan(bytes) else {
            if case .emit = try PubSubMessage.decode(bytes) { Issue.record("\(name): an emit without a target") }
            return
        }
        Self.expectReadAgreement(bytes, scanned: target, label: { name })
        #expect(
            try .emit(PubSubMessage.read(bytes, scanned: target).decoded()) == PubSubMessage.decode(bytes),
            "\(name)"
        )
    }

    /// Every proper prefix of a message lacks its closing brace: no target; and every byte of the messages
    /// replaced by bytes that matter to JSON: wherever `decode` reads the result, `scan` agrees with it.
    // Async, yielding as it goes: tens of thousands of checks must not hold one of the two cooperative threads that
    // every other suite's clients need at the start of a full run.
    @Test func truncatedAndGarbledAtEveryByte() async throws {
        var seeds = try PubSubFixtures.names.map { Array(try PubSubFixtures.bytes($0).readableBytesView) }
        seeds.append(Array(Self.object(Self.members(room: #"["a\u00e9", "b"]"#, namespace: #""/n""#)).utf8))
        seeds.append(Array(Self.object(Self.members(data: #"["]}\"", {"room": ["x"]}]"#)).utf8))
        let replacements: [UInt8] = [
            0x00, 0x09, 0x20, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0x6E, 0x75, 0x80, 0xC3, 0xFF,
        ]
        var targets = 0
        for seed in seeds {
            let end = try #require(seed.lastIndex(of: UInt8(ascii: "}")))
            for length in 0...end {
                #expect(PubSubEmitTarget.scan(ByteBuffer(bytes: seed[0..<length])) == nil, "prefix \(length)")
            }
            for position in seed.indices {
                await Task.yield()
                for replacement in replacements where replacement != seed[position] {
                    var damaged = seed
                    damaged[position] = replacement
                    Self.expectAgreement(damaged, complete: false)
                    if PubSubEmitTarget.scan(ByteBuffer(bytes: damaged)) != nil { targets += 1 }
                }
                // A byte removed, and one doubled.
                var removed = seed
                removed.remove(at: position)
                Self.expectAgreement(removed, complete: false)
                var doubled = seed
                doubled.insert(seed[position], at: position)
                Self.expectAgreement(doubled, complete: false)
            }
        }
        #expect(targets > seeds.count)
    }

    /// Random emits (random rooms, namespaces, host ids and nested data, keys shuffled, random whitespace): `scan`
    /// reads every one as `decode` does.
    @Test func randomEmitsReadAsDecodeReadsThem() async {
        var generator = SeededGenerator(seed: 0x5CA7)
        let alphabet: [String] = ["a", "Z", "0", " ", "é", "日", "😀", "\"", "\\", "/", "\n", "\u{1}", "]", "}", ","]
        func randomText() -> String {
            let count = Int(generator.next() % 6)
            return (0..<count).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }.joined()
        }
        func json(_ text: String) -> String {
            var buffer = ByteBuffer()
            JSONValue.string(text).writePythonJSON(to: &buffer)
            return String(buffer: buffer)
        }
        func whitespace() -> String { ["", " ", "\n", "\t ", "\r\n"][Int(generator.next() % 5)] }
        for index in 0..<2_000 {
            if index % 50 == 0 { await Task.yield() }
            let room: String
            switch generator.next() % 4 {
            case 0: room = "null"
            case 1: room = json(randomText())
            case 2:
                room =
                    "[" + (0..<Int(generator.next() % 3)).map { _ in json(randomText()) }.joined(separator: ", ") + "]"
            default: room = ""
            }
            var members = Self.members(
                room: room.isEmpty ? "null" : room,
                namespace: generator.next() % 3 == 0 ? "null" : json("/" + randomText()),
                data: "[" + json(randomText()) + ", {" + json(randomText()) + ": [" + json(randomText()) + "]}]",
                hostID: generator.next() % 5 == 0 ? "null" : json(randomText())
            )
            if room.isEmpty { members.removeAll { $0.0 == "room" } }
            members.shuffle(using: &generator)
            let text =
                whitespace() + "{"
                + members.map { whitespace() + "\"\($0.0)\"" + whitespace() + ":" + whitespace() + $0.1 + whitespace() }
                .joined(separator: ",") + "}" + whitespace()
            Self.expectAgreement(Array(text.utf8), complete: true)
        }
    }

    static func combinations(of count: Int, from items: [Int]) -> [[Int]] {
        guard count > 0 else { return [[]] }
        guard items.count >= count else { return [] }
        let first = items[0]
        let rest = Array(items.dropFirst())
        return Self.combinations(of: count - 1, from: rest).map { [first] + $0 }
            + Self.combinations(of: count, from: rest)
    }

    static func permutations(_ items: [Int]) -> [[Int]] {
        guard items.count > 1 else { return [items] }
        var result: [[Int]] = []
        for (index, item) in items.enumerated() {
            var rest = items
            rest.remove(at: index)
            for tail in Self.permutations(rest) { result.append([item] + tail) }
        }
        return result
    }
}
