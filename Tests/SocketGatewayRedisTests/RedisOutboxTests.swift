import NIOCore
import SocketGatewayRedis
import Testing

/// Drives the pure outbox with explicit times (a test clock: no waiting, no Redis). Completions are tags; what
/// they are told is rendered as `"tag: outcome"`.
@Suite struct RedisOutboxTests {
    typealias Outbox = RedisOutbox<String>
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let lostError = RedisError(code: .connectionClosed, message: "Redis closed the connection")
    let refusedError = RedisError(code: .connectionFailed, message: "cannot connect to Redis")

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }

    func outbox(
        capacity: Int = 0,
        maxInFlight: Int = 100,
        maxQueued: Int = 100,
        subscriberWait: TimeAmount = .seconds(10)
    ) -> Outbox {
        Outbox(
            limits: .init(
                maxInFlight: maxInFlight,
                outboxCapacity: capacity,
                maxQueued: maxQueued,
                subscriberWait: subscriberWait
            ),
            redactedURL: "redis://127.0.0.1:6379",
            channel: "socketio"
        )
    }

    /// A message whose payload and completion are both `tag`; `nil` completion for fire-and-forget.
    func entry(_ tag: String, deadline: NIODeadline? = nil, told: Bool = true) -> Outbox.Entry {
        Outbox.Entry(payload: ByteBuffer(string: tag), completion: told ? tag : nil, deadline: deadline)
    }

    func told(_ reports: [Outbox.Report]) -> [String] {
        reports.map { "\($0.completion): \(Self.describe($0.outcome))" }
    }

    static func describe(_ outcome: PublishOutcome) -> String {
        switch outcome {
        case .progress(.published(let subscribers)): "published \(subscribers)"
        case .progress(.queued): "queued"
        case .progress(.failed(let error)): "failed \(error.code)"
        case .timedOut: "timedOut"
        }
    }

    func writes(_ actions: Outbox.Actions) -> [String] { actions.writes.map { String(buffer: $0.payload) } }

    /// Answers the oldest PUBLISH in flight with `subscribers`, then sends what waits if told to; returns what
    /// the completion was told and what followed.
    func answer(
        _ outbox: inout Outbox,
        subscribers: Int64 = 1,
        at now: NIODeadline
    ) -> (told: String?, then: Outbox.Actions) {
        guard case .answered(let progress, let completion, let sendQueued) = outbox.replyReceived(.integer(subscribers))
        else {
            Issue.record("expected a PUBLISH reply")
            return (nil, Outbox.Actions())
        }
        let then = sendQueued ? outbox.sendQueued(now: now) : Outbox.Actions()
        return (completion.map { "\($0): \(Self.describe(.progress(progress)))" }, then)
    }

    /// Answers the `PUBSUB NUMSUB` in flight with `count` subscribers.
    func answerSubscriberCount(_ outbox: inout Outbox, _ count: Int64, at now: NIODeadline) -> Outbox.Actions {
        let reply = RESPValue.array([.bulkString(ByteBuffer(string: "socketio")), .integer(count)])
        guard case .subscriberCount(let subscribers) = outbox.replyReceived(reply) else {
            Issue.record("expected a PUBSUB NUMSUB reply")
            return Outbox.Actions()
        }
        #expect(subscribers == Int(count))
        return outbox.subscriberCountReceived(subscribers, now: now)
    }

    // MARK: - Direct mode (no outbox)

    @Test func directModeWritesAtOnceAndQueuesBeyondMaxInFlight() {
        var outbox = self.outbox(maxInFlight: 2)
        #expect(outbox.connectionReady(reconnected: false, now: self.start).isEmpty)
        #expect(self.writes(outbox.submit(self.entry("a"), now: self.start)) == ["a"])
        #expect(self.writes(outbox.submit(self.entry("b"), now: self.start)) == ["b"])
        #expect(outbox.submit(self.entry("c"), now: self.start).isEmpty)
        #expect(outbox.queuedCount == 1)
        #expect(outbox.inFlightCount == 2)
        let reply = self.answer(&outbox, subscribers: 3, at: self.at(1))
        #expect(reply.told == "a: published 3")
        #expect(self.writes(reply.then) == ["c"])
        #expect(self.answer(&outbox, at: self.at(2)).told == "b: published 1")
        #expect(self.answer(&outbox, at: self.at(3)).told == "c: published 1")
        #expect(outbox.replyReceived(.integer(1)).isUnexpected)
    }

    @Test func directModeHoldsWhileConnectingAndRefusesBeyondMaxQueued() {
        var outbox = self.outbox(maxQueued: 2)
        #expect(outbox.submit(self.entry("a"), now: self.start).isEmpty)
        #expect(outbox.submit(self.entry("b"), now: self.start).isEmpty)
        #expect(outbox.wantsConnection)
        let refused = outbox.submit(self.entry("c"), now: self.start)
        #expect(self.told(refused.reports) == ["c: failed overloaded"])
        #expect(refused.failures == 1)
        let ready = outbox.connectionReady(reconnected: false, now: self.at(5))
        #expect(self.writes(ready) == ["a", "b"])
        #expect(outbox.oldestUnansweredSince == self.at(5))
    }

    @Test func directModeFailsAtOnceWhileRedisIsUnreachable() {
        var outbox = self.outbox()
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("quiet", told: false), now: self.start)
        let failed = outbox.connectFailed(self.refusedError, now: self.at(1))
        #expect(self.told(failed.reports) == ["a: failed connectionFailed"])
        #expect(failed.failures == 2)
        #expect(!outbox.wantsConnection)
        let later = outbox.submit(self.entry("b"), now: self.at(2))
        #expect(self.told(later.reports) == ["b: failed connectionFailed"])
        // The next attempt: messages wait for it again.
        outbox.awaitingConnection()
        #expect(outbox.submit(self.entry("c"), now: self.at(3)).isEmpty)
        #expect(self.writes(outbox.connectionReady(reconnected: false, now: self.at(4))) == ["c"])
    }

    @Test func directModeFailsUnansweredMessagesWhenTheConnectionIsLost() {
        var outbox = self.outbox(maxInFlight: 1)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("b"), now: self.start)
        let lost = outbox.connectionLost(self.lostError, now: self.at(1))
        #expect(lost.unanswered == 1)
        #expect(self.told(lost.actions.reports) == ["a: failed connectionClosed"])
        // What was not written yet waits for the next connection.
        #expect(outbox.wantsConnection)
        #expect(self.writes(outbox.connectionReady(reconnected: true, now: self.at(2))) == ["b"])
        // A reply timeout is reported as such.
        let timeout = RedisError(code: .timeout, message: "Redis did not answer within 5 seconds")
        #expect(self.told(outbox.connectionLost(timeout, now: self.at(3)).actions.reports) == ["b: failed timeout"])
    }

    @Test func redisErrorsAndUnexpectedRepliesFailThePublish() {
        var outbox = self.outbox()
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("b"), now: self.start)
        guard case .answered(.failed(let refused), "a"?, let sendQueued) = outbox.replyReceived(.error("ERR wrong"))
        else {
            Issue.record("expected a failed PUBLISH")
            return
        }
        #expect(refused.code == .commandFailed)
        #expect(!sendQueued)
        guard case .answered(.failed(let odd), "b"?, _) = outbox.replyReceived(.null) else {
            Issue.record("expected a failed PUBLISH")
            return
        }
        #expect(odd.code == .protocolError)
    }

    // MARK: - Outbox mode

    @Test func outboxHoldsMessagesWhileUnreachableAndSendsThemInOrder() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.submit(self.entry("a"), now: self.start)
        let failed = outbox.connectFailed(self.refusedError, now: self.at(1))
        #expect(self.told(failed.reports) == ["a: queued"])
        #expect(failed.failures == 0)
        #expect(self.told(outbox.submit(self.entry("b"), now: self.at(2)).reports) == ["b: queued"])
        #expect(outbox.submit(self.entry("c", told: false), now: self.at(2)).isEmpty)
        // Told once: a second failure says nothing more.
        #expect(outbox.connectFailed(self.refusedError, now: self.at(3)).reports.isEmpty)
        outbox.awaitingConnection()
        #expect(outbox.submit(self.entry("d"), now: self.at(4)).isEmpty)
        #expect(self.writes(outbox.connectionReady(reconnected: false, now: self.at(5))) == ["a", "b", "c", "d"])
        // Only `d`, submitted while connecting, is still to be told.
        #expect(self.answer(&outbox, at: self.at(6)).told == nil)
        _ = self.answer(&outbox, at: self.at(6))
        _ = self.answer(&outbox, at: self.at(6))
        #expect(self.answer(&outbox, at: self.at(6)).told == "d: published 1")
    }

    @Test func aFullOutboxDropsTheOldest() {
        var outbox = self.outbox(capacity: 3)
        _ = outbox.connectFailed(self.refusedError, now: self.start)
        for tag in ["a", "b", "c"] {
            #expect(outbox.submit(self.entry(tag), now: self.start).dropped == 0)
        }
        let full = outbox.submit(self.entry("d"), now: self.at(1))
        #expect(full.dropped == 1)
        // `a` was told `.queued` when it was held; nothing more is said of it.
        #expect(self.told(full.reports) == ["d: queued"])
        #expect(outbox.submit(self.entry("e"), now: self.at(2)).dropped == 1)
        #expect(outbox.queuedCount == 3)
        outbox.awaitingConnection()
        #expect(self.writes(outbox.connectionReady(reconnected: false, now: self.at(3))) == ["c", "d", "e"])
    }

    @Test func aFullOutboxTellsADroppedMessageThatWasNotToldYet() {
        var outbox = self.outbox(capacity: 1)
        // Connecting: the first message waits without a word.
        _ = outbox.submit(self.entry("a"), now: self.start)
        let full = outbox.submit(self.entry("b"), now: self.start)
        #expect(self.told(full.reports) == ["a: failed overloaded"])
        #expect(full.dropped == 1)
    }

    @Test func unansweredMessagesGoBackToTheFrontInOrderWhenTheConnectionIsLost() {
        var outbox = self.outbox(capacity: 10, maxInFlight: 2)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("b", told: false), now: self.start)
        _ = outbox.submit(self.entry("c"), now: self.start)
        let lost = outbox.connectionLost(self.lostError, now: self.at(1))
        #expect(lost.unanswered == 2)
        #expect(self.told(lost.actions.reports) == ["a: queued"])
        #expect(outbox.queuedCount == 3)
        #expect(self.told(outbox.submit(self.entry("d"), now: self.at(2)).reports) == ["d: queued"])
        outbox.awaitingConnection()
        // Nobody was reached before (no reply), so nothing to wait for.
        let ready = outbox.connectionReady(reconnected: true, now: self.at(3))
        #expect(self.writes(ready) == ["a", "b"])
        #expect(self.writes(self.answer(&outbox, at: self.at(4)).then) == ["c"])
        #expect(self.writes(self.answer(&outbox, at: self.at(4)).then) == ["d"])
        // `c` was in the queue when the connection was lost and was not told: it is told now.
        #expect(self.answer(&outbox, at: self.at(5)).told == "c: published 1")
    }

    @Test func requeuedMessagesBeyondTheCapacityDropTheOldest() {
        var outbox = self.outbox(capacity: 2, maxInFlight: 2)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        for tag in ["a", "b"] { _ = outbox.submit(self.entry(tag), now: self.start) }
        _ = outbox.submit(self.entry("c"), now: self.start)
        let lost = outbox.connectionLost(self.lostError, now: self.at(1))
        #expect(lost.actions.dropped == 1)
        #expect(self.told(lost.actions.reports) == ["a: queued", "b: queued"])
        outbox.awaitingConnection()
        #expect(self.writes(outbox.connectionReady(reconnected: true, now: self.at(2))) == ["b", "c"])
    }

    // MARK: - Holding the outbox until subscribers return

    /// An outbox whose last PUBLISH reached `subscribers`, then lost its connection with `held` queued.
    func outboxAfterOutage(
        subscribers: Int64 = 2,
        held: [String] = ["x", "y"],
        wait: TimeAmount = .seconds(10)
    ) -> Outbox {
        var outbox = self.outbox(capacity: 10, subscriberWait: wait)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("warmup"), now: self.start)
        _ = self.answer(&outbox, subscribers: subscribers, at: self.start)
        _ = outbox.connectionLost(self.lostError, now: self.start)
        for tag in held { _ = outbox.submit(self.entry(tag), now: self.start) }
        outbox.awaitingConnection()
        return outbox
    }

    @Test func afterAnOutageTheOutboxWaitsForAsManySubscribersAsBefore() {
        var outbox = self.outboxAfterOutage(subscribers: 2)
        let ready = outbox.connectionReady(reconnected: true, now: self.at(100))
        #expect(ready.subscriberCount == .send)
        #expect(ready.writes.isEmpty)
        #expect(outbox.isHolding)
        #expect(outbox.oldestUnansweredSince == self.at(100))
        // None back yet: ask again shortly.
        let none = self.answerSubscriberCount(&outbox, 0, at: self.at(101))
        #expect(none.subscriberCount == .sendAt(self.at(126)))
        // New messages wait behind the held ones.
        #expect(outbox.submit(self.entry("z"), now: self.at(110)).isEmpty)
        #expect(outbox.sendDirectly(count: 1, now: self.at(110)) { _ in self.entry("fast") }.isRefused)
        #expect(outbox.subscriberCountTimerFired(now: self.at(126)).subscriberCount == .send)
        let one = self.answerSubscriberCount(&outbox, 1, at: self.at(127))
        #expect(one.subscriberCount == .sendAt(self.at(152)))
        #expect(outbox.subscriberCountTimerFired(now: self.at(152)).subscriberCount == .send)
        let back = self.answerSubscriberCount(&outbox, 2, at: self.at(153))
        #expect(self.writes(back) == ["x", "y", "z"])
        #expect(back.shortRelease == nil)
        #expect(!outbox.isHolding)
    }

    @Test func moreSubscribersThanBeforeReleaseTheOutboxToo() {
        var outbox = self.outboxAfterOutage(subscribers: 2)
        _ = outbox.connectionReady(reconnected: true, now: self.at(100))
        let back = self.answerSubscriberCount(&outbox, 5, at: self.at(101))
        #expect(self.writes(back) == ["x", "y"])
    }

    @Test func whenTheWaitRunsOutTheOutboxIsSentWithFewerSubscribers() {
        var outbox = self.outboxAfterOutage(subscribers: 3, wait: .milliseconds(500))
        _ = outbox.connectionReady(reconnected: true, now: self.at(100))
        let early = self.answerSubscriberCount(&outbox, 1, at: self.at(599))
        #expect(early.writes.isEmpty)
        #expect(early.subscriberCount == .sendAt(self.at(624)))
        _ = outbox.subscriberCountTimerFired(now: self.at(624))
        let late = self.answerSubscriberCount(&outbox, 1, at: self.at(625))
        #expect(self.writes(late) == ["x", "y"])
        #expect(late.shortRelease == Outbox.ShortRelease(subscribers: 1, before: 3))
    }

    @Test func theOutboxIsNotHeldWithoutReasonToWait() {
        // Nobody was reached before the outage.
        var nobody = self.outboxAfterOutage(subscribers: 0)
        #expect(self.writes(nobody.connectionReady(reconnected: true, now: self.at(1))) == ["x", "y"])
        // The wait is turned off.
        var off = self.outboxAfterOutage(subscribers: 2, wait: .zero)
        #expect(self.writes(off.connectionReady(reconnected: true, now: self.at(1))) == ["x", "y"])
        // Nothing is queued.
        var empty = self.outboxAfterOutage(subscribers: 2, held: [])
        let ready = empty.connectionReady(reconnected: true, now: self.at(1))
        #expect(ready.isEmpty)
        #expect(self.writes(empty.submit(self.entry("a"), now: self.at(2))) == ["a"])
        // Direct mode never holds.
        var direct = self.outbox()
        _ = direct.connectionReady(reconnected: false, now: self.start)
        _ = direct.submit(self.entry("w"), now: self.start)
        _ = self.answer(&direct, subscribers: 2, at: self.start)
        _ = direct.connectionLost(self.lostError, now: self.start)
        _ = direct.submit(self.entry("a"), now: self.start)
        #expect(self.writes(direct.connectionReady(reconnected: true, now: self.at(1))) == ["a"])
    }

    @Test func aShutdownReleasesTheHeldOutboxAtOnce() {
        var outbox = self.outboxAfterOutage(subscribers: 2)
        _ = outbox.connectionReady(reconnected: true, now: self.at(100))
        let shutdown = outbox.shutdownRequested(deadline: self.at(5_000), now: self.at(110))
        #expect(self.writes(shutdown) == ["x", "y"])
        #expect(!shutdown.drainFinished)
        // The NUMSUB reply, answered first, changes nothing.
        let late = self.answerSubscriberCount(&outbox, 0, at: self.at(111))
        #expect(late.isEmpty)
        _ = self.answer(&outbox, at: self.at(112))
        #expect(self.answer(&outbox, at: self.at(112)).then.drainFinished)
    }

    @Test func aHoldIsEndedByALostConnectionAndItsPollTimerThenDoesNothing() {
        var outbox = self.outboxAfterOutage(subscribers: 2)
        _ = outbox.connectionReady(reconnected: true, now: self.at(100))
        let lost = outbox.connectionLost(self.lostError, now: self.at(101))
        #expect(lost.unanswered == 0)
        #expect(!outbox.isHolding)
        #expect(outbox.subscriberCountTimerFired(now: self.at(126)).isEmpty)
        #expect(outbox.queuedCount == 2)
    }

    @Test func aFirstConnectionNeverWaitsForSubscribers() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.submit(self.entry("a"), now: self.start)
        #expect(self.writes(outbox.connectionReady(reconnected: false, now: self.at(1))) == ["a"])
    }

    // MARK: - Deadlines

    @Test func aTimedMessageInFlightIsToldTimedOutAtItsDeadlineAndNothingMore() {
        var outbox = self.outbox()
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        let first = outbox.submit(self.entry("a", deadline: self.at(300)), now: self.start)
        #expect(first.armDeadlineTimer == self.at(300))
        // One timer at a time.
        #expect(outbox.submit(self.entry("b", deadline: self.at(310)), now: self.at(10)).armDeadlineTimer == nil)
        #expect(outbox.submit(self.entry("c", told: false), now: self.at(20)).armDeadlineTimer == nil)
        // A timer that fires early re-arms for the oldest deadline.
        let early = outbox.deadlineTimerFired(now: self.at(299))
        #expect(early.reports.isEmpty)
        #expect(early.armDeadlineTimer == self.at(300))
        let due = outbox.deadlineTimerFired(now: self.at(300))
        #expect(self.told(due.reports) == ["a: timedOut"])
        #expect(due.armDeadlineTimer == self.at(310))
        // The late answer reaches nobody.
        #expect(self.answer(&outbox, at: self.at(305)).told == nil)
        #expect(self.answer(&outbox, at: self.at(306)).told == "b: published 1")
        let last = outbox.deadlineTimerFired(now: self.at(310))
        #expect(last.isEmpty)
        // The next timed message arms a new timer.
        let next = outbox.submit(self.entry("d", deadline: self.at(900)), now: self.at(600))
        #expect(next.armDeadlineTimer == self.at(900))
    }

    @Test func queuedTimedMessagesExpireWhileRedisIsSlowToConnect() {
        var outbox = self.outbox()
        let first = outbox.submit(self.entry("a", deadline: self.at(300)), now: self.start)
        #expect(first.armDeadlineTimer == self.at(300))
        _ = outbox.submit(self.entry("b", deadline: self.at(400)), now: self.at(100))
        let due = outbox.deadlineTimerFired(now: self.at(450))
        #expect(self.told(due.reports) == ["a: timedOut", "b: timedOut"])
        #expect(due.armDeadlineTimer == nil)
        // Still sent when the connection comes, but nobody is told twice.
        let ready = outbox.connectionReady(reconnected: false, now: self.at(500))
        #expect(self.writes(ready) == ["a", "b"])
        #expect(self.answer(&outbox, at: self.at(501)).told == nil)
    }

    @Test func inFlightAndQueuedDeadlinesExpireInOrder() {
        var outbox = self.outbox(maxInFlight: 1)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a", deadline: self.at(100)), now: self.start)
        _ = outbox.submit(self.entry("b", deadline: self.at(200)), now: self.at(100))
        _ = outbox.submit(self.entry("c", deadline: self.at(300)), now: self.at(200))
        let due = outbox.deadlineTimerFired(now: self.at(250))
        #expect(self.told(due.reports) == ["a: timedOut", "b: timedOut"])
        #expect(due.armDeadlineTimer == self.at(300))
    }

    @Test func anOutboxMessageToldQueuedHasNoDeadlineLeft() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.connectFailed(self.refusedError, now: self.start)
        let held = outbox.submit(self.entry("a", deadline: self.at(300)), now: self.start)
        #expect(self.told(held.reports) == ["a: queued"])
        #expect(held.armDeadlineTimer == nil)
        #expect(outbox.deadlineTimerFired(now: self.at(300)).isEmpty)
    }

    /// What "an emit never waits past its timeout" rests on: whatever the link is doing, a timed message is told
    /// something exactly once, at the latest when the timer the outbox asked for fires at its deadline.
    @Test(arguments: [0, 10])
    func everyTimedMessageIsToldOnceByItsDeadlineWhateverTheLink(capacity: Int) {
        let situations: [(String, (inout Outbox) -> Void)] = [
            ("connecting", { _ in }),
            ("unreachable", { _ = $0.connectFailed(self.refusedError, now: self.start) }),
            ("ready", { _ = $0.connectionReady(reconnected: false, now: self.start) }),
            (
                "ready with every in-flight slot taken",
                { outbox in
                    _ = outbox.connectionReady(reconnected: false, now: self.start)
                    _ = outbox.submit(self.entry("filler", told: false), now: self.start)
                }
            ),
            (
                "held for subscribers",
                { outbox in
                    _ = outbox.connectionReady(reconnected: false, now: self.start)
                    _ = outbox.submit(self.entry("warmup", told: false), now: self.start)
                    _ = self.answer(&outbox, subscribers: 2, at: self.start)
                    _ = outbox.connectionLost(self.lostError, now: self.start)
                    _ = outbox.submit(self.entry("held", told: false), now: self.start)
                    outbox.awaitingConnection()
                    _ = outbox.connectionReady(reconnected: true, now: self.start)
                }
            ),
        ]
        for (name, setUp) in situations {
            var outbox = self.outbox(capacity: capacity, maxInFlight: 1)
            setUp(&outbox)
            var told: [String] = []
            let submitted = outbox.submit(self.entry("t", deadline: self.at(300)), now: self.at(100))
            told += self.told(submitted.reports)
            var timer = submitted.armDeadlineTimer
            // Fire every timer the outbox asks for, up to the deadline.
            var fired = 0
            while told.isEmpty, let due = timer, due <= self.at(300), fired < 10 {
                let actions = outbox.deadlineTimerFired(now: due)
                told += self.told(actions.reports)
                timer = actions.armDeadlineTimer
                fired += 1
            }
            #expect(told.count == 1, "\(name), capacity \(capacity): \(told)")
            // Nothing more, later.
            #expect(outbox.deadlineTimerFired(now: self.at(10_000)).reports.isEmpty, "\(name)")
        }
    }

    // MARK: - The fast path

    @Test func aBatchGoesStraightIntoFlightOnlyWhenNothingWaitsBeforeIt() {
        var outbox = self.outbox(maxInFlight: 3)
        let batch = ["a", "b"].map { self.entry($0, deadline: self.at(100)) }
        // Not connected.
        #expect(outbox.sendDirectly(count: 2, now: self.start) { batch[$0] }.isRefused)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        guard case .sent(let arm) = outbox.sendDirectly(count: 2, now: self.start, entry: { batch[$0] }) else {
            Issue.record("expected the batch to be sent")
            return
        }
        #expect(arm == self.at(100))
        #expect(outbox.inFlightCount == 2)
        // Too few in-flight slots left.
        #expect(outbox.sendDirectly(count: 2, now: self.start) { batch[$0] }.isRefused)
        #expect(self.told(outbox.deadlineTimerFired(now: self.at(100)).reports) == ["a: timedOut", "b: timedOut"])
        _ = self.answer(&outbox, at: self.at(101))
        _ = self.answer(&outbox, at: self.at(101))
        // Something queued (a full in-flight window) must go first.
        for tag in ["c", "d", "e", "f"] { _ = outbox.submit(self.entry(tag), now: self.at(102)) }
        #expect(outbox.queuedCount == 1)
        #expect(outbox.sendDirectly(count: 1, now: self.at(103)) { _ in self.entry("g") }.isRefused)
    }

    // MARK: - Shutdown

    @Test func aShutdownWithNothingToSendFinishesAtOnce() {
        var outbox = self.outbox()
        #expect(outbox.shutdownRequested(deadline: self.at(5_000), now: self.start).drainFinished)
        let closed = outbox.close()
        #expect(closed.unsent == 0)
        #expect(self.told(outbox.submit(self.entry("late"), now: self.at(1)).reports) == ["late: failed shutdown"])
        #expect(outbox.shutdownRequested(deadline: self.at(5_000), now: self.at(2)).drainFinished)
    }

    @Test func aShutdownWaitsForEveryAnswer() {
        var outbox = self.outbox(maxInFlight: 1)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("b"), now: self.start)
        #expect(!outbox.shutdownRequested(deadline: self.at(5_000), now: self.at(1)).drainFinished)
        #expect(outbox.wantsConnection)
        #expect(!outbox.tick(now: self.at(4_999)).drainFinished)
        let first = self.answer(&outbox, at: self.at(10))
        #expect(self.writes(first.then) == ["b"])
        #expect(!first.then.drainFinished)
        #expect(self.answer(&outbox, at: self.at(20)).then.drainFinished)
        #expect(outbox.close().unsent == 0)
    }

    @Test func aShutdownDeadlineEndsTheDrainAndFailsWhatIsLeft() {
        var outbox = self.outbox(capacity: 10, maxInFlight: 1)
        _ = outbox.connectionReady(reconnected: false, now: self.start)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.submit(self.entry("b"), now: self.start)
        _ = outbox.submit(self.entry("c", told: false), now: self.start)
        #expect(!outbox.shutdownRequested(deadline: self.at(1_000), now: self.at(1)).drainFinished)
        #expect(!outbox.tick(now: self.at(999)).drainFinished)
        #expect(outbox.tick(now: self.at(1_000)).drainFinished)
        let closed = outbox.close()
        #expect(closed.unsent == 3)
        #expect(self.told(closed.actions.reports) == ["a: failed shutdown", "b: failed shutdown"])
        // Late replies find nothing in flight.
        #expect(outbox.replyReceived(.integer(1)).isUnexpected)
    }

    @Test func aShutdownWhileRedisIsUnreachableKeepsTheOutboxUntilItsDeadline() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.submit(self.entry("a"), now: self.start)
        _ = outbox.connectFailed(self.refusedError, now: self.at(1))
        #expect(!outbox.shutdownRequested(deadline: self.at(500), now: self.at(2)).drainFinished)
        #expect(!outbox.connectFailed(self.refusedError, now: self.at(200)).drainFinished)
        #expect(outbox.connectFailed(self.refusedError, now: self.at(500)).drainFinished)
        #expect(outbox.close().unsent == 1)
    }

    @Test func aShutdownAlreadyPastItsDeadlineFinishesAtOnce() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.submit(self.entry("a"), now: self.start)
        #expect(outbox.shutdownRequested(deadline: self.start, now: self.start).drainFinished)
        let closed = outbox.close()
        #expect(closed.unsent == 1)
        #expect(self.told(closed.actions.reports) == ["a: failed shutdown"])
    }

    @Test func directModeShutdownFinishesOnceAFailedConnectEmptiesTheQueue() {
        var outbox = self.outbox()
        _ = outbox.submit(self.entry("a"), now: self.start)
        #expect(!outbox.shutdownRequested(deadline: self.at(5_000), now: self.start).drainFinished)
        let failed = outbox.connectFailed(self.refusedError, now: self.at(1))
        #expect(self.told(failed.reports) == ["a: failed connectionFailed"])
        #expect(failed.drainFinished)
    }
}

extension RedisOutbox.Reply {
    var isUnexpected: Bool {
        if case .unexpected = self { return true }
        return false
    }
}

extension RedisOutbox.DirectSend {
    var isRefused: Bool {
        if case .refused = self { return true }
        return false
    }
}
