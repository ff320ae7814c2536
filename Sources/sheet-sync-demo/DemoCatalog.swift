import Foundation
import SheetSyncEvents
import SocketGatewayCore

/// A spreadsheet the demo can sync. Everything about a sync is derived from it, so runs are reproducible.
struct DemoSheet: Sendable, Hashable {
    /// The id used in URLs and events (`sheet_id`).
    var id: String
    /// The name shown on the page (`sheet_name`).
    var name: String
    /// Rows the sync imports.
    var rows: Int
    /// Rows imported with a problem (`warnings` of `sheet:sync:completed`).
    var warnings: [SyncWarning]
    /// When set, the sync stops at this stage with this error instead of completing.
    var failure: (stage: SyncStage, error: SheetSyncFailed.SyncFailure)?

    static func == (lhs: DemoSheet, rhs: DemoSheet) -> Bool { lhs.id == rhs.id }
    func hash(into hasher: inout Hasher) { hasher.combine(self.id) }

    /// The sheets every demo user sees.
    static let all: [DemoSheet] = [
        DemoSheet(id: "budget-2026", name: "Budget 2026", rows: 1240, warnings: [], failure: nil),
        DemoSheet(
            id: "customers",
            name: "Customers",
            rows: 3816,
            warnings: [
                SyncWarning(row: 212, column: "E", message: "phone number has no country code; kept as written"),
                SyncWarning(row: 3077, column: nil, message: "duplicate of row 1180; both kept"),
            ],
            failure: nil
        ),
        DemoSheet(id: "inventory", name: "Inventory", rows: 642, warnings: [], failure: nil),
        DemoSheet(
            id: "legacy-import",
            name: "Legacy import (broken)",
            rows: 918,
            warnings: [],
            failure: (
                .validating,
                SheetSyncFailed.SyncFailure(
                    code: .invalidData,
                    message: "row 118, column D: 'N/A' is not a date (expected YYYY-MM-DD)",
                    retryable: false
                )
            )
        ),
    ]

    /// The sheet with this id, if the demo has one.
    static func named(_ id: String) -> DemoSheet? { Self.all.first { $0.id == id } }

    /// The sheet list as the page's `GET /api/sheets` returns it.
    static var listJSON: JSONValue {
        .array(
            Self.all.map { sheet in
                .object([
                    (key: "id", value: .string(sheet.id)),
                    (key: "name", value: .string(sheet.name)),
                    (key: "rows", value: .int(Int64(sheet.rows))),
                ])
            }
        )
    }
}

/// A sync request waiting in (or taken from) the Redis job list, as JSON.
struct SyncJob: Sendable, Hashable {
    /// The job's id, also the `job_id` of every event it produces.
    var id: UUID
    /// The sheet to sync.
    var sheetID: String
    /// The user who asked; events go to `user:<id>`.
    var userID: String
    /// The server that accepted the request (for the log).
    var acceptedBy: String
    /// When the request was accepted.
    var requestedAt: Date

    /// The JSON pushed onto the job list.
    var jsonValue: JSONValue {
        .object([
            (key: "job_id", value: .string(self.id.uuidString.lowercased())),
            (key: "sheet_id", value: .string(self.sheetID)),
            (key: "user_id", value: .string(self.userID)),
            (key: "accepted_by", value: .string(self.acceptedBy)),
            (key: "requested_at", value: .double(self.requestedAt.timeIntervalSince1970)),
        ])
    }

    /// Reads a job from the list's JSON.
    /// - Throws: `SyncJobError` naming the missing or malformed field.
    init(jsonText: String) throws(SyncJobError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(jsonText)
        } catch {
            throw SyncJobError(detail: "not JSON (\(error)): \(jsonText.prefix(200))")
        }
        guard let idText = value["job_id"]?.stringValue, let id = UUID(uuidString: idText) else {
            throw SyncJobError(detail: "job_id is missing or not a UUID")
        }
        guard let sheetID = value["sheet_id"]?.stringValue else { throw SyncJobError(detail: "sheet_id is missing") }
        guard let userID = value["user_id"]?.stringValue else { throw SyncJobError(detail: "user_id is missing") }
        self.id = id
        self.sheetID = sheetID
        self.userID = userID
        self.acceptedBy = value["accepted_by"]?.stringValue ?? "?"
        self.requestedAt = Date(timeIntervalSince1970: value["requested_at"]?.doubleValue ?? 0)
    }

    init(id: UUID, sheetID: String, userID: String, acceptedBy: String, requestedAt: Date) {
        self.id = id
        self.sheetID = sheetID
        self.userID = userID
        self.acceptedBy = acceptedBy
        self.requestedAt = requestedAt
    }
}

/// A job on the list could not be read.
struct SyncJobError: Error, CustomStringConvertible {
    var detail: String
    var description: String { "unreadable sync job: \(self.detail)" }
}

/// Settings both commands share.
enum DemoDefaults {
    /// The Redis list jobs wait in (LPUSH by servers, BRPOP by workers).
    static let jobQueue = "sheet-sync-demo:jobs"
    /// The HS256 secret of the demo's tokens. A demo value: real deployments read a secret from their vault.
    static let jwtSecret = "sheet-sync-demo-secret-not-for-production"
    /// How long a demo token is valid.
    static let tokenLifetime: TimeInterval = 3600
}
