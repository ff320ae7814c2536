import Foundation
import Testing

@testable import _EventCodegenCore

/// The demo page's typed conversation (Sources/sheet-sync-demo/Public/sync-request.js, plain JavaScript with JSDoc
/// types: the request and its ack, and the sheet:sync:* listeners) compiled with `tsc --checkJs --strict` against the
/// TypeScript export of the demo's events.yaml and the same socket.io-client stand-in as ``TypeScriptCheckTests``:
/// the page as committed type-checks, and a renamed event, payload field or ack field, in either direction and on
/// either side, fails the check where the page uses it.
@Suite(.enabled(if: TypeScriptCompiler.path != nil, "tsc not found: apt-get install node-typescript"))
struct DemoPageTypeCheckTests {
    static let root = fixturesDirectory.deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let pageFile = "Sources/sheet-sync-demo/Public/sync-request.js"

    @Test func thePagesRequestTypeChecksAgainstTheDemoCatalog() async throws {
        let result = try await Self.check(page: Self.committedPage(), catalog: Self.committedCatalog())
        #expect(result.status == 0, "tsc refused the page's sync-request.js:\n\(result.output)")
        #expect(result.output.isEmpty, "tsc printed:\n\(result.output)")
    }

    @Test func aWrongEventNameInThePageFailsTheCheck() async throws {
        let page = try Self.replacing(
            "\"sheet:sync:request\"",
            with: "\"sheet:sync:requested\"",
            in: Self.committedPage()
        )
        let result = try await Self.check(page: page, catalog: Self.committedCatalog())
        #expect(result.status != 0, "tsc accepted an emit of sheet:sync:requested")
        #expect(
            Self.errors(result) == [
                "sync-request.js: error TS2345: Argument of type '\"sheet:sync:requested\"' is not assignable to "
                    + "parameter of type '\"sheet:sync:request\"'."
            ],
            "tsc printed:\n\(result.output)"
        )
    }

    @Test func aWrongPayloadFieldInThePageFailsTheCheck() async throws {
        let page = try Self.replacing("{ sheet_id: sheetId }", with: "{ sheet: sheetId }", in: Self.committedPage())
        let result = try await Self.check(page: page, catalog: Self.committedCatalog())
        #expect(result.status != 0, "tsc accepted a payload without sheet_id")
        #expect(
            Self.errors(result) == [
                "sync-request.js: error TS2345: Argument of type '{ sheet: string; }' is not assignable to "
                    + "parameter of type 'SheetSyncRequest'."
            ],
            "tsc printed:\n\(result.output)"
        )
    }

    @Test func anAckFieldRenamedInTheCatalogFailsThePagesCheck() async throws {
        let catalog = try Self.replacing("      queued_by:\n", with: "      server:\n", in: Self.committedCatalog())
        let result = try await Self.check(page: Self.committedPage(), catalog: catalog)
        #expect(result.status != 0, "tsc accepted the page against a catalog without queued_by")
        #expect(
            Self.errors(result) == [
                "sync-request.js: error TS2339: Property 'queued_by' does not exist on type 'SheetSyncRequestAck'."
            ],
            "tsc printed:\n\(result.output)"
        )
    }

    @Test func aServerEventRenamedInTheCatalogFailsThePagesListener() async throws {
        let catalog = try Self.replacing(
            "  sheet:sync:failed:\n",
            with: "  sheet:sync:errored:\n",
            in: Self.committedCatalog()
        )
        let result = try await Self.check(page: Self.committedPage(), catalog: catalog)
        #expect(result.status != 0, "tsc accepted a listener of sheet:sync:failed against a catalog without it")
        #expect(
            Self.errors(result) == [
                "sync-request.js: error TS2345: Argument of type '\"sheet:sync:failed\"' is not assignable to "
                    + "parameter of type '\"sheet:sync:started\" | \"sheet:sync:completed\" | \"sheet:sync:errored\" | "
                    + "\"sheet:sync:progress\"'.",
                "sync-request.js: error TS7006: Parameter 'event' implicitly has an 'any' type.",
            ],
            "tsc printed:\n\(result.output)"
        )
    }

    @Test func aServerEventFieldRenamedInTheCatalogFailsThePagesListener() async throws {
        let catalog = try Self.replacing(
            "      rows:\n        type: int\n        summary: Rows imported.\n",
            with: "      row_count:\n        type: int\n        summary: Rows imported.\n",
            in: Self.committedCatalog()
        )
        let result = try await Self.check(page: Self.committedPage(), catalog: catalog)
        #expect(result.status != 0, "tsc accepted the page against a catalog without rows")
        #expect(
            Self.errors(result) == [
                "sync-request.js: error TS2339: Property 'rows' does not exist on type 'SheetSyncCompleted'."
            ],
            "tsc printed:\n\(result.output)"
        )
    }

    static func committedPage() throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(Self.pageFile), encoding: .utf8)
    }

    /// The demo's catalog, events.yaml at the top (Sources/SheetSyncEvents/events.yaml links to it).
    static func committedCatalog() throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent("events.yaml"), encoding: .utf8)
    }

    /// `text` with its single `target` replaced; fails when `target` is not there exactly once.
    static func replacing(_ target: String, with replacement: String, in text: String) throws -> String {
        let parts = text.components(separatedBy: target)
        try #require(parts.count == 2, "'\(target)' should occur once")
        return parts.joined(separator: replacement)
    }

    /// tsc's error lines, each with its location left out (`file(line,column): error TSnnnn: message`).
    static func errors(_ result: TypeScriptCompiler.Result) -> [String] {
        result.output.split(separator: "\n").filter { $0.contains(": error TS") }.map { line in
            let file = line.prefix { $0 != "(" }
            let rest = line.drop { $0 != ")" }.dropFirst()
            return String(file + rest)
        }
    }

    /// Compiles `page` as sync-request.js beside `catalog`'s export (sheet-sync.d.ts, which the page's JSDoc imports)
    /// and the socket.io-client stand-in.
    static func check(page: String, catalog: String) async throws -> TypeScriptCompiler.Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("socketgateway-page-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let export = try GeneratorPipeline.run(
            InputFile(path: "events.yaml", contents: Array(catalog.utf8)),
            format: .typescript
        )
        try export.write(to: directory.appendingPathComponent("sheet-sync.d.ts"), atomically: true, encoding: .utf8)
        try Data(try readFixture("typescript/socket.io-client.d.ts"))
            .write(to: directory.appendingPathComponent("socket.io-client.d.ts"))
        try page.write(to: directory.appendingPathComponent("sync-request.js"), atomically: true, encoding: .utf8)
        let configuration = """
            {
              "compilerOptions": {
                "allowJs": true, "checkJs": true, "strict": true, "noEmit": true, "target": "es2020",
                "lib": ["es2020", "dom"], "module": "es2020", "moduleResolution": "node", "types": []
              },
              "files": ["socket.io-client.d.ts", "sheet-sync.d.ts", "sync-request.js"]
            }

            """
        try configuration.write(
            to: directory.appendingPathComponent("tsconfig.json"),
            atomically: true,
            encoding: .utf8
        )
        return try await TypeScriptCompiler.run(in: directory)
    }
}
