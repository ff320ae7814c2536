import Foundation

/// Freezes a child process (SIGSTOP) and waits until it is really frozen.
///
/// `kill(pid, SIGSTOP)` returns once the signal is queued, not once the process stopped. The kernel wakes one
/// thread of the process to take the signal, and only when that thread gets a CPU does it make the others stop;
/// until then they run on. On a loaded machine a multi-threaded server (its event-loop thread reading a socket)
/// was seen answering a request written after `kill` returned (a C probe under load ~17: 775 of 2,000 requests
/// answered). A test that needs the process frozen before it acts calls ``stop(_:limit:)``: it sends SIGSTOP and
/// waits until every thread of the process shows state `T` in `/proc/<pid>/task/<tid>/stat`.
public enum ProcessFreezer {
    /// Sends SIGSTOP to `pid` and waits (checking every 2 ms, at most `limit`) until every thread of it is stopped.
    /// - Throws: `RedisServerProcess.FixtureError` when the process is gone or not stopped within `limit`.
    public static func stop(_ pid: Int32, limit: Duration = .seconds(10)) async throws {
        guard kill(pid, SIGSTOP) == 0 else {
            throw RedisServerProcess.FixtureError(description: "SIGSTOP to process \(pid) failed (errno \(errno))")
        }
        let clock = ContinuousClock()
        let end = clock.now + limit
        var states: [Character] = []
        while clock.now < end {
            states = Self.threadStates(pid)
            if !states.isEmpty, states.allSatisfy({ $0 == "T" || $0 == "t" }) { return }
            if states.isEmpty || states.contains("Z") {
                throw RedisServerProcess.FixtureError(description: "process \(pid) ended instead of stopping")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw RedisServerProcess.FixtureError(
            description: "process \(pid) was not stopped \(limit) after SIGSTOP (its threads' states: \(states))"
        )
    }

    /// The state letter of every thread of `pid` (`R`, `S`, `T`…); empty when the process is gone.
    static func threadStates(_ pid: Int32) -> [Character] {
        let tasks = "/proc/\(pid)/task"
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return [] }
        return threads.compactMap { thread in
            // `tid (comm) S …`: the command may hold spaces and parentheses, so the state follows the last `)`.
            guard let stat = try? String(contentsOfFile: "\(tasks)/\(thread)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            return stat[close...].dropFirst().first { $0 != " " }
        }
    }
}
