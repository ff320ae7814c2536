import NIOConcurrencyHelpers
import SocketGatewayEngineIO
import Testing

/// The pool that owns the tasks a server starts: what happens to a job submitted before, during and after
/// `run()`, and what finishing and cancelling do. Assertions are on what ran and in which order.
@Suite struct ServerTaskPoolTests {
    final class Record: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        func append(_ entry: String) { self.box.withLockedValue { $0.append(entry) } }
        var all: [String] { self.box.withLockedValue { $0 } }
    }

    /// A one-shot signal a job can wait for (not cancellable: tests use it for jobs that must not be cancelled).
    final class Signal: Sendable {
        private let state = NIOLockedValueBox<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func wait() async {
            await withCheckedContinuation { continuation in
                let now = self.state.withLockedValue { state -> Bool in
                    if state.fired { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        func fire() {
            let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
                state.fired = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    @Test func jobsSubmittedBeforeRunStartWhenRunDoesAndRunReturnsAfterFinishOnceTheyEnded() async {
        let pool = ServerTaskPool()
        let record = Record()
        #expect(pool.submit { record.append("early") })
        #expect(record.all.isEmpty)
        await withDiscardingTaskGroup { group in
            group.addTask {
                await pool.run()
                record.append("run returned")
            }
            let started = Signal()
            let release = Signal()
            #expect(
                pool.submit {
                    started.fire()
                    await release.wait()
                    record.append("late")
                }
            )
            await started.wait()
            pool.finish()
            release.fire()
        }
        #expect(record.all == ["early", "late", "run returned"])
        #expect(pool.unfinishedJobs == 0)
    }

    @Test func afterFinishASubmissionIsRefusedAndNeverRuns() async {
        let pool = ServerTaskPool()
        let record = Record()
        pool.finish()
        #expect(!pool.submit { record.append("refused job ran") })
        await pool.run()
        #expect(!pool.submit { record.append("refused job ran") })
        #expect(record.all.isEmpty)
    }

    @Test func waitUntilDrainedReportsAJobStillRunningAfterTheTimeoutAndCancellingRunCancelsIt() async {
        let pool = ServerTaskPool()
        let record = Record()
        let started = Signal()
        await withDiscardingTaskGroup { group in
            group.addTask {
                await pool.run()
                record.append("run returned")
            }
            pool.submit {
                started.fire()
                do {
                    try await Task.sleep(for: .seconds(3600))
                } catch {
                    record.append("cancelled")
                }
            }
            await started.wait()
            pool.finish()
            #expect(!(await pool.waitUntilDrained(timeout: .milliseconds(20))))
            #expect(record.all.isEmpty)
            group.cancelAll()
        }
        #expect(record.all == ["cancelled", "run returned"])
        #expect(await pool.waitUntilDrained(timeout: .seconds(3600)))
        #expect(!pool.submit { record.append("refused job ran") })
    }

    @Test func waitUntilDrainedReturnsOnceTheLastJobEnded() async {
        let pool = ServerTaskPool()
        let release = Signal()
        let record = Record()
        await withDiscardingTaskGroup { group in
            group.addTask { await pool.run() }
            for index in 0..<3 {
                pool.submit {
                    await release.wait()
                    record.append("job \(index)")
                }
            }
            pool.finish()
            group.addTask { release.fire() }
            // The timeout is far beyond the test: only the jobs' end can make it return true.
            #expect(await pool.waitUntilDrained(timeout: .seconds(3600)))
            #expect(Set(record.all) == ["job 0", "job 1", "job 2"])
        }
    }
}
