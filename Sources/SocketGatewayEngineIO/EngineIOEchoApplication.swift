/// An Engine.IO application that sends every message back unchanged (text as text, binary as binary).
///
/// This is what the official Engine.IO protocol test suite expects at `/engine.io/`.
package final class EngineIOEchoApplication: EngineIOApplication {
    /// Creates the echo application.
    package init() {}

    /// Nothing to do when a session opens.
    package func sessionOpened(_ session: EngineIOSession) {}

    /// Sends `message` back on the same session, unchanged.
    package func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
        switch message {
        case .text(let payload):
            session.sendMessage(payload)
        case .binary(let bytes):
            session.sendBinary(bytes)
        }
    }

    /// Nothing to clean up.
    package func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {}
}
