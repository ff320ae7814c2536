import Foundation
import NIOCore
import SocketGatewayCore
import Testing

/// The raw messages python-socketio 5.18's AsyncRedisManager published, captured by tools/capture-pubsub-fixtures.
enum PubSubFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pubsub")

    static var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Self.directory.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    static func bytes(_ name: String) throws -> ByteBuffer {
        ByteBuffer(bytes: try Data(contentsOf: Self.directory.appendingPathComponent(name)))
    }
}

@Suite struct PubSubMessageTests {
    @Test func fixturesArePresent() {
        #expect(PubSubFixtures.names.count >= 20, "run tools/capture-pubsub-fixtures")
    }

    @Test(arguments: PubSubFixtures.names)
    func decodesAndReencodesByteForByte(_ name: String) throws {
        let bytes = try PubSubFixtures.bytes(name)
        let message = try PubSubMessage.decode(bytes)
        let encoded = message.encoded()
        #expect(String(buffer: encoded) == String(buffer: bytes))
        #expect(encoded == bytes)
        #expect(message.hostID.count == 32)
    }

    @Test func decodesTheFieldsOfEachKind() throws {
        let broadcast = try PubSubMessage.decode(PubSubFixtures.bytes("01-emit-broadcast.json"))
        guard case .emit(let emit) = broadcast else {
            Issue.record("not an emit: \(broadcast)")
            return
        }
        #expect(emit.event == "update")
        #expect(emit.arguments == [["id": 7, "ok": true, "name": "sheet"]])
        #expect(emit.room == .none && emit.skipSid == .none && emit.namespace == "/" && emit.callback == nil)

        guard case .emit(let list) = try PubSubMessage.decode(PubSubFixtures.bytes("04-emit-room-list.json")) else {
            Issue.record("not an emit")
            return
        }
        #expect(list.room == .list(["r1", "r2"]))
        guard case .emit(let skip) = try PubSubMessage.decode(PubSubFixtures.bytes("06-emit-skip-sid-list.json")) else {
            Issue.record("not an emit")
            return
        }
        #expect(skip.skipSid == .list(["sidA", "sidB"]))
        guard case .emit(let skipOne) = try PubSubMessage.decode(PubSubFixtures.bytes("05-emit-skip-sid.json")) else {
            Issue.record("not an emit")
            return
        }
        #expect(skipOne.skipSid == .one("sidA") && skipOne.room == .one("room1"))

        guard case .emit(let unicode) = try PubSubMessage.decode(PubSubFixtures.bytes("08-emit-unicode.json")) else {
            Issue.record("not an emit")
            return
        }
        #expect(unicode.event == "café")
        #expect(unicode.arguments.first?["têxt"] == .string("héllo wörld ✓ 😀"))

        guard case .emit(let binary) = try PubSubMessage.decode(PubSubFixtures.bytes("13-emit-binary.json")) else {
            Issue.record("not an emit")
            return
        }
        #expect(binary.isBinary)
        #expect(binary.arguments.first?["data"] == .binary(ByteBuffer(bytes: [0x00, 0x01, 0xFE, 0xFF])))
        #expect(binary.arguments.first?["more"] == [.binary(ByteBuffer(string: "abc")), .binary(ByteBuffer())])

        guard
            case .emit(let withCallback) = try PubSubMessage.decode(PubSubFixtures.bytes("20-emit-with-callback.json"))
        else {
            Issue.record("not an emit")
            return
        }
        #expect(withCallback.callback == PubSubCallback(room: .one("aBcD1234efGH5678AAAB"), namespace: "/", id: 1))

        let enter = try PubSubMessage.decode(PubSubFixtures.bytes("15-enter-room.json"))
        guard case .enterRoom(let sid, let room, let namespace, _) = enter else {
            Issue.record("not enter_room: \(enter)")
            return
        }
        #expect(sid == "sidA" && room == "room9" && namespace == "/")
        let callback = try PubSubMessage.decode(PubSubFixtures.bytes("19-callback.json"))
        #expect(
            callback
                == .callback(
                    hostID: "0123456789abcdef0123456789abcdef",
                    sid: "sidA",
                    namespace: "/",
                    id: 5,
                    arguments: ["ok", ["n": 1]]
                )
        )
        #expect(callback.isRelevant(toHost: "0123456789abcdef0123456789abcdef"))
        #expect(!callback.isRelevant(toHost: "ffffffffffffffffffffffffffffffff"))
        #expect(!enter.isRelevant(toHost: enter.hostID))
        #expect(enter.isRelevant(toHost: "someoneelse"))
    }

    @Test func buildsWhatPythonBuildsForAnEmit() throws {
        let hostID = "48fd94e6b4914e3aad7abecff8f06139"
        let message = PubSubMessage.emit(
            "update",
            arguments: [["x": 1]],
            to: .broadcast,
            options: EmitOptions(excluding: ["sidB", "sidA"]),
            hostID: hostID
        )
        let expected = try PubSubFixtures.bytes("06-emit-skip-sid-list.json")
        #expect(
            String(buffer: message.encoded())
                == String(buffer: expected).replacingOccurrences(
                    of: #""host_id": "[0-9a-f]{32}""#,
                    with: "\"host_id\": \"\(hostID)\"",
                    options: .regularExpression
                )
        )
        let toUser = PubSubMessage.emit(
            "tick",
            arguments: [1],
            to: .user("42"),
            options: .init(namespace: "/admin"),
            hostID: "h"
        )
        guard case .emit(let emit) = toUser else {
            Issue.record("not an emit")
            return
        }
        #expect(emit.room == .one("user:42"))
        #expect(emit.skipSid == .none)
    }

    @Test func encodesBinaryArgumentsLikePython() throws {
        let fixture = try PubSubFixtures.bytes("14-emit-binary-args.json")
        guard case .emit(let original) = try PubSubMessage.decode(fixture) else {
            Issue.record("not an emit")
            return
        }
        let rebuilt = PubSubMessage.emit(
            PubSubEmit(
                event: "blobs",
                arguments: [
                    .binary(ByteBuffer(bytes: [0xDE, 0xAD, 0xBE, 0xEF])), "text",
                    ["b": .binary(ByteBuffer(string: "xyz"))],
                ],
                hostID: original.hostID
            )
        )
        #expect(rebuilt.encoded() == fixture)
    }

    struct BadCase: Sendable, CustomStringConvertible {
        var text: String
        var code: PubSubMessageError.Code
        var field: String?
        var description: String { self.text }
    }

    static let bad: [BadCase] = [
        BadCase(text: "not json", code: .notJSON),
        BadCase(text: "[1,2]", code: .notAnObject),
        BadCase(text: #"{"event":"x"}"#, code: .missingMethod),
        BadCase(text: #"{"method":"teleport"}"#, code: .unknownMethod),
        BadCase(text: #"{"method":"emit","data":[]}"#, code: .missingField, field: "event"),
        BadCase(text: #"{"method":"emit","event":"e","data":{}}"#, code: .wrongType, field: "data"),
        BadCase(text: #"{"method":"emit","event":"e","data":[],"room":5}"#, code: .wrongType, field: "room"),
        BadCase(text: #"{"method":"emit","event":"e","data":[],"skip_sid":[1]}"#, code: .wrongType, field: "skip_sid"),
        BadCase(
            text: #"{"method":"emit","event":"e","data":[[{"_placeholder":true,"num":0}],"!!"],"binary":true}"#,
            code: .invalidBinary,
            field: "data"
        ),
        BadCase(
            text: #"{"method":"emit","event":"e","data":[[{"_placeholder":true,"num":3}],"YWJj"],"binary":true}"#,
            code: .invalidBinary,
            field: "data"
        ),
        BadCase(text: #"{"method":"emit","event":"e","data":[],"callback":[1]}"#, code: .wrongType, field: "callback"),
        BadCase(text: #"{"method":"disconnect","namespace":"/"}"#, code: .missingField, field: "sid"),
        BadCase(text: #"{"method":"enter_room","sid":"s"}"#, code: .missingField, field: "room"),
        BadCase(
            text: #"{"method":"callback","host_id":"h","sid":"s","id":"x","args":[]}"#,
            code: .wrongType,
            field: "id"
        ),
        BadCase(text: #"{"method":"callback","host_id":"h","sid":"s","id":1}"#, code: .missingField, field: "args"),
    ]

    @Test(arguments: Self.bad)
    func rejectsBadMessagesWithATypedError(_ item: BadCase) {
        do {
            let message = try PubSubMessage.decode(ByteBuffer(string: item.text))
            Issue.record("decoded \(message)")
        } catch {
            #expect(error.code == item.code, "\(error)")
            #expect(error.field == item.field, "\(error)")
            #expect(error.excerpt.hasPrefix(String(item.text.prefix(10))))
        }
    }

    @Test func hostIDsLookLikePythonUUID4Hex() {
        var ids = Set<String>()
        for _ in 0..<100 {
            let id = PubSubHostID.generate()
            #expect(id.count == 32)
            #expect(id.allSatisfy { "0123456789abcdef".contains($0) })
            #expect(Array(id)[12] == "4")
            ids.insert(id)
        }
        #expect(ids.count == 100)
    }
}
