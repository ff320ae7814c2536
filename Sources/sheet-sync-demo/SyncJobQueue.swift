import Foundation
import SocketGatewayCore
import SocketGatewayRedis

/// Queues sync jobs for the server's two ways in: `POST /api/sheets/<id>/sync` and the typed client event
/// `sheet:sync:request`. Both take the same path, so a job is the same whichever way it was asked for.
struct SyncJobQueue: Sendable {
    /// The name of this server in logs and answers (`server-A`).
    let serverName: String
    /// Pushes jobs; nil when the server runs without Redis (every request is then refused as unavailable).
    let redis: RedisCommandClient?
    /// The Redis list jobs go to.
    let jobQueue: String
    /// Prints the demo's one-line log entries.
    let log: DemoLog

    /// A job that was queued.
    struct Queued: Sendable {
        var job: SyncJob
        /// Jobs waiting in the list after this one was pushed.
        var waiting: Int64
        /// The job id as events carry it (lowercase).
        var jobID: String { self.job.id.uuidString.lowercased() }
    }

    /// Why a job was not queued; `message` says what to do.
    struct Refusal: Error, CustomStringConvertible {
        enum Reason: Sendable {
            case sheetNotFound
            case unavailable
        }

        var reason: Reason
        var message: String
        var description: String { self.message }

        /// The machine-readable code a Socket.IO client gets (`sheet_not_found`, `unavailable`).
        var code: String {
            switch self.reason {
            case .sheetNotFound: "sheet_not_found"
            case .unavailable: "unavailable"
            }
        }
    }

    /// Pushes a sync of `sheetID` for `userID` onto the job list.
    /// - Parameter via: How the user asked, for the log line (nil for HTTP, the event name for Socket.IO).
    /// - Returns: the queued job, or why it was not queued.
    func queue(sheetID: String, userID: String, via: String?) async -> Result<Queued, Refusal> {
        guard let sheet = DemoSheet.named(sheetID) else {
            return .failure(
                Refusal(reason: .sheetNotFound, message: "no sheet '\(sheetID)'; GET /api/sheets lists them")
            )
        }
        guard let redis = self.redis else {
            return .failure(
                Refusal(reason: .unavailable, message: "this server runs without Redis, so no worker can take jobs")
            )
        }
        let job = SyncJob(
            id: UUID(),
            sheetID: sheet.id,
            userID: userID,
            acceptedBy: self.serverName,
            requestedAt: Date()
        )
        let waiting: Int64
        do {
            let reply = try await redis.send(["LPUSH", self.jobQueue, job.jsonValue.jsonString])
            waiting = reply.integer ?? 0
        } catch {
            self.log.line("could not queue a sync of \(sheet.id) for \(userID): \(error)")
            return .failure(Refusal(reason: .unavailable, message: "could not queue the job: \(error.message)"))
        }
        let queued = Queued(job: job, waiting: waiting)
        let how = via.map { " (\($0))" } ?? ""
        self.log.line(
            "\(userID) asked to sync \(sheet.id)\(how): job \(queued.jobID.prefix(8)) queued (\(waiting) waiting)"
        )
        return .success(queued)
    }
}
