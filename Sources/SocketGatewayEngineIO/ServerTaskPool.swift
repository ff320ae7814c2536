import NIOConcurrencyHelpers

/// The tasks a server starts for its clients — a connection's handler loop, an authentication, a remote ack, a
/// fallback HTTP response — run as children of one discarding task group in ``run()``, so whoever runs it
/// (`SocketServer.run()`) owns them: its shutdown can wait for them and cancel them, and nothing submitted here
/// runs after ``run()`` returned.
///
/// What happens to a submitted job:
/// - before ``run()`` starts: it waits and starts when ``run()`` does;
/// - while running: it starts at once as a child task;
/// - after ``finish()`` (shutdown began): it is refused — ``submit(_:)`` returns false and the caller logs and
///   answers (a refused job never runs, so it must not be dropped without a trace); jobs submitted before
///   still run, and ``run()`` returns once they have all ended;
/// - when the task running ``run()`` is cancelled: every running job is cancelled (and awaited), jobs not yet
///   started are dropped, later submissions are refused.
///
/// The pool itself has no bound: every source of jobs has one (one handler loop per connection, whose queue
/// is bounded by `EventQueueBudget`; one authentication per pending CONNECT; `maxPendingRemoteAcks`; one
/// fallback response per HTTP connection at a time), and submissions are taken at once by ``run()``.
package final class ServerTaskPool: Sendable {
    /// One unit of work.
    package typealias Job = @Sendable () async -> Void

    private struct State {
        /// Jobs accepted and not yet ended.
        var unfinished = 0
        /// ``finish()`` was called, or ``run()`` ended.
        var isFinished = false
        var isRunning = false
        /// Callers of `waitUntilDrained`, resumed once finished with no job left.
        var drainWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0

        var isDrained: Bool { self.isFinished && self.unfinished == 0 }
    }

    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation
    private let state = NIOLockedValueBox(State())

    /// Creates an empty pool; nothing runs until ``run()``.
    package init() {
        (self.jobs, self.continuation) = AsyncStream<Job>.makeStream()
    }

    /// Runs `job` as a child of ``run()`` (at once, or when ``run()`` starts).
    /// - Returns: false when the pool no longer takes work (``finish()`` was called or ``run()`` ended or was
    ///   cancelled): `job` will never run.
    @discardableResult
    package func submit(_ job: @escaping Job) -> Bool {
        self.state.withLockedValue { state -> Bool in
            guard !state.isFinished else { return false }
            // Yielded under the lock, so no job slips in after `finish()` has finished the stream.
            guard case .enqueued = self.continuation.yield(job) else { return false }
            state.unfinished += 1
            return true
        }
    }

    /// Stops taking work: later ``submit(_:)`` calls are refused; what was submitted still runs.
    package func finish() {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.isFinished = true
            self.continuation.finish()
            return Self.takeWaitersIfDrained(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Runs every submitted job as a child task until ``finish()`` was called and every job ended, or until the
    /// calling task is cancelled (which cancels the running jobs; this returns once they have returned).
    /// A second concurrent call returns at once.
    package func run() async {
        let first = self.state.withLockedValue { state -> Bool in
            defer { state.isRunning = true }
            return !state.isRunning
        }
        guard first else { return }
        await withDiscardingTaskGroup { group in
            for await job in self.jobs {
                group.addTask {
                    await job()
                    self.jobEnded()
                }
            }
        }
        // Ended by `finish()` or by cancellation: jobs never started will not run.
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.isFinished = true
            state.unfinished = 0
            self.continuation.finish()
            return Self.takeWaitersIfDrained(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Jobs accepted and not yet ended (for tests and diagnostics).
    package var unfinishedJobs: Int { self.state.withLockedValue { $0.unfinished } }

    /// Waits until ``finish()`` was called and every job has ended, or `timeout` has passed, or the calling
    /// task is cancelled.
    /// - Returns: Whether every job had ended.
    package func waitUntilDrained(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.drained() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return self.state.withLockedValue { $0.isDrained }
    }

    private func drained() async {
        let id = self.state.withLockedValue { state -> UInt64 in
            defer { state.nextWaiterID &+= 1 }
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLockedValue { state -> Bool in
                    if state.isDrained || Task.isCancelled { return true }
                    state.drainWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.state.withLockedValue { $0.drainWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    private func jobEnded() {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.unfinished = max(0, state.unfinished - 1)
            return Self.takeWaitersIfDrained(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    private static func takeWaitersIfDrained(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard state.isDrained, !state.drainWaiters.isEmpty else { return [] }
        defer { state.drainWaiters = [:] }
        return Array(state.drainWaiters.values)
    }
}
