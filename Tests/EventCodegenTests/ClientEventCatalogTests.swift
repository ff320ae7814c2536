import Foundation
import Testing

@testable import _EventCodegenCore

/// The `client_events` section and `ack` on events of either direction: what the parser builds from them, the Swift
/// names it gives them, and the located diagnostics for their mistakes.
@Suite struct ClientEventCatalogTests {
    private static func parse(_ yaml: String, path: String = "catalog.yaml") throws(CatalogError) -> Catalog {
        try GeneratorPipeline.parseCatalog(InputFile(path: path, contents: Array(yaml.utf8)))
    }

    private static func diagnostics(_ yaml: String, path: String = "catalog.yaml") -> [String] {
        do {
            let catalog = try Self.parse(yaml, path: path)
            Issue.record("accepted as catalog \(catalog.name)")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func bothDirectionsAndAcksAreRead() throws {
        let input = InputFile(path: "events.yaml", contents: try readFixture("golden/both-ways/events.yaml"))
        let catalog = try GeneratorPipeline.parseCatalog(input)

        #expect(catalog.events.map(\.name) == ["chat:message", "server:ping", "sheet:sync:progress"])
        #expect(catalog.clientEvents.map(\.name) == ["chat:message", "room:leave", "sheet:sync:request", "typing"])
        #expect(catalog.namespaces == ["/", "/rooms"])

        // One wire name both ways: the server event keeps the plain name, the client event takes `FromClient`.
        let serverChat = try #require(catalog.events.first { $0.name == "chat:message" })
        let clientChat = try #require(catalog.clientEvents.first { $0.name == "chat:message" })
        #expect(serverChat.typeName == "ChatMessage")
        #expect(serverChat.caseName == "chatMessage")
        #expect(serverChat.ack == nil)
        #expect(clientChat.typeName == "ChatMessageFromClient")
        #expect(clientChat.caseName == "chatMessageFromClient")
        #expect(clientChat.ackTypeName == "ChatMessageFromClientAck")
        #expect(clientChat.payload.map(\.wireName) == ["room", "text"])
        #expect(clientChat.ack?.map(\.wireName) == ["message_id", "accepted_at"])
        #expect(clientChat.ack?.map(\.type) == [.uuid, .datetime])

        // A client event alone keeps the plain name; its ack has every field kind a payload has.
        let request = try #require(catalog.clientEvents.first { $0.name == "sheet:sync:request" })
        #expect(request.typeName == "SheetSyncRequest")
        #expect(request.ackTypeName == "SheetSyncRequestAck")
        #expect(request.namespace == "/")
        #expect(request.payload.map(\.swiftName) == ["sheetID", "priority", "columns"])
        #expect(request.payload.last?.type == .optional(.array(.string)))
        let ack = try #require(request.ack)
        #expect(ack.map(\.swiftName) == ["jobID", "queuedAt", "stage", "rejected"])
        #expect(ack[2].type == .named("SyncStage"))
        guard case .optional(.inline(let rejected)) = ack[3].type, case .object(let fields) = rejected.definition
        else {
            Issue.record("'rejected' is not an optional inline object: \(ack[3].type)")
            return
        }
        #expect(rejected.name == "Rejected")
        #expect(fields.map(\.wireName) == ["reason", "retry_after"])
        #expect(ack[3].summary == "Set when the server refused the request.")

        // A server event's ack; an empty ack (`ack: {}`) is an object without fields, not "no ack".
        let progress = try #require(catalog.events.first { $0.name == "sheet:sync:progress" })
        #expect(progress.ack?.map(\.type) == [.bool, .optional(.int)])
        #expect(catalog.events.first { $0.name == "server:ping" }?.ack == [])

        let leave = try #require(catalog.clientEvents.first { $0.name == "room:leave" })
        #expect(leave.namespace == "/rooms")
        #expect(leave.ack == nil)
        let typing = try #require(catalog.clientEvents.first { $0.name == "typing" })
        #expect(typing.payload.isEmpty)
        #expect(typing.ack == nil)

        #expect(
            GeneratorPipeline.checkedLine(path: "events.yaml", catalog: catalog)
                == "OK: events.yaml: catalog BothWays version 1, 3 events, 4 client events, 2 types"
        )
    }

    // The sheet-sync catalog (the demo's) has had the client event sheet:sync:request since the demo used it.
    @Test(arguments: ["kitchen-sink"])
    func serverOnlyCatalogsHaveNoClientEventsAndNoAcks(catalog name: String) throws {
        let input = InputFile(path: "events.yaml", contents: try readFixture("golden/\(name)/events.yaml"))
        let catalog = try GeneratorPipeline.parseCatalog(input)
        #expect(catalog.clientEvents.isEmpty)
        #expect(catalog.events.allSatisfy { $0.ack == nil })
        #expect(!GeneratorPipeline.checkedLine(path: "events.yaml", catalog: catalog).contains("client"))
    }

    @Test func emptyAckValuesAreObjectsWithoutFields() throws {
        let catalog = try Self.parse(
            """
            version: 1
            name: Empty
            events:
              a:
                summary: Block style, nothing after the colon.
                ack:
              b:
                summary: Flow style.
                ack: {}
            client_events:
              c:
                summary: A client event with an empty ack.
                ack: {}
            """
        )
        #expect(catalog.events.map(\.ack) == [[], []])
        #expect(catalog.clientEvents.map(\.ack) == [[]])
    }

    @Test func aClientEventNamedLikeAServerEventInAnotherNamespaceStillTakesTheSuffix() throws {
        let catalog = try Self.parse(
            """
            version: 1
            name: Rooms
            events:
              join:
                summary: Someone joined.
            client_events:
              join:
                summary: Join a room.
                namespace: /rooms
            """
        )
        #expect(catalog.clientEvents.map(\.typeName) == ["JoinFromClient"])
        #expect(catalog.namespaces == ["/", "/rooms"])
    }

    @Test func mistakesInClientEventsAndAcksAreReportedTogetherInFileOrder() {
        let yaml = """
            version: 1
            name: Many
            events:
              chat:message:
                summary: Pushed.
                ack: [string]
              chat:message:from-client:
                summary: Named like the client event below once it takes its suffix.
            client_events:
              chat:message:
                summary: Posted.
                ack:
                  id: uuidd
                  id: uuid
              disconnect:
                summary: Reserved.
              upload:
                payload:
                  size: int
              odd:
                summary: Its ack's nested type would hide Swift's Error.
                ack:
                  error:
                    fields:
                      code: int
            """
        let known = "types: string, int, double, bool, datetime, uuid (built in); declare your own under 'types'"
        #expect(
            Self.diagnostics(yaml, path: "many.yaml") == [
                "many.yaml:6:10: error: the ack of event 'chat:message' must be an object: a mapping of fields like 'payload' (found a list); to answer with a list, name it, e.g. 'ack: { items: [string] }'",
                "many.yaml:10:3: error: client event 'chat:message' becomes the Swift type 'ChatMessageFromClient', which clashes with event 'chat:message:from-client'; rename one",
                "many.yaml:13:11: error: unknown type 'uuidd' for field 'id' in the ack of client event 'chat:message'; did you mean 'uuid'? Known \(known)",
                "many.yaml:14:7: error: duplicate field 'id' in the ack of client event 'chat:message' (first defined at 13:7)",
                "many.yaml:15:3: error: event name 'disconnect' is reserved by Socket.IO and cannot be emitted; choose another name",
                "many.yaml:17:3: error: client event 'upload' needs a one-line 'summary'",
                "many.yaml:23:7: error: the nested type 'Error' of field 'error' of the ack of client event 'odd' would hide Swift's or SocketGateway's 'Error'; give the field a 'name', e.g. 'name: OddError'",
            ]
        )
    }

    @Test func theRefusalEventNameIsReservedInBothDirections() {
        let yaml = """
            version: 1
            name: Refusals
            events:
              socketgateway:error:
                summary: Would look like a refusal to every client.
            client_events:
              socketgateway:error:
                summary: Would never reach its handler's sender as an answer.
            """
        let message =
            "error: event name 'socketgateway:error' is reserved by SocketGateway: it carries the refusal of a client event whose payload does not match the catalog; choose another name"
        #expect(
            Self.diagnostics(yaml, path: "refusals.yaml") == [
                "refusals.yaml:4:3: \(message)", "refusals.yaml:7:3: \(message)",
            ]
        )
    }

    @Test func namesTheTypeScriptExportDeclaresAreTaken() {
        let yaml = """
            version: 1
            name: Names
            types:
              ClientToServerEvents:
                enum: [a]
            events:
              server:to:client:events:
                summary: Would be the interface ServerToClientEvents.
              names:event:namespaces:
                summary: Would be NamesEventNamespaces.
            client_events:
              names:client:event:name:
                summary: Would be NamesClientEventName.
            """
        #expect(
            Self.diagnostics(yaml, path: "names.yaml") == [
                "names.yaml:4:3: error: type name 'ClientToServerEvents' clashes with the TypeScript export's 'ClientToServerEvents'; rename the type",
                "names.yaml:7:3: error: event 'server:to:client:events' becomes the Swift type 'ServerToClientEvents', which clashes with the TypeScript export's 'ServerToClientEvents'; rename one",
                "names.yaml:9:3: error: event 'names:event:namespaces' becomes the Swift type 'NamesEventNamespaces', which clashes with the TypeScript export's 'NamesEventNamespaces'; rename one",
                "names.yaml:12:3: error: client event 'names:client:event:name' becomes the Swift type 'NamesClientEventName', which clashes with the TypeScript export's 'NamesClientEventName'; rename one",
            ]
        )
    }

    @Test func clientEventsMustBeAMapping() {
        let yaml = """
            version: 1
            name: List
            events:
              pong:
                summary: Pong.
            client_events: [ping]
            """
        #expect(
            Self.diagnostics(yaml) == [
                "catalog.yaml:6:16: error: 'client_events' must be a mapping (found a list)"
            ]
        )
    }
}
