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
            --json prints each decoded message as one JSON line instead. Messages
            not in python-socketio's format are reported on stderr and skipped.
            Prints `SUBSCRIBED <channel>` on stderr once subscribed. Runs until
            SIGINT, or until --count messages were printed.
            """
    )

    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Redis pub/sub channel (env SOCKET_REDIS_CHANNEL, default socketio).") var channel: String?
    @Flag(help: "Print each message as a JSON line.") var json = false
    @Option(help: "Exit after this many messages.") var count: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel =
        "warning"

    func validate() throws {
        if let count, count <= 0 { throw ValidationError("--count must be positive") }
    }

    func run() async throws {
        try bootstrapLogging("tail", level: self.logLevel)
        guard let text = self.redisURL ?? environment("REDIS_URL") else {
            throw fail("tail", "not configured: no Redis URL (use --redis-url or REDIS_URL)", ExitCodes.notConfigured)
        }
        let url: RedisURL
        do throws(RedisError) {
            url = try RedisURL(parsing: text)
        } catch {
            throw fail("tail", invalidRedisURLMessage(error), ExitCodes.notConfigured)
        }
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
                    printError("skipped an undecodable message (\(raw.payload.readableBytes) bytes): \(error.message)")
                    continue
                }
                printLine(
                    self.json ? message.jsonValue.jsonString : Self.line(message, size: raw.payload.readableBytes)
                )
                printed += 1
                if let count, printed >= count { break }
            }
            await subscriber.shutdown()
        }
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
