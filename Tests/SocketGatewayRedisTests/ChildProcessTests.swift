import Foundation
import SocketGatewayRedisTestKit
import Testing

/// The test kit's `ChildProcess.run` against real `/bin/sh -c` children: output and exit status, a child that
/// writes more than a pipe buffer, the time limit (which kills grandchildren too), cancellation, and that waiting
/// never holds a thread of the cooperative pool.
@Suite(.timeLimit(.minutes(2))) struct ChildProcessTests {
    private static func shell(
        _ script: String,
        _ arguments: [String] = [],
        timeout: Duration = .seconds(60),
        outputLimit: Int = 16 << 20
    ) async throws -> ChildProcess.Result {
        try await ChildProcess.run(
            "/bin/sh",
            ["-c", script, "sh"] + arguments,
            timeout: timeout,
            outputLimit: outputLimit
        )
    }

    @Test func standardOutputAndErrorAreCollectedAndTheExitStatusReturned() async throws {
        let result = try await Self.shell("echo out; echo err >&2; exit 3")
        #expect(result.status == 3)
        #expect(result.output == "out\nerr\n")
        #expect(!result.outputTruncated)
        #expect(try await Self.shell("true").status == 0)
    }

    @Test func aChildEndedBySignalReportsOneHundredTwentyEightPlusTheSignal() async throws {
        #expect(try await Self.shell("kill -KILL $$").status == 128 + SIGKILL)
    }

    @Test func environmentAndWorkingDirectoryAreTheChildsOwn() async throws {
        let result = try await ChildProcess.run(
            "sh",
            ["-c", "echo \"$GREETING\"; pwd"],
            environment: ["GREETING": "hello ✓", "PATH": "/usr/bin:/bin"],
            currentDirectory: "/"
        )
        #expect(result.output == "hello ✓\n/\n")
    }

    /// 1 MB is many pipe buffers (64 KiB on Linux): the child never blocks on a full pipe, and nothing is lost.
    @Test func aChildWritingMoreThanAPipeBufferIsReadToTheEnd() async throws {
        let result = try await Self.shell("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo end")
        #expect(result.status == 0)
        #expect(result.output == String(repeating: "x", count: 1_000_000) + "\nend\n")

        let limited = try await Self.shell("head -c 1000000 /dev/zero | tr '\\0' x", outputLimit: 1000)
        #expect(limited.status == 0)
        #expect(limited.output == String(repeating: "x", count: 1000))
        #expect(limited.outputTruncated)
    }

    @Test func aMissingExecutableIsNamed() async throws {
        let error = try await #require(throws: ChildProcess.Failure.self) {
            try await ChildProcess.run("socketgateway-no-such-tool", ["--flag"])
        }
        #expect(error.description.contains("`socketgateway-no-such-tool --flag` cannot start"))
    }

    /// The shell forks a background `sleep` that holds the pipe open: the run ends only because the whole process
    /// group is killed (killing the shell alone would leave the reader waiting for that grandchild).
    @Test func pastItsTimeLimitTheProcessGroupIsKilledAndTheCommandNamed() async throws {
        let error = try await #require(throws: ChildProcess.Failure.self) {
            try await Self.shell("echo started; sleep 600 & sleep 600", timeout: .milliseconds(300))
        }
        #expect(error.command == ["/bin/sh", "-c", "echo started; sleep 600 & sleep 600", "sh"])
        #expect(error.reason == "ran longer than 0.3 seconds and was killed")
        #expect(error.output == "started\n")
        #expect(error.description.hasPrefix("`/bin/sh -c echo started; sleep 600 & sleep 600 sh` ran longer than"))
    }

    /// Cancelling the waiting task kills the child and reaps it before `run` throws.
    @Test func cancellingTheCallerKillsAndReapsTheChild() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("childprocess-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = directory.appendingPathComponent("pid").path
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let error = await #expect(throws: CancellationError.self) {
                    try await Self.shell("echo $$ > \"$1.new\"; mv \"$1.new\" \"$1\"; exec sleep 600", [pidFile])
                }
                #expect(error != nil)
            }
            let pid = try await Self.waitForFile(pidFile).flatMap { Int32($0.trimmingCharacters(in: .newlines)) }
            group.cancelAll()
            try await group.waitForAll()
            let child = try #require(pid)
            // Reaped by `run`: the PID names no process (not even a zombie) any more.
            #expect(kill(child, 0) == -1 && errno == ESRCH)
        }
    }

    /// More children than the cooperative pool has threads wait together for a file that only this task creates
    /// after seeing them all started: if a waiting child held a pool thread, this task could not run and every
    /// run would end at its time limit instead.
    @Test func waitingChildrenHoldNoThreadOfTheCooperativePool() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("childprocess-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let count = ProcessInfo.processInfo.activeProcessorCount + 2
        let go = directory.appendingPathComponent("go").path
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<count {
                let started = directory.appendingPathComponent("started-\(index)").path
                group.addTask {
                    let script = "touch \"$1\"; while [ ! -e \"$2\" ]; do sleep 0.01; done; echo \"done $3\""
                    return try await Self.shell(script, [started, go, String(index)], timeout: .seconds(60)).output
                }
            }
            for index in 0..<count {
                _ = try await Self.waitForFile(directory.appendingPathComponent("started-\(index)").path)
            }
            #expect(FileManager.default.createFile(atPath: go, contents: nil))
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(outputs) == Set((0..<count).map { "done \($0)\n" }))
    }

    /// The file's text once it exists (bounded: 30 s, polling every 10 ms).
    private static func waitForFile(_ path: String) async throws -> String? {
        for _ in 0..<3000 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { return text }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}
