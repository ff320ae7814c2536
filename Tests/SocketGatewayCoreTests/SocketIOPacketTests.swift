import NIOCore
import SocketGatewayCore
import Testing

@Suite struct SocketIOPacketEncodingTests {
    private func text(_ packet: SocketIOPacket) -> (String, [ByteBuffer]) {
        let (text, attachments) = packet.encoded()
        return (String(buffer: text), attachments)
    }

    @Test func readmeExamples() {
        #expect(text(.connect()).0 == "0")
        #expect(
            text(.connect(namespace: "/admin", payload: ["sid": "oSO0OpakMV_3jnilAAAA"])).0
                == #"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#
        )
        #expect(text(.connectError(message: "Not authorized")).0 == #"4{"message":"Not authorized"}"#)
        #expect(
            text(.connectError(namespace: "/admin", message: "banned", data: ["until": 5])).0
                == #"4/admin,{"message":"banned","data":{"until":5}}"#
        )
        #expect(text(.event("foo", [])).0 == #"2["foo"]"#)
        #expect(text(.event("bar", [], namespace: "/admin")).0 == #"2/admin,["bar"]"#)
        #expect(text(.event("foo", [], ackID: 12)).0 == #"212["foo"]"#)
        #expect(text(.ack(ackID: 13, ["bar"], namespace: "/admin")).0 == #"3/admin,13["bar"]"#)
        #expect(text(.disconnect()).0 == "1")
        #expect(text(.disconnect(namespace: "/admin")).0 == "1/admin,")
    }

    @Test func binaryEventReplacesAttachmentsByPlaceholders() {
        let (single, singleAttachments) = text(.event("baz", [.binary(ByteBuffer(bytes: [1, 2, 3, 4]))]))
        #expect(single == #"51-["baz",{"_placeholder":true,"num":0}]"#)
        #expect(singleAttachments == [ByteBuffer(bytes: [1, 2, 3, 4])])

        let (multiple, attachments) = text(
            .event(
                "baz",
                [.binary(ByteBuffer(bytes: [1, 2])), .binary(ByteBuffer(bytes: [3, 4]))],
                namespace: "/admin"
            )
        )
        #expect(multiple == #"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        #expect(attachments == [ByteBuffer(bytes: [1, 2]), ByteBuffer(bytes: [3, 4])])

        let (ack, ackAttachments) = text(.ack(ackID: 15, ["bar", .binary(ByteBuffer(bytes: [1, 2, 3, 4]))]))
        #expect(ack == #"61-15["bar",{"_placeholder":true,"num":0}]"#)
        #expect(ackAttachments.count == 1)
    }

    @Test func placeholdersAreNumberedDepthFirst() {
        let a = ByteBuffer(bytes: [0xA])
        let b = ByteBuffer(bytes: [0xB])
        let c = ByteBuffer(bytes: [0xC])
        let packet = SocketIOPacket.event("e", [["x": .binary(a), "y": [.binary(b), ["z": .binary(c)]]]])
        let (encoded, attachments) = text(packet)
        #expect(
            encoded
                == #"53-["e",{"x":{"_placeholder":true,"num":0},"y":[{"_placeholder":true,"num":1},{"z":{"_placeholder":true,"num":2}}]}]"#
        )
        #expect(attachments == [a, b, c])
    }

    @Test func typeFollowsTheData() {
        // A BINARY_EVENT without binary is sent as EVENT; binary in a CONNECT has no wire form and becomes null.
        #expect(text(SocketIOPacket(type: .binaryEvent, data: ["x"])).0 == #"2["x"]"#)
        #expect(text(SocketIOPacket(type: .binaryAck, ackID: 1, data: [])).0 == "31[]")
        let (connect, attachments) = text(.connect(payload: ["blob": .binary(ByteBuffer(bytes: [1]))]))
        #expect(connect == #"0{"blob":null}"#)
        #expect(attachments.isEmpty)
    }

    @Test func encodeAppendsAfterExistingBytes() {
        var buffer = ByteBuffer(string: "4")
        let attachments = SocketIOPacket.event("message", [1, "2", ["3": [true]]]).encode(into: &buffer)
        #expect(String(buffer: buffer) == #"42["message",1,"2",{"3":[true]}]"#)
        #expect(attachments.isEmpty)
    }

    @Test func accessorsForHandlers() {
        let event = SocketIOPacket.event("chat", ["hi", 2], ackID: 4)
        #expect(event.eventName == "chat")
        #expect(event.arguments == ["hi", 2])
        let ack = SocketIOPacket.ack(ackID: 4, ["ok"])
        #expect(ack.eventName == nil)
        #expect(ack.arguments == ["ok"])
        #expect(SocketIOPacket.connect().arguments.isEmpty)
        #expect(SocketIOPacketType.connectError.description == "CONNECT_ERROR")
    }
}

@Suite struct SocketIOPacketDecodingTests {
    private func decode(_ text: String) throws -> SocketIOPacket? {
        var decoder = SocketIOPacketDecoder()
        return try decoder.decode(text: ByteBuffer(string: text))
    }

    private func decodeError(_ text: String, maxAttachments: Int = 10) -> SocketIOProtocolError? {
        var decoder = SocketIOPacketDecoder(maxAttachments: maxAttachments)
        do {
            let packet = try decoder.decode(text: ByteBuffer(string: text))
            Issue.record("expected \(text.debugDescription) to be refused, got \(String(describing: packet))")
            return nil
        } catch {
            return error
        }
    }

    /// Text packets that the official server accepts, re-encoded byte for byte.
    static let roundTrips: [String] = [
        "0",
        #"0{"token":"123"}"#,
        "0/custom,",
        #"0/custom,{"token":"abc"}"#,
        #"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        "1",
        "1/custom,",
        #"2["message",1,"2",{"3":[true]}]"#,
        #"2["foo"]"#,
        #"2/admin,["bar"]"#,
        #"212["foo"]"#,
        #"2/admin,13["msg",{}]"#,
        #"2456["message-with-ack",1,"2",{"3":[false]}]"#,
        #"3456[1,"2",{"3":[false]}]"#,
        #"3/admin,13["bar"]"#,
        "3/admin,13[]",
        #"4{"message":"Not authorized"}"#,
        #"4/random,{"message":"Invalid namespace"}"#,
        #"4"Not authorized""#,
        #"2["unicode é",{"k":"😀"}]"#,
    ]

    @Test(arguments: roundTrips)
    func textPacketsRoundTrip(_ text: String) throws {
        let packet = try #require(try decode(text))
        let (encoded, attachments) = packet.encoded()
        #expect(String(buffer: encoded) == text)
        #expect(attachments.isEmpty)
    }

    @Test func decodesFields() throws {
        let connect = try #require(try decode(#"0/custom,{"token":"abc"}"#))
        #expect(connect == .connect(namespace: "/custom", payload: ["token": "abc"]))

        let event = try #require(try decode(#"2/admin,13["msg",{}]"#))
        #expect(event.type == .event)
        #expect(event.namespace == "/admin")
        #expect(event.ackID == 13)
        #expect(event.eventName == "msg")
        #expect(event.arguments == [[:]])

        let error = try #require(try decode(#"44/random,{"message":"Invalid namespace"}"#.dropFirst().description))
        #expect(error == .connectError(namespace: "/random", message: "Invalid namespace"))

        // Namespace without a trailing comma when nothing follows.
        #expect(try decode("0/custom") == .connect(namespace: "/custom"))
        #expect(try decode("1/custom") == .disconnect(namespace: "/custom"))
        // The largest ack id.
        #expect(try decode("318446744073709551615[]")?.ackID == UInt64.max)
    }

    @Test func binaryEventWaitsForItsAttachments() throws {
        var decoder = SocketIOPacketDecoder()
        let header = #"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        #expect(try decoder.decode(text: ByteBuffer(string: header)) == nil)
        #expect(decoder.isAwaitingAttachments)
        #expect(try decoder.decode(binary: ByteBuffer(bytes: [1, 2, 3])) == nil)
        let packet = try #require(try decoder.decode(binary: ByteBuffer(bytes: [4, 5])))
        #expect(!decoder.isAwaitingAttachments)
        #expect(packet.type == .binaryEvent)
        #expect(packet.eventName == "message")
        #expect(packet.arguments == [.binary(ByteBuffer(bytes: [1, 2, 3])), .binary(ByteBuffer(bytes: [4, 5]))])

        // Echoed back as the conformance suite expects, with the same attachments in order.
        let reply = SocketIOPacket.event("message-back", packet.arguments)
        let (text, attachments) = reply.encoded()
        #expect(
            String(buffer: text) == #"52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        )
        #expect(attachments == [ByteBuffer(bytes: [1, 2, 3]), ByteBuffer(bytes: [4, 5])])
    }

    @Test func binaryAckWithIDAndNamespace() throws {
        var decoder = SocketIOPacketDecoder()
        let header = #"62-/admin,789[{"_placeholder":true,"num":1},{"nested":{"_placeholder":true,"num":0}}]"#
        #expect(try decoder.decode(text: ByteBuffer(string: header)) == nil)
        #expect(try decoder.decode(binary: ByteBuffer(bytes: [0])) == nil)
        let packet = try #require(try decoder.decode(binary: ByteBuffer(bytes: [1])))
        #expect(packet.type == .binaryAck)
        #expect(packet.namespace == "/admin")
        #expect(packet.ackID == 789)
        #expect(packet.data == [.binary(ByteBuffer(bytes: [1])), ["nested": .binary(ByteBuffer(bytes: [0]))]])

        let (text, attachments) = SocketIOPacket.ack(ackID: 789, packet.arguments).encoded()
        #expect(
            String(buffer: text) == #"62-789[{"_placeholder":true,"num":0},{"nested":{"_placeholder":true,"num":1}}]"#
        )
        #expect(attachments == [ByteBuffer(bytes: [1]), ByteBuffer(bytes: [0])])
    }

    @Test func binaryPacketWithZeroAttachmentsCompletesAtOnce() throws {
        var decoder = SocketIOPacketDecoder()
        let packet = try decoder.decode(text: ByteBuffer(string: #"50-["x",1]"#))
        #expect(packet == SocketIOPacket(type: .binaryEvent, data: ["x", 1]))
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test func binaryWithoutHeaderIsRefused() {
        var decoder = SocketIOPacketDecoder()
        #expect {
            _ = try decoder.decode(binary: ByteBuffer(bytes: [1]))
        } throws: { error in
            (error as? SocketIOProtocolError)?.code == .unexpectedBinary
        }
    }

    @Test func textWhileAttachmentsArePendingIsRefused() throws {
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.decode(text: ByteBuffer(string: #"51-["m",{"_placeholder":true,"num":0}]"#))
        do {
            _ = try decoder.decode(text: ByteBuffer(string: #"2["next"]"#))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .unexpectedText)
            #expect(error.packetType == .binaryEvent)
            #expect(error.namespace == "/")
        }
        // The decoder is reset after the error.
        #expect(!decoder.isAwaitingAttachments)
        #expect(try decoder.decode(text: ByteBuffer(string: #"2["next"]"#)) == .event("next", []))
    }

    @Test func invalidPlaceholdersAreRefused() throws {
        let headers = [
            #"51-["m",{"_placeholder":true,"num":1}]"#,  // out of range
            #"51-["m",{"_placeholder":true,"num":-1}]"#,
            #"51-["m",{"_placeholder":true,"num":"0"}]"#,
            #"51-["m",{"_placeholder":true}]"#,
            #"51-["m",{"_placeholder":true,"num":0.5}]"#,
            #"52-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,  // duplicate
        ]
        for header in headers {
            var decoder = SocketIOPacketDecoder()
            _ = try decoder.decode(text: ByteBuffer(string: header))
            do {
                var result: SocketIOPacket? = nil
                while decoder.isAwaitingAttachments {
                    result = try decoder.decode(binary: ByteBuffer(bytes: [9]))
                }
                Issue.record("expected \(header) to be refused, got \(String(describing: result))")
            } catch {
                #expect(error.code == .invalidPlaceholder, "\(header): \(error)")
                #expect(error.packetType == .binaryEvent)
                #expect(!decoder.isAwaitingAttachments)
            }
        }
        // A placeholder flag that is not `true` is plain data.
        var decoder = SocketIOPacketDecoder()
        _ = try decoder.decode(
            text: ByteBuffer(string: #"51-["m",{"_placeholder":false,"num":0},{"_placeholder":true,"num":0}]"#)
        )
        let packet = try #require(try decoder.decode(binary: ByteBuffer(bytes: [7])))
        #expect(packet.arguments == [["_placeholder": false, "num": 0], .binary(ByteBuffer(bytes: [7]))])
    }

    struct Refused: CustomTestStringConvertible, Sendable {
        var input: String
        var code: SocketIOProtocolError.Code
        var testDescription: String { input.debugDescription }
    }

    static let refused: [Refused] = [
        Refused(input: "", code: .emptyPacket),
        Refused(input: "abc", code: .unknownPacketType),
        Refused(input: "7", code: .unknownPacketType),
        Refused(input: "9[]", code: .unknownPacketType),
        Refused(input: "/", code: .unknownPacketType),
        Refused(input: "{}", code: .unknownPacketType),
        Refused(input: "2{}", code: .invalidPayload),
        Refused(input: "2", code: .invalidPayload),
        Refused(input: "2[]", code: .invalidPayload),
        Refused(input: "2[1]", code: .invalidPayload),
        Refused(input: "2[null]", code: .invalidPayload),
        Refused(input: #"2"message""#, code: .invalidPayload),
        Refused(input: #"2["disconnect"]"#, code: .invalidPayload),
        Refused(input: #"2["connect"]"#, code: .invalidPayload),
        Refused(input: #"2abc["message"]"#, code: .invalidAckID),
        Refused(input: #"2/custom,abc["message"]"#, code: .invalidAckID),
        Refused(input: #"2123abc["message"]"#, code: .invalidAckID),
        Refused(input: #"218446744073709551616["m"]"#, code: .invalidAckID),
        Refused(input: #"2["message""#, code: .invalidJSON),
        Refused(input: #"2["message",]"#, code: .invalidJSON),
        Refused(input: #"2["message"] x"#, code: .invalidJSON),
        Refused(input: "3", code: .invalidPayload),
        Refused(input: "31{}", code: .invalidPayload),
        Refused(input: #"3"x""#, code: .invalidPayload),
        Refused(input: "0[]", code: .invalidPayload),
        Refused(input: #"0"token""#, code: .invalidPayload),
        Refused(input: #"0/custom,"x""#, code: .invalidPayload),
        Refused(input: "1{}", code: .invalidPayload),
        Refused(input: "1/custom,[]", code: .invalidPayload),
        Refused(input: "4[]", code: .invalidPayload),
        Refused(input: "4true", code: .invalidPayload),
        Refused(input: #"5["m"]"#, code: .invalidAttachmentCount),
        Refused(input: #"5-["m"]"#, code: .invalidAttachmentCount),
        Refused(input: #"5a-["m"]"#, code: .invalidAttachmentCount),
        Refused(input: "51", code: .invalidAttachmentCount),
        Refused(input: #"511-["m"]"#, code: .tooManyAttachments),
        Refused(input: #"599999999999999999999999-["m"]"#, code: .tooManyAttachments),
        Refused(input: "51-", code: .invalidPayload),
        Refused(input: "61-1{}", code: .invalidPayload),
    ]

    @Test(arguments: refused)
    func refusesWhatTheOfficialServerRefuses(_ sample: Refused) {
        guard let error = decodeError(sample.input) else { return }
        #expect(error.code == sample.code, "\(error)")
        #expect(error.excerpt == String(sample.input.prefix(64)))
        #expect(!error.description.isEmpty)
    }

    @Test func errorsCarryContext() throws {
        let long = #"2/chat,["message",""# + String(repeating: "x", count: 200)
        let error = decodeError(long)
        #expect(error?.code == .invalidJSON)
        #expect(error?.namespace == "/chat")
        #expect(error?.packetType == .event)
        #expect(error?.excerpt == String(long.prefix(64)) + "…")
        #expect(error?.underlying?.code == .unexpectedEndOfInput)
        #expect(error?.underlying?.offset == long.utf8.count)

        #expect(try decode(#"2/ns\#u{E9},["m"]"#)?.namespace == "/ns\u{E9}")
        var decoder = SocketIOPacketDecoder()
        var bytes = ByteBuffer(string: "2/ns")
        bytes.writeBytes([0xFF, 0x2C])
        bytes.writeString(#"["m"]"#)
        #expect {
            _ = try decoder.decode(text: bytes)
        } throws: { error in
            (error as? SocketIOProtocolError)?.code == .invalidNamespace
        }
    }

    @Test func limitsAreConfigurable() throws {
        let header =
            #"53-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]"#
        #expect(decodeError(header, maxAttachments: 2)?.code == .tooManyAttachments)
        var deep = SocketIOPacketDecoder(maxDepth: 3)
        #expect(throws: SocketIOProtocolError.self) { try deep.decode(text: ByteBuffer(string: #"2["m",[[[1]]]]"#)) }
        #expect(try deep.decode(text: ByteBuffer(string: #"2["m",[[1]]]"#)) != nil)
    }
}
