import Logging
import Metrics
import NIOCore
import SocketGatewayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process-wide bound on bytes waiting for clients: every session may hold `maxBufferedBytesPerSession`, so
/// 10,000 slow clients could hold 40 GiB; above the budget the sessions holding the most are closed first
/// (``EngineIOCloseReason/slowClient``) until the total is back under 90 % of it. Clients that keep up are not
/// touched, and deliveries to them keep flowing.
///
/// Pure: the caller samples every session's buffered bytes and applies the decision.
struct EngineIOOutboundBudget: Sendable, Hashable {
    /// The budget in bytes.
    let maxBytes: Int

    /// A default that fits the machine: a quarter of its physical memory, at least 64 MiB, at most 4 GiB.
    static var machineDefault: Int {
        #if canImport(Glibc) || canImport(Musl)
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        let physical = pages > 0 && pageSize > 0 ? Int(pages) * Int(pageSize) : 4 << 30
        #else
        let physical = 4 << 30
        #endif
        return min(max(physical / 4, 64 << 20), 4 << 30)
    }

    /// What to do about one sample.
    struct Decision: Sendable, Hashable {
        /// The bytes waiting for all clients together.
        var total: Int
        /// The indices (into the sample) of the sessions to close, largest first.
        var shed: [Int]
    }

    /// Decides from the bytes each session holds.
    /// - Parameter buffered: One entry per session.
    func decide(_ buffered: [Int]) -> Decision {
        let total = buffered.reduce(0, +)
        guard total > self.maxBytes else { return Decision(total: total, shed: []) }
        let target = self.maxBytes / 10 * 9
        var remaining = total
        var shed: [Int] = []
        for index in buffered.indices.sorted(by: { buffered[$0] > buffered[$1] }) {
            guard remaining > target, buffered[index] > 0 else { break }
            remaining -= buffered[index]
            shed.append(index)
        }
        return Decision(total: total, shed: shed)
    }
}

extension EngineIOServer {
    /// Samples what every session holds on its loop and closes the largest while the total is over `budget`;
    /// returns the total sampled.
    static func enforce(
        _ budget: EngineIOOutboundBudget,
        endpoints: [EngineIOEndpoint],
        eventLoop: any EventLoop,
        logger: Logger,
        warning: RateLimitedWarning,
        gauge: Gauge,
        shedCounter: Counter
    ) -> EventLoopFuture<Int> {
        let sessions = endpoints.flatMap(\.allSessions)
        guard !sessions.isEmpty else {
            gauge.record(0)
            return eventLoop.makeSucceededFuture(0)
        }
        var byLoop: [ObjectIdentifier: (any EventLoop, [EngineIOSession])] = [:]
        for session in sessions {
            byLoop[ObjectIdentifier(session.eventLoop), default: (session.eventLoop, [])].1.append(session)
        }
        let samples = byLoop.values.map { loop, sessions in
            loop.submit { sessions.map { ($0, $0.bufferedBytesForBudget()) } }
        }
        return EventLoopFuture.whenAllSucceed(samples, on: eventLoop).map { perLoop in
            let sample = perLoop.flatMap { $0 }
            let decision = budget.decide(sample.map(\.1))
            gauge.record(decision.total)
            guard !decision.shed.isEmpty else { return decision.total }
            shedCounter.increment(by: decision.shed.count)
            warning.log(
                logger,
                "over the outbound memory budget: closing the slowest clients first",
                metadata: [
                    "buffered_bytes": "\(decision.total)",
                    "budget_bytes": "\(budget.maxBytes)",
                    "closing": "\(decision.shed.count)",
                ]
            )
            for index in decision.shed {
                sample[index].0.close(reason: .slowClient)
            }
            return decision.total
        }
    }
}
