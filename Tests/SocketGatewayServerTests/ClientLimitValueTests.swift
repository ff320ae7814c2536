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

    @Test func tokenBucketAdmitsTheBurstThenTheRate() {
        let start = NIODeadline.uptimeNanoseconds(5_000_000_000)
        var bucket = TokenBucket(limit: SocketEventRateLimit(eventsPerSecond: 10, burst: 3), now: start)
        func take(_ offset: TimeAmount) -> Bool { bucket.take(at: start + offset) }
        #expect(bucket.interval == 100_000_000)
        #expect(take(.zero) && take(.zero) && take(.zero), "the burst")
        #expect(!take(.zero))
        #expect(!take(.milliseconds(99)))
        #expect(take(.milliseconds(100)), "one token per 100 ms")
        #expect(!take(.milliseconds(100)))
        #expect(!take(.milliseconds(50)), "time going backwards earns nothing")
        #expect(take(.milliseconds(200)))
        // A long quiet period refills to the burst, not beyond.
        #expect(take(.seconds(60)) && take(.seconds(60)) && take(.seconds(60)))
        #expect(!take(.seconds(60)))
        #expect(bucket.tokens == 0)
    }

    @Test func tokenBucketExtremes() {
        let start = NIODeadline.uptimeNanoseconds(0)
        // A slow rate and a huge burst neither overflow nor admit more than the burst at once.
        var slow = TokenBucket(limit: SocketEventRateLimit(eventsPerSecond: 1e-9, burst: Int.max), now: start)
        #expect(slow.take(at: start) == true)
        var single = TokenBucket(burst: 0, interval: .zero, now: start)
        #expect(single.capacity == 1 && single.interval == 1)
        #expect(single.take(at: start) == true)
        #expect(single.take(at: start) == false)
        #expect(single.take(at: start + .nanoseconds(1)) == true)
    }
}
