import NIOCore
import Testing

@testable import SocketGatewayServer

/// The pure value types behind the per-client limits, at synthetic sizes and times.
@Suite struct ClientLimitValueTests {
    @Test func eventQueueBudget() {
        var budget = EventQueueBudget(maxEvents: 2, maxBytes: 100)
        func admit(_ bytes: Int) -> Bool { budget.admit(bytes: bytes) }
        func start(_ bytes: Int) -> Bool { budget.start(bytes: bytes) }
        // One event is admitted whatever its size when none waits.
        #expect(admit(500))
        #expect(!admit(1))
        #expect(start(500))
        #expect(budget.queuedEvents == 0 && budget.queuedBytes == 0)
        #expect(admit(60))
        #expect(!admit(41))
        #expect(admit(40))
        #expect(!admit(0), "two events wait")
        #expect(budget.queuedEvents == 2 && budget.queuedBytes == 100)
        #expect(start(60))
        budget.evict()
        // Evicted: what waits is dropped when its turn comes, and nothing more is admitted.
        #expect(!start(40))
        #expect(!admit(1))
        #expect(budget.queuedEvents == 0 && budget.queuedBytes == 0)
    }
}
