import NIOCore
import SocketGatewayRedis
import Testing

/// The inputs a Redis Cluster's per-primary outboxes add (`replyRedirected`, `evacuate`, `adopt`), at synthetic
/// times: a message `MOVED` elsewhere leaves its outbox whole; a failed-over primary's messages move, in order and
/// with what their completions were not yet told, to the new owner, which holds them until the subscribers the
/// last publish reached are back.
extension RedisOutboxTests {
    /// Ready outbox-mode outbox with `tags` written and unanswered.
    func readyWithInFlight(_ tags: [String], capacity: Int = 10, subscriberWait: TimeAmount = .seconds(10)) -> Outbox {
        var outbox = self.outbox(capacity: capacity, subscriberWait: subscriberWait)
        _ = outbox.connectionReady(reconnected: false, now: self.at(0))
        for tag in tags { _ = outbox.submit(self.entry(tag), now: self.at(0)) }
        return outbox
    }

    @Test func aRedirectedReplyHandsBackTheOldestMessageWithItsCompletion() {
        var outbox = self.readyWithInFlight(["a", "b"])
        let moved = outbox.replyRedirected()
        #expect(moved.map { String(buffer: $0.payload) } == "a")
        #expect(moved?.completion == "a")
        #expect(outbox.inFlightCount == 1)
        #expect(self.answer(&outbox, at: self.at(1)).told == "b: published 1")
        #expect(outbox.replyRedirected() == nil)
    }

    @Test func aRedirectedReplyToASubscriberCountIsOutOfStep() {
        var outbox = self.readyWithInFlight(["a"])
        _ = self.answer(&outbox, at: self.at(1))
        let lost = outbox.connectionLost(self.lostError, now: self.at(2))
        #expect(lost.unanswered == 0)
        _ = outbox.submit(self.entry("b"), now: self.at(3))
        outbox.awaitingConnection()
        let ready = outbox.connectionReady(reconnected: true, now: self.at(4))
        #expect(ready.subscriberCount == .send)
        #expect(outbox.replyRedirected() == nil)
    }

    @Test func evacuateTakesUnansweredThenQueuedInOrderAndRemembersSubscribers() {
        var outbox = self.readyWithInFlight(["a"], capacity: 10)
        #expect(self.answer(&outbox, subscribers: 3, at: self.at(1)).told == "a: published 3")
        _ = outbox.submit(self.entry("b"), now: self.at(2))
        let lost = outbox.connectionLost(self.lostError, now: self.at(3))
        #expect(self.told(lost.actions.reports) == ["b: queued"])
        _ = outbox.submit(self.entry("c"), now: self.at(4))
        _ = outbox.submit(self.entry("d", told: false), now: self.at(4))
        let taken = outbox.evacuate()
        #expect(taken.entries.map { String(buffer: $0.payload) } == ["b", "c", "d"])
        // b was told `.queued` (nothing more); c was told `.queued` too on submit; d is fire-and-forget.
        #expect(taken.entries.map(\.completion) == [nil, nil, nil])
        #expect(taken.subscribersBefore == 3)
        #expect(outbox.queuedCount == 0 && outbox.inFlightCount == 0 && !outbox.wantsConnection)
    }

    @Test func evacuateKeepsTheCompletionsOfUnansweredMessagesOfAReadyLink() {
        var outbox = self.readyWithInFlight(["a", "b"])
        let taken = outbox.evacuate()
        #expect(taken.entries.map(\.completion) == ["a", "b"])
        #expect(taken.subscribersBefore == 0)
    }

    @Test func adoptingOnAReadyLinkHoldsUntilTheSubscribersAreBack() {
        var outbox = self.readyWithInFlight([])
        let adopted = outbox.adopt([self.entry("a"), self.entry("b")], subscribersBefore: 2, now: self.at(10))
        #expect(adopted.writes.isEmpty)
        #expect(adopted.subscriberCount == .send)
        #expect(outbox.isHolding)
        #expect(self.writes(outbox.submit(self.entry("new"), now: self.at(11))).isEmpty)
        let few = self.answerSubscriberCount(&outbox, 1, at: self.at(12))
        #expect(few.writes.isEmpty)
        #expect(few.subscriberCount == .sendAt(self.at(12) + .milliseconds(25)))
        #expect(outbox.subscriberCountTimerFired(now: self.at(40)).subscriberCount == .send)
        let back = self.answerSubscriberCount(&outbox, 2, at: self.at(41))
        #expect(self.writes(back) == ["a", "b", "new"])
        #expect(back.shortRelease == nil)
        #expect(self.answer(&outbox, subscribers: 2, at: self.at(42)).told == "a: published 2")
        #expect(self.answer(&outbox, subscribers: 2, at: self.at(42)).told == "b: published 2")
    }

    @Test func adoptingWithoutSubscribersBeforeSendsAtOnceAheadOfWhatWaits() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.submit(self.entry("late"), now: self.at(0))
        _ = outbox.connectFailed(self.refusedError, now: self.at(1))
        let adopted = outbox.adopt([self.entry("early")], subscribersBefore: 0, now: self.at(2))
        #expect(self.told(adopted.reports) == ["early: queued"])
        outbox.awaitingConnection()
        let ready = outbox.connectionReady(reconnected: false, now: self.at(3))
        #expect(ready.subscriberCount == nil)
        #expect(self.writes(ready) == ["early", "late"])
    }

    @Test func adoptingOnAPendingLinkHoldsWhenItBecomesReady() {
        var outbox = self.outbox(capacity: 10)
        let adopted = outbox.adopt([self.entry("a")], subscribersBefore: 1, now: self.at(0))
        #expect(adopted.isEmpty)
        let ready = outbox.connectionReady(reconnected: false, now: self.at(1))
        #expect(ready.writes.isEmpty)
        #expect(ready.subscriberCount == .send)
        let expired = self.answerSubscriberCount(&outbox, 0, at: self.at(1) + .seconds(10))
        #expect(self.writes(expired) == ["a"])
        #expect(expired.shortRelease == .init(subscribers: 0, before: 1))
    }

    @Test func adoptingBeyondTheCapacityDropsTheOldest() {
        var outbox = self.outbox(capacity: 2)
        _ = outbox.submit(self.entry("mine"), now: self.at(0))
        let adopted = outbox.adopt([self.entry("a"), self.entry("b")], subscribersBefore: 0, now: self.at(1))
        #expect(adopted.dropped == 1)
        #expect(self.told(adopted.reports) == ["a: failed overloaded"])
        let ready = outbox.connectionReady(reconnected: false, now: self.at(2))
        #expect(self.writes(ready) == ["b", "mine"])
    }

    @Test func adoptedDeadlinesStillExpire() {
        var outbox = self.outbox(capacity: 10)
        let adopted = outbox.adopt(
            [self.entry("a", deadline: self.at(100))],
            subscribersBefore: 0,
            now: self.at(0)
        )
        #expect(adopted.armDeadlineTimer == self.at(100))
        #expect(self.told(outbox.deadlineTimerFired(now: self.at(100)).reports) == ["a: timedOut"])
    }

    @Test func adoptingAfterCloseFailsThem() {
        var outbox = self.outbox(capacity: 10)
        _ = outbox.close()
        let adopted = outbox.adopt([self.entry("a")], subscribersBefore: 1, now: self.at(0))
        #expect(self.told(adopted.reports) == ["a: failed shutdown"])
        #expect(adopted.failures == 1)
    }

    @Test func directModeAdoptionSubmitsEachMessage() {
        var outbox = self.outbox(capacity: 0)
        _ = outbox.connectionReady(reconnected: false, now: self.at(0))
        let adopted = outbox.adopt([self.entry("a"), self.entry("b")], subscribersBefore: 5, now: self.at(1))
        #expect(self.writes(adopted) == ["a", "b"])
        #expect(adopted.subscriberCount == nil)
    }
}
