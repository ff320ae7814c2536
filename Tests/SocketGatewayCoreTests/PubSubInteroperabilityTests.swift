import NIOCore
import Testing

@_spi(Generated) @testable import SocketGatewayCore

/// Whatever one of our servers accepts from a client, or a Python peer publishes, another of our servers reads.
@Suite struct PubSubInteroperabilityTests {
    private static func nested(_ depth: Int) -> JSONValue {
        var value: JSONValue = 1
        for _ in 0..<depth { value = .array([value]) }
        return value
    }

    private static func emitMessage(_ arguments: [JSONValue]) -> PubSubMessage {
        .emit(PubSubEmit(event: "deep", arguments: arguments, hostID: String(repeating: "a", count: 32)))
    }

    @Test func theDeepestArgumentAClientMaySendCrossesToOtherServers() throws {
        // A client packet `2["deep",[[…1…]]]` at the decoder's default limit: the argument list counts as one level.
        var clientText = ByteBuffer(string: #"2["deep","#)
        clientText.writeString(String(repeating: "[", count: 127) + "1" + String(repeating: "]", count: 127) + "]")
        var decoder = SocketIOPacketDecoder()
        let packet = try #require(try decoder.decode(text: clientText))
        #expect(packet.arguments == [Self.nested(127)])

        let published = Self.emitMessage(packet.arguments).encoded()
        guard case .emit(let emit) = try PubSubMessage.decode(published) else {
            Issue.record("not an emit")
            return
        }
        #expect(emit.arguments == [Self.nested(127)])
    }

    @Test func theDeepestBinaryArgumentCrossesToo() throws {
        // A client's binary argument can be wrapped 126 deep (its placeholder object is one more level, the packet's
        // argument list another); published, the arguments sit in one more list beside the base64 attachments.
        var clientText = ByteBuffer(string: #"51-["deep","#)
        clientText.writeString(
            String(repeating: "[", count: 126) + #"{"_placeholder":true,"num":0}"# + String(repeating: "]", count: 126)
                + "]"
        )
        var decoder = SocketIOPacketDecoder()
        #expect(try decoder.decode(text: clientText) == nil)
        let packet = try #require(try decoder.decode(binary: ByteBuffer(bytes: [1, 2, 3])))
        var inner: JSONValue = .binary(ByteBuffer(bytes: [1, 2, 3]))
        for _ in 0..<126 { inner = .array([inner]) }
        #expect(packet.arguments == [inner])
        let published = Self.emitMessage([inner]).encoded()
        guard case .emit(let emit) = try PubSubMessage.decode(published) else {
            Issue.record("not an emit")
            return
        }
        #expect(emit.arguments == [inner])
    }

    @Test func deeperThanAnyClientMaySendIsRefusedWithAReason() {
        let published = Self.emitMessage([Self.nested(PubSubMessage.maximumDepth)]).encoded()
        #expect(throws: PubSubMessageError.self) { try PubSubMessage.decode(published) }
    }

    @Test func nonFiniteFloatsAsPythonWritesThemAreRead() throws {
        // What json.dumps writes for float("nan"), float("inf"), float("-inf"); our own writer writes the same.
        let python = ByteBuffer(
            string: #"{"method": "emit", "event": "m", "data": [{"a": NaN, "b": Infinity, "c": -Infinity}], "#
                + #""namespace": "/", "room": null, "skip_sid": null, "callback": null, "host_id": "h"}"#
        )
        guard case .emit(let emit) = try PubSubMessage.decode(python) else {
            Issue.record("not an emit")
            return
        }
        let argument = try #require(emit.arguments.first)
        #expect(argument["a"]?.doubleValue?.isNaN == true)
        #expect(argument["b"]?.doubleValue == .infinity)
        #expect(argument["c"]?.doubleValue == -.infinity)
        // Clients get what JSON.stringify writes for them: null.
        #expect(argument.jsonString == #"{"a":null,"b":null,"c":null}"#)

        let ours = Self.emitMessage([["x": .double(.infinity), "y": .double(-.infinity), "z": .double(.nan)]]).encoded()
        #expect(String(buffer: ours).contains(#"{"x": Infinity, "y": -Infinity, "z": NaN}"#))
        guard case .emit(let reread) = try PubSubMessage.decode(ours) else {
            Issue.record("not an emit")
            return
        }
        #expect(reread.arguments.first?["x"]?.doubleValue == .infinity)
    }

    @Test func nonFiniteConstantsStayRefusedFromClientsAndInStrictJSON() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[NaN]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[-Infinity]") }
        #expect(throws: JSONParseError.self) {
            try JSONValue.parsePythonJSON(ByteBuffer(string: "[-Inf]"), maxDepth: 8)
        }
        #expect(throws: JSONParseError.self) { try JSONValue.parsePythonJSON(ByteBuffer(string: "[nan]"), maxDepth: 8) }
        var decoder = SocketIOPacketDecoder()
        #expect(throws: SocketIOProtocolError.self) { try decoder.decode(text: ByteBuffer(string: #"2["m",NaN]"#)) }
    }

    @Test func theLastOfDuplicateKeysWinsAsInBrowsersAndPython() throws {
        let value = try JSONValue.parse(#"{"stage":"queued","n":1,"stage":"<anything>"}"#)
        #expect(value["stage"] == "<anything>")

        // So do the decoders of generated payload types.
        let members = try GeneratedEventDecoding.object(value)
        #expect(try GeneratedEventDecoding.required(members, "stage", GeneratedEventDecoding.string) == "<anything>")
        #expect(try GeneratedEventDecoding.required(members, "n", GeneratedEventDecoding.int) == 1)
    }
}
