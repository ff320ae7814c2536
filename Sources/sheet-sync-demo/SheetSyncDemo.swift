// The main-job demo (run by tools/demo): browsers start sheet syncs on a server, workers do them, and each
// sync's progress reaches the browsers of the user who asked, on whichever server they are connected to.
//
//   sheet-sync-demo server --name server-A --port 8001 --redis-url redis://127.0.0.1:6379
//   sheet-sync-demo worker --name worker-1 --redis-url redis://127.0.0.1:6379

import ArgumentParser
import Foundation
import Logging
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
