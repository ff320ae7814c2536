import Logging
import SocketGatewayServer

/// Registers the typed handlers of the interop catalog (events.yaml beside this file) on `/`: what the Python
/// suite's test_typed_events.py drives. Payloads that do not match the catalog never reach them: the server
/// refuses those itself.
func installTypedHandlers(on namespace: SocketNamespace, gateway: SocketGateway, logger: Logger) {
    // `typed:sync:request`: answers with a job for the sheet, echoing the decoded priority (default `normal`).
    namespace.on(TypedSyncRequest.self) { _, request, ack in
        let priority = request.priority ?? .normal
        ack(
            TypedSyncRequestAck(
                jobID: "job-\(request.sheetID)-\(request.tags.count)",
                sheetID: request.sheetID,
                priority: priority
            )
        )
    }

    // `typed:note` (no ack in the catalog): tells the sender what the typed handler decoded.
    namespace.on(TypedNote.self) { connection, note in
        await gateway.emit(TypedNoteSeen(text: note.text), toRoom: connection.id)
    }

    // `typed:ask-ping` {nonce}: sends the sender `typed:ping` with emitWithAck and reports the typed answer (or the
    // error) as `typed:ping:result`. Runs in its own task so the sender's later events are not held up meanwhile.
    namespace.on(TypedAskPing.self) { connection, request in
        Task {
            let result: TypedPingResult
            do {
                let answer = try await connection.emitWithAck(TypedPing(nonce: request.nonce), timeout: .seconds(5))
                result = TypedPingResult(ok: true, nonce: answer.nonce, receivedBy: answer.receivedBy)
            } catch {
                logger.info("typed ping not answered", metadata: ["error": "\(error)"])
                result = TypedPingResult(ok: false, error: "\(error)")
            }
            await gateway.emit(result, toRoom: connection.id)
        }
    }
}
