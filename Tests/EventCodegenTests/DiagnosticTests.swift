import Foundation
import Testing

@testable import _EventCodegenCore

/// Every diagnostic, one fixture each, as the exact text an editor sees: `file:line:col: error: message`.
@Suite struct DiagnosticTests {
    static let cases: [(fixture: String, expected: String)] = [
        (
            "ack-not-an-object",
            "errors/ack-not-an-object.yaml:9:10: error: the ack of client event 'job:start' must be an object: a mapping of fields like 'payload' (found 'uuid'); to answer with one value, name it, e.g. 'ack: { result: uuid }'"
        ),
        (
            "ack-type-clash",
            "errors/ack-type-clash.yaml:8:3: error: event 'job:done:ack' becomes the Swift type 'JobDoneAck', which clashes with the ack of event 'job:done'; rename one"
        ),
        (
            "alias",
            "errors/alias.yaml:6:9: error: YAML aliases are not supported in a catalog; use a named type under 'types' to reuse a definition"
        ),
        (
            "client-event-type-clash",
            "errors/client-event-type-clash.yaml:7:3: error: client event 'chat:message' becomes the Swift type 'ChatMessage', which clashes with event 'chat.message'; rename one"
        ),
        (
            "client-event-unknown-key",
            "errors/client-event-unknown-key.yaml:9:5: error: unknown key 'acks' in client event 'ping'; expected 'summary', 'namespace', 'payload', 'ack'"
        ),
        (
            "duplicate-client-event",
            "errors/duplicate-client-event.yaml:9:3: error: duplicate client event 'chat:message' (first defined at 7:3)"
        ),
        (
            "duplicate-enum-value",
            "errors/duplicate-enum-value.yaml:5:29: error: duplicate enum value 'queued' in type 'Stage' (first at 5:12)"
        ),
        (
            "duplicate-event",
            "errors/duplicate-event.yaml:6:3: error: duplicate event 'sheet:sync:started' (first defined at 4:3)"
        ),
        (
            "duplicate-field",
            "errors/duplicate-field.yaml:9:7: error: duplicate field 'rows' in event 'sheet:sync:completed' (first defined at 7:7)"
        ),
        (
            "duplicate-key",
            "errors/duplicate-key.yaml:6:5: error: duplicate key 'summary' in event 'ping' (first defined at 5:5)"
        ),
        (
            "inline-without-fields",
            "errors/inline-without-fields.yaml:7:14: error: field 'where' of event 'ping' has type 'object' but no 'fields'; declare them next to 'type', or use a named type"
        ),
        (
            "invalid-event-name",
            "errors/invalid-event-name.yaml:4:3: error: invalid event name 'sheet sync started'; use segments of letters, digits, '_' and '-' that start with a letter, separated by ':' or '.' (e.g. 'sheet:sync:completed')"
        ),
        (
            "invalid-field-name",
            "errors/invalid-field-name.yaml:7:7: error: invalid field name '2fast' in event 'ping'; use letters, digits and '_', starting with a letter"
        ),
        (
            "invalid-namespace",
            "errors/invalid-namespace.yaml:3:12: error: invalid namespace 'admin'; a Socket.IO namespace starts with '/', e.g. '/' or '/admin'"
        ),
        (
            "missing-name",
            "errors/missing-name.yaml:1:1: error: missing 'name'; name the catalog in UpperCamelCase, e.g. 'name: SheetSync' (it prefixes the generated types)"
        ),
        ("missing-summary", "errors/missing-summary.yaml:4:3: error: event 'ping' needs a one-line 'summary'"),
        (
            "missing-version",
            "errors/missing-version.yaml:1:1: error: missing 'version'; start the catalog with 'version: 1'"
        ),
        (
            "multiple-documents",
            "errors/multiple-documents.yaml:6:1: error: a catalog is a single YAML document; remove the second '---' document"
        ),
        (
            "no-events",
            "errors/no-events.yaml:3:9: error: the catalog declares no events; add at least one under 'events:'"
        ),
        (
            "not-a-mapping",
            "errors/not-a-mapping.yaml:1:1: error: a catalog is a mapping with 'version', 'name' and 'events' (found a list)"
        ),
        (
            "recursive-type",
            "errors/recursive-type.yaml:4:3: error: type 'Node' contains itself; a type may refer to itself only inside a list, e.g. '[Node]'"
        ),
        (
            "reserved-event-name",
            "errors/reserved-event-name.yaml:4:3: error: event name 'disconnect' is reserved by Socket.IO and cannot be emitted; choose another name"
        ),
        (
            "shadowing-nested-type",
            "errors/shadowing-nested-type.yaml:7:7: error: the nested type 'Error' of field 'error' of event 'job:failed' would hide Swift's or SocketGateway's 'Error'; give the field a 'name', e.g. 'name: JobFailedError'"
        ),
        (
            "swift-name-collision",
            "errors/swift-name-collision.yaml:8:7: error: fields 'sheet_id' and 'sheetId' in event 'ping' both become the Swift property 'sheetID'; rename one"
        ),
        (
            "syntax-error",
            "errors/syntax-error.yaml:5:1: error: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at 4:8)"
        ),
        (
            "type-clash",
            "errors/type-clash.yaml:7:3: error: event 'ping' becomes the Swift type 'Ping', which clashes with type 'Ping'; rename one"
        ),
        (
            "unknown-key",
            "errors/unknown-key.yaml:6:5: error: unknown key 'payloads' in event 'ping'; expected 'summary', 'namespace', 'payload', 'ack'"
        ),
        (
            "unknown-section",
            "errors/unknown-section.yaml:6:1: error: unknown key 'client-events' in the catalog; expected 'version', 'name', 'summary', 'namespace', 'types', 'events', 'client_events'"
        ),
        (
            "unknown-type",
            "errors/unknown-type.yaml:7:17: error: unknown type 'strng' for field 'sheet_id' in event 'sheet:sync:started'; did you mean 'string'? Known types: string, int, double, bool, datetime, uuid (built in); declare your own under 'types'"
        ),
        (
            "wrong-version",
            "errors/wrong-version.yaml:1:10: error: unsupported catalog version '2'; this generator reads 'version: 1'"
        ),
    ]

    @Test(arguments: Self.cases)
    func diagnostic(fixture: String, expected: String) throws {
        let path = "errors/\(fixture).yaml"
        let input = InputFile(path: path, contents: try readFixture(path))
        do {
            let catalog = try GeneratorPipeline.parseCatalog(input)
            Issue.record("\(path) was accepted as catalog \(catalog.name)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func everyErrorFixtureHasAnExpectation() throws {
        let files = try FileManager.default.contentsOfDirectory(
            atPath: fixturesDirectory.appendingPathComponent("errors").path
        )
        let fixtures = Set(files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) })
        #expect(fixtures == Set(Self.cases.map(\.fixture)))
    }

    @Test func severalProblemsAreReportedTogetherInFileOrder() throws {
        let yaml = """
            version: 1
            name: Many
            events:
              connect:
                summary: Reserved.
              ping:
                summary: Ping.
                payload:
                  a: strin
                  b: [nope]
            """
        do {
            _ = try GeneratorPipeline.parseCatalog(InputFile(path: "many.yaml", contents: Array(yaml.utf8)))
            Issue.record("accepted")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    "many.yaml:4:3: error: event name 'connect' is reserved by Socket.IO and cannot be emitted; choose another name",
                    "many.yaml:9:10: error: unknown type 'strin' for field 'a' in event 'ping'; did you mean 'string'? Known types: string, int, double, bool, datetime, uuid (built in); declare your own under 'types'",
                    "many.yaml:10:11: error: unknown type 'nope' for field 'b' in event 'ping'; known types: string, int, double, bool, datetime, uuid (built in); declare your own under 'types'",
                ]
            )
        }
    }

    @Test func anUnknownTypeIsMatchedAgainstTheDeclaredTypesToo() throws {
        let yaml = """
            version: 1
            name: Typos
            types:
              Stage:
                enum: [queued, done]
              Progress:
                fields:
                  percent: double
            events:
              ping:
                summary: Ping.
                payload:
                  stage: Stag
                  progress: "[progres]?"
                  total: interger
                  other: Widget
            """
        let known =
            "types: string, int, double, bool, datetime, uuid (built in); Progress, Stage (declared under 'types')"
        do {
            _ = try GeneratorPipeline.parseCatalog(InputFile(path: "typos.yaml", contents: Array(yaml.utf8)))
            Issue.record("accepted")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    "typos.yaml:13:14: error: unknown type 'Stag' for field 'stage' in event 'ping'; did you mean 'Stage'? Known \(known)",
                    "typos.yaml:14:17: error: unknown type 'progres' for field 'progress' in event 'ping'; did you mean 'Progress'? Known \(known)",
                    "typos.yaml:15:14: error: unknown type 'interger' for field 'total' in event 'ping'; known \(known)",
                    "typos.yaml:16:14: error: unknown type 'Widget' for field 'other' in event 'ping'; known \(known)",
                ]
            )
        }
    }

    @Test(arguments: ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"])
    func reservedNamesAreRejected(name: String) throws {
        let yaml = "version: 1\nname: R\nevents:\n  \(name):\n    summary: x\n"
        #expect(throws: CatalogError.self) {
            try GeneratorPipeline.parseCatalog(InputFile(path: "r.yaml", contents: Array(yaml.utf8)))
        }
    }
}

@Suite struct NamingTests {
    @Test(arguments: [
        ("sheet_id", "sheetID"), ("job_ids", "jobIDs"), ("id", "id"), ("url", "url"), ("tracking_url", "trackingURL"),
        ("finished_at", "finishedAt"), ("sheetId", "sheetID"), ("api_key", "apiKey"), ("html_body", "htmlBody"),
        ("very-high", "veryHigh"), ("weight_kg", "weightKg"), ("uuid", "uuid"),
    ])
    func lowerCamelCase(wire: String, swift: String) {
        #expect(SwiftNaming.lowerCamelCase(wire) == swift)
    }

    @Test(arguments: [
        ("sheet:sync:completed", "SheetSyncCompleted"), ("user.notified", "UserNotified"),
        ("order-shipped", "OrderShipped"),
        ("json_url", "JSONURL"), ("bulk:import:finished", "BulkImportFinished"), ("status_by_stage", "StatusByStage"),
    ])
    func upperCamelCase(wire: String, swift: String) {
        #expect(SwiftNaming.upperCamelCase(wire) == swift)
    }
}
