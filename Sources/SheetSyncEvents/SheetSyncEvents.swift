// The payload types of this module (SheetSyncStarted, SheetSyncProgress, SheetSyncCompleted, SheetSyncFailed, …)
// are generated at build time by SocketGatewayEventsPlugin from events.yaml, a symbolic link to the catalog at the
// top of the repository. The demo's worker emits them; nothing generated is committed.
