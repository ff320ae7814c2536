// The main-job demo (run by tools/demo): browsers start sheet syncs on a server, workers do them, and each
// sync's progress reaches the browsers of the user who asked, on whichever server they are connected to.
//
//   sheet-sync-demo server --name server-A --port 8001 --redis-url redis://127.0.0.1:6379
//   sheet-sync-demo worker --name worker-1 --redis-url redis://127.0.0.1:6379

import ArgumentParser
import Foundation
import Logging
import SocketGatewayRedis
import SocketGatewayVersion

@main
struct SheetSyncDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sheet-sync-demo",
        abstract:
            "The SocketGateway demo: a page that starts sheet syncs, servers that queue them, workers that run them.",
        version: SocketGatewayVersion.line(for: "sheet-sync-demo"),
        subcommands: [ServerCommand.self, WorkerCommand.self]
    )
}

/// Options both commands take.
struct SharedOptions: ParsableArguments {
    @Option(help: "The name this process logs under.")
    var name: String

    @Option(help: "The Redis both servers and workers use (default: $REDIS_URL).")
    var redisURL: String?

    @Option(help: "The Redis pub/sub channel events travel on.")
    var channel: String = "socketio"

    @Option(help: "The Redis list jobs wait in.")
    var jobQueue: String = DemoDefaults.jobQueue

    @Option(help: "Library log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String = "warning"

    /// The Redis URL from the flag or `REDIS_URL`.
    var resolvedRedisURL: String? {
        if let url = self.redisURL, !url.isEmpty { return url }
        if let url = ProcessInfo.processInfo.environment["REDIS_URL"], !url.isEmpty { return url }
        return nil
    }

    /// The Redis URL, checked; exits 78 (not configured) like `socket-gateway` when it is missing or invalid.
    /// - Parameter command: `server` or `worker`, for the message.
    /// - Returns: the URL as given, and parsed.
    func checkedRedisURL(command: String) throws -> (text: String, url: RedisURL) {
        guard let text = self.resolvedRedisURL else {
            throw demoFail(
                command,
                "not configured: no Redis URL (use --redis-url or REDIS_URL; tools/demo starts a Redis)",
                DemoExitCode.notConfigured
            )
        }
        do {
            return (text, try RedisURL(parsing: text))
        } catch {
            throw demoFail(command, "not configured: \(error)", DemoExitCode.notConfigured)
        }
    }

    /// Sets up swift-log (to standard error, at `logLevel`) and returns the process's logger.
    func bootstrapLogging() throws -> Logger {
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        let name = self.name
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: "\(name) \(label)")
            handler.logLevel = level
            return handler
        }
        return Logger(label: "sheet-sync-demo")
    }
}

/// The exit codes: the numbers `socket-gateway` uses for the same situations (its `--help` lists them).
/// Wrong usage (a `ValidationError`) exits 64 through ArgumentParser, as in `socket-gateway`.
enum DemoExitCode {
    /// The server did not start (the port is in use, say).
    static let didNotStart = ExitCode(1)
    /// A file could not be read (the page's files missing from the build).
    static let fileError = ExitCode(74)
    /// Not configured: no or an invalid Redis URL.
    static let notConfigured = ExitCode(78)
}

/// Prints `sheet-sync-demo <command>: error: <reason>` on stderr and returns `code` to throw.
func demoFail(_ command: String, _ reason: String, _ code: ExitCode) -> ExitCode {
    FileHandle.standardError.write(Data("sheet-sync-demo \(command): error: \(reason)\n".utf8))
    return code
}

/// Prints `sheet-sync-demo <command>: warning: <text>` on stderr.
func demoWarn(_ command: String, _ text: String) {
    FileHandle.standardError.write(Data("sheet-sync-demo \(command): warning: \(text)\n".utf8))
}
