// @ts-check
// The page's typed conversation with the server: the request `sheet:sync:request` from events.yaml's client_events,
// answered by its typed ack, and the sheet:sync:* events that follow the job (every field the page reads from them
// is read here, so the rest of the page sees the page's own names).
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

/**
 * A job's events as the page shows them. Every field of a sheet:sync:* event the page uses is read in
 * `followSyncJobs`, checked against the catalog's types.
 * @typedef {{ sheetId: string, jobId: string }} JobRef
 * @typedef {{
 *   started: (event: JobRef & { sheetName: string, requestedBy: string | null }) => void,
 *   progress: (event: JobRef & { stage: string, processed: number, total: number | null, percent: number }) => void,
 *   completed: (event: JobRef & { rows: number, duration: number,
 *     warnings: { row: number, column: string | null, message: string }[] }) => void,
 *   failed: (event: JobRef & { code: string, message: string, retryable: boolean }) => void,
 * }} SyncJobView
 */

/**
 * Follows every sync job of this user: the sheet:sync:* events a worker emits to the user's room.
 * @param {SheetSyncSocket} socket
 * @param {SyncJobView} view
 */
export function followSyncJobs(socket, view) {
  socket.on("sheet:sync:started", (event) =>
    view.started({
      sheetId: event.sheet_id,
      jobId: event.job_id,
      sheetName: event.sheet_name,
      requestedBy: event.requested_by ?? null,
    }),
  );
  socket.on("sheet:sync:progress", (event) =>
    view.progress({
      sheetId: event.sheet_id,
      jobId: event.job_id,
      stage: event.stage,
      processed: event.processed,
      total: event.total ?? null,
      percent: event.percent,
    }),
  );
  socket.on("sheet:sync:completed", (event) =>
    view.completed({
      sheetId: event.sheet_id,
      jobId: event.job_id,
      rows: event.rows,
      duration: event.duration,
      warnings: event.warnings.map((w) => ({ row: w.row, column: w.column ?? null, message: w.message })),
    }),
  );
  socket.on("sheet:sync:failed", (event) =>
    view.failed({
      sheetId: event.sheet_id,
      jobId: event.job_id,
      code: event.error.code,
      message: event.error.message,
      retryable: event.error.retryable,
    }),
  );
}
