import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import SocketGatewayServer

/// How a shard's inbox hands work from the Redis subscriber's loop to the shard's loop: what one task on the
/// caller's loop appends is applied in order, in one hop, after that task ends; `flush()` waits for it.
@Suite struct ShardInboxTests {
    /// Runs `body` with a caller loop and a shard on another loop; shuts both down afterwards.
    func withLoops(_ body: (any EventLoop, ShardInbox) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let inbox = ShardInbox(shard: RoomShard(eventLoop: loops[1])) { _ in }
        do {
            try await body(loops[0], inbox)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    @Test func whatOneTaskOnAnEventLoopAppendsIsAppliedInOrderOnceTheTaskEnds() async throws {
        try await self.withLoops { caller, inbox in
            let callerDone = NIOLockedValueBox(false)
            // (operation, whether the appending task had ended when it ran)
            let applied = NIOLockedValueBox<[(Int, Bool)]>([])
            let count = 200
            try await caller.submit {
                for index in 0..<count {
                    inbox.append(
                        .run { shard in
                            shard.eventLoop.assertInEventLoop()
                            let ended = callerDone.withLockedValue { $0 }
                            applied.withLockedValue { $0.append((index, ended)) }
                        }
                    )
                }
                callerDone.withLockedValue { $0 = true }
            }.get()
            await inbox.flush()
            let result = applied.withLockedValue { $0 }
            #expect(result.map(\.0) == Array(0..<count))
            let early = result.filter { !$0.1 }.map(\.0)
            #expect(early.isEmpty, "operations \(early) ran before the task that appended them had ended")
        }
    }

    @Test func appendsOffAnyEventLoopAreAppliedAndFlushWaitsForThem() async throws {
        try await self.withLoops { caller, inbox in
            let applied = NIOLockedValueBox<[Int]>([])
            for index in 0..<50 {
                inbox.append(.run { _ in applied.withLockedValue { $0.append(index) } })
            }
            // Then some from a loop, right before the flush: the flush still waits for their handoff.
            try await caller.submit {
                for index in 50..<100 {
                    inbox.append(.run { _ in applied.withLockedValue { $0.append(index) } })
                }
            }.get()
            await inbox.flush()
            #expect(applied.withLockedValue { $0 } == Array(0..<100))
        }
    }
}
