public import Foundation

/// Runs a short-lived command (`redis-cli`, `openssl`, `tsc`, a Python probe) to completion from async test code
/// without blocking a thread of Swift's cooperative pool, which has only as many threads as the machine has cores.
///
/// The child starts with `posix_spawn` in a process group of its own, with an empty signal mask and default signal
/// handlers, standard input from `/dev/null`, and standard output and error both into one pipe. A dedicated
/// thread reads that pipe to its end and then reaps the child with `waitpid`; the calling task only awaits that
/// thread's result. The run is bounded by `timeout`: past it, or when the calling task is cancelled, the whole
/// process group is killed with SIGKILL (so a grandchild that holds the pipe open dies too) and the run ends.
public enum ChildProcess {
    /// How a run ended.
    public struct Result: Sendable {
        /// The exit status, or 128 + the signal number when a signal ended the child (as a shell reports it).
        public var status: Int32
        /// Standard output and standard error together, decoded as UTF-8 (at most `outputLimit` bytes of it).
        public var output: String
        /// Whether the child wrote more than `outputLimit` bytes (the rest was read and dropped).
        public var outputTruncated: Bool
    }

    /// Why a run failed: the command could not start, or it ran past its time limit and was killed.
    public struct Failure: Error, CustomStringConvertible {
        /// The command line, for the message.
        public var command: [String]
        /// What went wrong.
        public var reason: String
        /// What the child wrote before it failed (empty when it did not start).
        public var output: String

        /// What went wrong, with the command and the end of its output.
        public var description: String {
            let text = self.output.isEmpty ? "" : "; its output:\n\(self.output.suffix(2000))"
            return "`\(self.command.joined(separator: " "))` \(self.reason)\(text)"
        }
    }

    /// Runs `executable` with `arguments` and waits (without blocking a cooperative thread) until it exits.
    /// - Parameters:
    ///   - executable: A path, or a name looked up on `PATH` (and in /usr/local/bin, /usr/bin, /usr/sbin, /bin).
    ///   - arguments: The arguments after the executable.
    ///   - environment: The child's whole environment; `nil` passes this process's environment on.
    ///   - currentDirectory: Where the child starts; `nil` keeps this process's working directory.
    ///   - timeout: How long the child may run before its process group is killed and ``Failure`` thrown.
    ///   - outputLimit: How many bytes of output are kept (default 16 MiB); the rest is read and dropped.
    /// - Returns: The exit status and the output, whatever the status (the caller decides what is a failure).
    /// - Throws: ``Failure`` when the executable is missing or cannot start, or the child runs past `timeout`;
    ///   `CancellationError` when the calling task is cancelled (the child is killed and reaped first).
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        currentDirectory: String? = nil,
        timeout: Duration = .seconds(60),
        outputLimit: Int = 16 << 20
    ) async throws -> Result {
        let command = [executable] + arguments
        guard let path = executable.contains("/") ? executable : RedisServerProcess.findExecutable(executable) else {
            throw Failure(
                command: command,
                reason: "cannot start: \(executable) is not installed or not on PATH",
                output: ""
            )
        }
        let (pid, output) = try Self.spawn(
            [path] + arguments,
            environment: environment,
            currentDirectory: currentDirectory,
            command: command
        )
        let (first, collected) = await withTaskGroup(of: Event.self) { group -> (Event, Collected) in
            group.addTask { .exited(await Self.collect(pid: pid, output: output, limit: outputLimit)) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timerFired
                } catch {
                    return .cancelled
                }
            }
            var first: Event?
            for await event in group {
                if case .exited(let collected) = event {
                    group.cancelAll()
                    return (first ?? event, collected)
                }
                // The whole group: `sh -c` may have forked the command instead of running it in its place.
                first = first ?? event
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
            }
            fatalError("the reaper thread always resumes")
        }
        switch first {
        case .exited:
            return Self.result(collected)
        case .timerFired:
            throw Failure(
                command: command,
                reason: "ran longer than \(timeout) and was killed",
                output: Self.result(collected).output
            )
        case .cancelled:
            throw CancellationError()
        }
    }

    /// Waits until a Foundation `Process` (a long-running peer such as a Python server) has exited, polling every
    /// 10 ms with `Task.sleep` instead of blocking a thread as `waitUntilExit()` does.
    /// - Returns: `true` once it has exited; `false` when it still runs after `timeout`.
    public static func waitForExit(_ process: Process, timeout: Duration = .seconds(10)) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while process.isRunning {
            guard clock.now < end else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// What the reaper thread hands back: `waitpid`'s raw status (or `nil` when it could not wait), the output
    /// and whether some was dropped.
    private struct Collected: Sendable {
        var rawStatus: Int32?
        var output: [UInt8]
        var truncated: Bool
    }

    /// What ends the wait: the reaper thread's result, the time limit, or the calling task's cancellation.
    private enum Event: Sendable {
        case exited(Collected)
        case timerFired
        case cancelled
    }

    private static func result(_ collected: Collected) -> Result {
        let status: Int32
        switch collected.rawStatus {
        case .some(let raw) where raw & 0x7f == 0: status = (raw >> 8) & 0xff
        case .some(let raw): status = 128 + (raw & 0x7f)
        case .none: status = -1
        }
        return Result(
            status: status,
            output: String(decoding: collected.output, as: UTF8.self),
            outputTruncated: collected.truncated
        )
    }

    /// Reads `output` to its end and reaps `pid` on a thread of its own (both calls block), and resumes with what
    /// it got. Ends when the child and every process holding the pipe's write end have exited or been killed.
    private static func collect(pid: pid_t, output: Int32, limit: Int) async -> Collected {
        await withCheckedContinuation { (continuation: CheckedContinuation<Collected, Never>) in
            let thread = Thread {
                var kept: [UInt8] = []
                var truncated = false
                var buffer = [UInt8](repeating: 0, count: 64 << 10)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
                    if count > 0 {
                        let room = max(0, limit - kept.count)
                        kept.append(contentsOf: buffer[..<min(count, room)])
                        truncated = truncated || count > room
                    } else if count == 0 || errno != EINTR {
                        break
                    }
                }
                close(output)
                var raw: Int32 = 0
                var reaped = waitpid(pid, &raw, 0)
                while reaped == -1 && errno == EINTR { reaped = waitpid(pid, &raw, 0) }
                continuation.resume(
                    returning: Collected(rawStatus: reaped == pid ? raw : nil, output: kept, truncated: truncated)
                )
            }
            thread.name = "ChildProcess \(pid)"
            thread.start()
        }
    }

    /// Starts `arguments[0]` in a new process group with output into a new pipe; returns its PID and the pipe's
    /// read end. Both pipe ends are close-on-exec, so no other child started meanwhile keeps the pipe open.
    private static func spawn(
        _ arguments: [String],
        environment: [String: String]?,
        currentDirectory: String?,
        command: [String]
    ) throws -> (pid_t, Int32) {
        var fds: [Int32] = [0, 0]
        guard GNU.pipe2(&fds, O_CLOEXEC) == 0 else {
            throw Failure(command: command, reason: "cannot start: pipe2 failed (errno \(errno))", output: "")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        Self.resetSignals(&attributes, ownProcessGroup: true)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        if let currentDirectory { _ = GNU.addChdir(&actions, currentDirectory) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let variables = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for pointer in variables ?? [] { free(pointer) } }
        var pid: pid_t = 0
        let result: Int32
        if var variables {
            result = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, &variables)
        } else {
            result = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        }
        close(fds[1])
        guard result == 0 else {
            close(fds[0])
            throw Failure(
                command: command,
                reason: "cannot start: posix_spawn error \(result) (\(String(cString: strerror(result))))",
                output: ""
            )
        }
        return (pid, fds[0])
    }
}

/// The two GNU extensions of glibc (2.29 or later) that `ChildProcess` needs and that Swift's Glibc module does not
/// import (they are declared only under `_GNU_SOURCE`), looked up by name in the running process.
private enum GNU {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// `pipe2(2)`: both ends made close-on-exec atomically, so no child started meanwhile inherits them.
    static let pipe2: Pipe2 = Self.function("pipe2")
    /// `posix_spawn_file_actions_addchdir_np(3)`: the child changes directory before it runs the executable.
    static let addChdir: AddChdir = Self.function("posix_spawn_file_actions_addchdir_np")

    private static func function<F>(_ name: String) -> F {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), name) else {
            fatalError("\(name) is missing from this C library (glibc 2.29 or later has it)")
        }
        return unsafeBitCast(symbol, to: F.self)
    }
}

extension ChildProcess {
    /// Spawn attributes for a child with an empty signal mask and default signal handlers (a test process blocks
    /// signals in its threads, and a child would inherit that, ignoring SIGTERM); with `ownProcessGroup`, in a
    /// process group of its own (so a timeout can end it and everything it started).
    static func resetSignals(_ attributes: inout posix_spawnattr_t, ownProcessGroup: Bool) {
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
    }
}
