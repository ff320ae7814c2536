import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import SocketGatewayRedis
import SocketGatewayServer

/// The demo's HTTP side, behind the Socket.IO path: the page at `/`, a token endpoint and the job endpoint.
///
/// - `GET /`, `/app.js`, `/socketio-client.js`, `/sync-request.js`, `/style.css`: the page (files bundled with the
///   executable).
/// - `GET /api/sheets`: the demo sheets.
/// - `POST /api/token` `{"user":"alice"}`: a signed HS256 token for that user id (demo only: anyone may ask).
/// - `POST /api/sheets/<id>/sync` with `Authorization: Bearer <token>`: queues a sync job, answers 202 (the
///   Socket.IO event `sheet:sync:request`, the page's way, does the same: both go through ``SyncJobQueue``).
struct DemoHTTPResponder: HTTPFallbackResponder {
    /// The name of this server in logs and answers (`server-A`).
    let serverName: String
    /// The page's files, by request path.
    let files: [String: StaticFile]
    /// Verifies bearer tokens the same way the Socket.IO handshake does.
    let authenticator: JWTAuthenticator
    /// The HS256 secret tokens are signed with.
    let jwtSecret: String
    /// Queues jobs, as the `sheet:sync:request` handler does (no Redis: the job endpoint answers 503).
    let jobs: SyncJobQueue
    /// Prints the demo's one-line log entries.
    let log: DemoLog

    /// One file of the page.
    struct StaticFile: Sendable {
        var contentType: String
        var body: ByteBuffer
    }

    func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let segments = path.split(separator: "/").map(String.init)
        if segments.first == "api" {
            if head.method == .GET, segments == ["api", "sheets"] {
                return Self.json(.ok, DemoSheet.listJSON)
            }
            if head.method == .POST, segments == ["api", "token"] {
                return await self.issueToken(body: body)
            }
            if head.method == .POST, segments.count == 4, segments[1] == "sheets", segments[3] == "sync" {
                return await self.queueSync(sheetID: segments[2], headers: head.headers)
            }
            return Self.problem(.notFound, "no API endpoint \(head.method) \(path)")
        }
        guard head.method == .GET || head.method == .HEAD else {
            return Self.problem(.methodNotAllowed, "\(head.method) is not supported for \(path)")
        }
        let name = path == "/" ? "/index.html" : path
        guard let file = self.files[name] else {
            return Self.problem(.notFound, "no file \(path) here; the page is at /")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: file.contentType)
        headers.add(name: "Cache-Control", value: "no-cache")
        return HTTPFallbackResponse(
            status: .ok,
            headers: headers,
            body: head.method == .HEAD ? ByteBuffer() : file.body
        )
    }

    /// `POST /api/token`: `{"user": "<id>"}` → `{"token", "user", "expires_at"}`.
    private func issueToken(body: ByteBuffer) async -> HTTPFallbackResponse {
        let request: JSONValue
        do {
            request = try JSONValue.parse(body)
        } catch {
            return Self.problem(.badRequest, "the body must be JSON like {\"user\":\"alice\"}: \(error)")
        }
        guard let user = request["user"]?.stringValue, Self.isValidUserID(user) else {
            return Self.problem(
                .badRequest,
                "\"user\" must be 1 to 32 characters: letters, digits, '-', '_' or '.' (e.g. \"alice\")"
            )
        }
        let now = Date()
        let expiresAt = now.addingTimeInterval(DemoDefaults.tokenLifetime)
        let token: String
        do {
            let claims = DemoTokenClaims(
                sub: SubjectClaim(value: user),
                iat: IssuedAtClaim(value: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))),
                exp: ExpirationClaim(
                    value: Date(timeIntervalSince1970: expiresAt.timeIntervalSince1970.rounded(.down))
                ),
                iss: IssuerClaim(value: "sheet-sync-demo")
            )
            let keys = await JWTKeyCollection().add(hmac: HMACKey(from: self.jwtSecret), digestAlgorithm: .sha256)
            token = try await keys.sign(claims)
        } catch {
            return Self.problem(.internalServerError, "cannot sign a token: \(error)")
        }
        self.log.line("token issued for \(user) (valid \(Int(DemoDefaults.tokenLifetime / 60)) min)")
        return Self.json(
            .ok,
            .object([
                (key: "token", value: .string(token)),
                (key: "user", value: .string(user)),
                (key: "expires_at", value: .int(Int64(expiresAt.timeIntervalSince1970))),
                (key: "server", value: .string(self.serverName)),
            ])
        )
    }

    /// `POST /api/sheets/<id>/sync`: checks the bearer token, pushes the job, answers 202 with its id.
    private func queueSync(sheetID: String, headers: HTTPHeaders) async -> HTTPFallbackResponse {
        guard let authorization = headers.first(name: "Authorization"),
            authorization.lowercased().hasPrefix("bearer ")
        else {
            return Self.problem(.unauthorized, "send the token from POST /api/token as 'Authorization: Bearer <token>'")
        }
        let token = String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        let user: AuthenticatedUser
        do {
            user = try await self.authenticator.verify(auth: .object([(key: "token", value: .string(token))]))
        } catch {
            return Self.problem(.unauthorized, "\(error)")
        }
        let queued: SyncJobQueue.Queued
        switch await self.jobs.queue(sheetID: sheetID, userID: user.id, via: nil) {
        case .success(let job):
            queued = job
        case .failure(let refusal):
            switch refusal.reason {
            case .sheetNotFound: return Self.problem(.notFound, refusal.message)
            case .unavailable: return Self.problem(.serviceUnavailable, refusal.message)
            }
        }
        return Self.json(
            .accepted,
            .object([
                (key: "job_id", value: .string(queued.jobID)),
                (key: "sheet_id", value: .string(queued.job.sheetID)),
                (key: "user", value: .string(user.id)),
                (key: "queued_by", value: .string(self.serverName)),
                (key: "waiting", value: .int(queued.waiting)),
            ])
        )
    }

    /// Whether `id` is acceptable as a demo user id (it becomes the room `user:<id>`).
    static func isValidUserID(_ id: String) -> Bool {
        guard (1...32).contains(id.count) else { return false }
        return id.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "-_.".unicodeScalars.contains(scalar))
        }
    }

    static func json(_ status: HTTPResponseStatus, _ value: JSONValue) -> HTTPFallbackResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        var body = ByteBuffer()
        value.write(to: &body)
        return HTTPFallbackResponse(status: status, headers: headers, body: body)
    }

    /// An error answer: `{"error": "<what happened and what to do>"}`.
    static func problem(_ status: HTTPResponseStatus, _ message: String) -> HTTPFallbackResponse {
        Self.json(status, .object([(key: "error", value: .string(message))]))
    }

    /// Loads the page's files from the resource bundle.
    /// - Throws: `DemoSetupError` when a file is missing (a broken build).
    static func loadPublicFiles() throws -> [String: StaticFile] {
        let types = [
            "index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
            "socketio-client.js": "text/javascript; charset=utf-8",
            "sync-request.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
        ]
        var files: [String: StaticFile] = [:]
        for (name, type) in types {
            guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Public"),
                let data = try? Data(contentsOf: url)
            else {
                throw DemoSetupError(
                    "the page file Public/\(name) is missing from the executable's resource bundle (\(Bundle.module.bundlePath)); rebuild with swift build"
                )
            }
            files["/" + name] = StaticFile(contentType: type, body: ByteBuffer(bytes: data))
        }
        return files
    }
}

/// The demo cannot start; the message says why and what to do.
struct DemoSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints the demo's live log: one line per thing that happened, prefixed with the process's name, flushed at once
/// (tools/demo interleaves the lines of every process it started).
struct DemoLog: Sendable {
    let name: String

    func line(_ text: String) {
        let line = "\(self.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(text)\n"
        FileHandle.standardOutput.write(Data(line.utf8))
    }
}

/// The claims of a demo token (HS256 with the demo secret, signed by jwt-kit).
struct DemoTokenClaims: JWTPayload {
    var sub: SubjectClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    var iss: IssuerClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
