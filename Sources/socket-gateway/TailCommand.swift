import ArgumentParser
import Logging
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis

/// `socket-gateway tail`: prints every message on the cluster channel.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print every message published on the cluster channel, one line each.",
        discussion: """
            Each line: method, event, room, namespace, skip_sid, payload size and
            the origin host_id, e.g.
              emit event=progress room=user:42 ns=/ skip=- bytes=187 host=3f2a...
            --json prints each message's JSON text instead, as it was received
            (numbers keep their digits); only characters a terminal would act on
            are escaped, so each line is still the same JSON. Messages not in
            python-socketio's format (a pickled one, say) are reported on stderr,
            escaped, and skipped.
            Prints `SUBSCRIBED <channel>` on stderr once subscribed. Runs until
            SIGINT, or until --count messages were printed.

            EXAMPLE
              socket-gateway tail --redis-url redis://127.0.0.1:6379 --json --count 10
            """
    )

    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL, no default: one of the two is needed).")
    var redisURL: String?
    @Option(help: "Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).") var channel: String?
    @Flag(help: "Print each message's JSON text as received, one line each.") var json = false
    @Option(help: "Exit after this many messages (default: run until SIGINT)") var count: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical")
    var logLevel = "warning"

    func validate() throws {
        if let count, count <= 0 { throw ValidationError("--count must be positive") }
    }

    func run() async throws {
        try bootstrapLogging("tail", level: self.logLevel)
        guard let text = self.redisURL ?? environment("REDIS_URL") else {
            throw fail("tail", "not configured: no Redis URL (use --redis-url or REDIS_URL)", ExitCodes.notConfigured)
        }
        let url = try resolveRedisURL(text, command: "tail")
        url.warnIfTLSVerificationRelaxed(Logger(label: "socket-gateway.tail"))
        // The subscriber retries forever, which rides out an outage but not a wrong password: check that first.
        if let refusal = await redisRefusal(url) {
            throw fail("tail", redisRefusalMessage(refusal, url: url), ExitCodes.notConfigured)
        }
        let channel = self.channel ?? environment("SOCKET_REDIS_CHANNEL") ?? "socketio"
        let (subscriber, messages) = RedisSubscriber.makeStream(
            url: url,
            channels: [channel],
            logger: Logger(label: "socket-gateway.tail")
        )
        subscriber.start()
        await withDiscardingTaskGroup { group in
            // A child task, not a free one: it ends when subscribed, or when the subscriber is shut down below.
            group.addTask {
                if await subscriber.waitUntilSubscribed(timeout: .seconds(3600)) {
                    printError("SUBSCRIBED \(channel) at \(url.redacted)")
                }
            }
            var printed = 0
            for await raw in messages {
                let message: PubSubMessage
                do throws(PubSubMessageError) {
                    message = try PubSubMessage.decode(raw.payload)
                } catch {
                    printError(Self.skipped(raw.payload, error))
                    continue
                }
                printLine(self.json ? Self.wireJSON(raw.payload) : Self.line(message, size: raw.payload.readableBytes))
                printed += 1
                if let count, printed >= count { break }
            }
            await subscriber.shutdown()
        }
    }

    /// The message's JSON text as received, on one line that a terminal shows rather than runs.
    ///
    /// Nothing is parsed and written again, so `12345678901234567890` and `1.0` keep their digits. Inside strings a
    /// character a terminal would act on becomes its JSON escape (`\u001b`); between tokens a line break or tab
    /// becomes a space. The line is the same JSON value as the message.
    static func wireJSON(_ payload: ByteBuffer) -> String {
        let text = String(decoding: payload.readableBytesView, as: UTF8.self)
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var inString = false
        var escaped = false
        for scalar in text.unicodeScalars {
            if inString {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    inString = false
                } else if LogSafe.isUnsafeOnTerminal(scalar) {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                    continue
                }
            } else if scalar == "\"" {
                inString = true
            } else if LogSafe.isUnsafeOnTerminal(scalar) {
                output += " "
                continue
            }
            output.unicodeScalars.append(scalar)
        }
        return output
    }

    /// The stderr line for a message that is skipped: why, its size, and its start escaped (bytes that are not
    /// UTF-8 as `\xNN`), never raw bytes.
    static func skipped(_ payload: ByteBuffer, _ error: PubSubMessageError) -> String {
        let size = payload.readableBytes
        let shown = LogSafe.excerpt(payload.readableBytesView, limit: 200)
        if error.code == .notJSON {
            return "skipped a message of \(size) bytes that is not JSON (pickled, as older python-socketio"
                + " versions publish?); it starts: \(shown)"
        }
        return "skipped a message of \(size) bytes that is not in python-socketio's format (\(error.message));"
            + " it starts: \(shown)"
    }

    static func line(_ message: PubSubMessage, size: Int) -> String {
        // Names come from whoever can publish on the channel: escaped, so a line stays one line and a terminal
        // escape is shown, not run.
        func safe(_ text: String) -> String { LogSafe.text(text) }
        func names(_ names: PubSubNames) -> String {
            switch names {
            case .none: return "-"
            case .one(let name): return safe(name)
            case .list(let names): return "[" + names.map(safe).joined(separator: ",") + "]"
            }
        }
        switch message {
        case .emit(let emit):
            var line = "emit event=\(safe(emit.event)) room=\(names(emit.room)) ns=\(safe(emit.namespace))"
            line += " skip=\(names(emit.skipSid))"
            line += " bytes=\(size)"
            if emit.isBinary { line += " binary" }
            if let callback = emit.callback { line += " callback=\(callback.id)" }
            return line + " host=\(safe(emit.hostID))"
        case .enterRoom(let sid, let room, let namespace, let hostID):
            return "enter_room sid=\(safe(sid)) room=\(safe(room)) ns=\(safe(namespace)) bytes=\(size)"
                + " host=\(safe(hostID))"
        case .leaveRoom(let sid, let room, let namespace, let hostID):
            return "leave_room sid=\(safe(sid)) room=\(safe(room)) ns=\(safe(namespace)) bytes=\(size)"
                + " host=\(safe(hostID))"
        case .closeRoom(let room, let namespace, let hostID):
            return "close_room room=\(safe(room)) ns=\(safe(namespace)) bytes=\(size) host=\(safe(hostID))"
        case .disconnect(let sid, let namespace, let hostID):
            return "disconnect sid=\(safe(sid)) ns=\(safe(namespace)) bytes=\(size) host=\(safe(hostID))"
        case .callback(let hostID, let sid, let namespace, let id, _):
            return "callback sid=\(safe(sid)) id=\(id) ns=\(safe(namespace)) bytes=\(size) to=\(safe(hostID))"
        }
    }
}
