// @ts-check
// The page's typed request: `sheet:sync:request` from events.yaml's client_events, answered by its typed ack.
// The JSDoc types come from the catalog's TypeScript export (socket-gateway export --format typescript), so
// Tests/EventCodegenTests/DemoPageTypeCheckTests.swift compiles this file with `tsc --checkJs` against the export
// of events.yaml and a stand-in for socket.io-client's typed Socket: renaming the event or a field in events.yaml
// breaks that check, not the page. The browser loads no types: they live in comments only.

/**
 * A socket typed by the catalog; the page's SocketIOClient has the same on/emit/emitWithAck.
 * @typedef {import("socket.io-client").Socket<
 *   import("./sheet-sync").ServerToClientEvents, import("./sheet-sync").ClientToServerEvents>} SheetSyncSocket
 */

/**
 * Asks the server to queue a sync of `sheetId` and returns what its ack says: the job id every sheet:sync:* event
 * of the job carries, and the server that queued it.
 * @param {SheetSyncSocket} socket
 * @param {string} sheetId
 * @returns {Promise<{ jobId: string, queuedBy: string }>}
 * @throws {Error} the server's refusal (`{"error", "message"}` in place of the ack), or a lost connection
 */
export async function requestSync(socket, sheetId) {
  const ack = await socket.emitWithAck("sheet:sync:request", { sheet_id: sheetId });
  // A refusal is outside the catalog's ack type: `{"error": "invalid_payload" | "sheet_not_found" | ..., message}`.
  const refusal = /** @type {{ error?: unknown, message?: unknown }} */ (ack);
  if (typeof refusal.error === "string") throw new Error(String(refusal.message ?? refusal.error));
  return { jobId: ack.job_id, queuedBy: ack.queued_by };
}
