import Foundation
import GeneratedBothWaysFixture
import SocketGatewayCore
import Testing

/// Calls the client event and ack types that SocketGatewayEventsPlugin generated at build time for
/// Tests/GeneratedBothWaysFixture (the both-ways catalog): what a typed handler decodes and answers, and what the
/// server decodes from a client's answer.
@Suite struct GeneratedClientEventTests {
    static let jobID = UUID(uuidString: "4F1C2B3A-9D8E-4F70-8A6B-5C4D3E2F1A0B")!
    static let queuedAt = Date(timeIntervalSince1970: 1_795_979_583.120)  // 2026-11-29T19:13:03.120Z

    @Test func theConformancesCarryTheCatalogsNamesNamespacesAndAckTypes() {
        // A client event with an ack, one without, one payload-less; the name used both ways keeps one wire name.
        #expect(SheetSyncRequest.eventName == "sheet:sync:request" && SheetSyncRequest.namespace == "/")
        #expect(SheetSyncRequest.Ack.self == SheetSyncRequestAck.self)
        #expect(RoomLeave.namespace == "/rooms" && RoomLeave.Ack.self == SocketNoAck.self)
        #expect(Typing.Ack.self == SocketNoAck.self)
        #expect(ChatMessageFromClient.eventName == ChatMessage.eventName)
        #expect(ChatMessageFromClient.Ack.self == ChatMessageFromClientAck.self)
        // Server events with an ack are SocketAcknowledgedEvent; the others stay plain SocketEvent.
        #expect(SheetSyncProgress.Ack.self == SheetSyncProgressAck.self)
        #expect(ServerPing.Ack.self == ServerPingAck.self)
        #expect(!((ChatMessage.self as Any) is any SocketAcknowledgedEvent.Type))
        #expect((SheetSyncProgress.self as Any) is any SocketAcknowledgedEvent.Type)
    }

    @Test func aClientPayloadDecodesIntoItsStruct() throws {
        let payload = try JSONValue.parse(#"{"sheet_id":"s-1","priority":"high","columns":["A","C"]}"#)
        let request = try SheetSyncRequest(jsonValue: payload)
        #expect(request == SheetSyncRequest(sheetID: "s-1", priority: .high, columns: ["A", "C"]))
        // Absent optional, and a payload-less event's empty object.
        #expect(try SheetSyncRequest(jsonValue: ["sheet_id": "s", "priority": "low"]).columns == nil)
        #expect(try Typing(jsonValue: [:]) == Typing())
    }

    @Test(arguments: [
        (
            #"{"sheet_id":1,"priority":"low"}"#,
            "wrong type at $.sheet_id: expected a string, found a number"
        ),
        (
            #"{"sheet_id":"s","priority":"urgent"}"#,
            "invalid value at $.priority: expected one of 'low', 'normal', 'high', found 'urgent'"
        ),
        (
            #"{"sheet_id":"s","priority":"low","columns":["A",2]}"#,
            "wrong type at $.columns[1]: expected a string, found a number"
        ),
        (#"{"priority":"low"}"#, "missing field at $.sheet_id: the payload has no 'sheet_id'"),
        (#"["s"]"#, "wrong type at $: expected an object, found an array"),
    ])
    func aClientPayloadThatDoesNotMatchNamesThePath(json: String, expected: String) throws {
        let payload = try JSONValue.parse(json)
        #expect(throws: SocketEventDecodingError.self) { try SheetSyncRequest(jsonValue: payload) }
        do {
            _ = try SheetSyncRequest(jsonValue: payload)
        } catch let error as SocketEventDecodingError {
            #expect(error.description == expected)
        }
    }

    @Test func theServersAckIsWrittenInCatalogOrderAndReadsBack() throws {
        let ack = SheetSyncRequestAck(
            jobID: Self.jobID,
            queuedAt: Self.queuedAt,
            stage: .queued,
            rejected: .init(reason: "busy", retryAfter: 30)
        )
        #expect(
            ack.jsonValue.jsonString
                == #"{"job_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b","queued_at":"2026-11-29T19:13:03.120Z","#
                + #""stage":"queued","rejected":{"reason":"busy","retry_after":30}}"#
        )
        #expect(try SheetSyncRequestAck(jsonValue: ack.jsonValue) == ack)
        let accepted = ChatMessageFromClientAck(messageID: Self.jobID, acceptedAt: Self.queuedAt)
        #expect(
            accepted.jsonValue.jsonString
                == #"{"message_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b","accepted_at":"2026-11-29T19:13:03.120Z"}"#
        )
        // Codable goes through the same JSON form.
        let encoded = String(decoding: try JSONEncoder().encode(accepted), as: UTF8.self)
        #expect(try JSONDecoder().decode(ChatMessageFromClientAck.self, from: Data(encoded.utf8)) == accepted)
    }

    @Test func aClientsAnswerToAServerEventDecodesIntoItsAck() throws {
        #expect(try SheetSyncProgressAck(jsonValue: ["rendered": true]) == SheetSyncProgressAck(rendered: true))
        #expect(
            try SheetSyncProgressAck(jsonValue: ["rendered": false, "lag_ms": 12])
                == SheetSyncProgressAck(rendered: false, lagMs: 12)
        )
        #expect(try ServerPingAck(jsonValue: [:]) == ServerPingAck())
        do {
            _ = try SheetSyncProgressAck(jsonValue: ["rendered": "yes"])
            Issue.record("a malformed answer decoded")
        } catch let error as SocketEventDecodingError {
            #expect(error.description == "wrong type at $.rendered: expected a boolean, found a string")
        }
    }
}
