import Atomics
import Foundation
import SocketGatewayCore
import SocketGatewayWorker

/// Whom each emitted event is addressed to.
enum EmitAudience: Sendable {
    /// Every client (python-socketio `room=None`).
    case broadcast
    /// The user rooms `user:u0 … user:u(count-1)`, round robin: one client each.
    case users(count: Int)
    /// A room nobody is in (measures publishing alone).
    case nobody
}

/// How fast to emit.
enum EmitPace: Sendable {
    /// As fast as the worker gateway publishes, `tasks` emits outstanding.
    case unbounded
    /// A fixed number of events per second.
    case rate(Double)
    /// At most `window` events published and not yet fully delivered to the clients (keeps the server's Redis
    /// backlog bounded, so throughput is measured without a queue building up).
    case closedLoop(window: Int)
}

/// Publishes stamped events through `WorkerSocketGateway`, the way an application's workers do.
final class LoadEmitter: Sendable {
    let worker: WorkerSocketGateway
    let audience: EmitAudience
    let pace: EmitPace
    let tasks: Int
    /// Emit with `emit(…, completion:)` (no await), at most `tasks` unanswered; `sent` counts answered emits.
    let pipelined: Bool
    /// What follows `t` and `seq` in each event's payload: `pad` (x repeated), or `items` (realistic records).
    let body: [(key: String, value: JSONValue)]
    /// Deliveries one event produces (clients in the audience).
    let fanOut: Int
    /// Total EVENT packets received by the clients so far.
    let delivered: @Sendable () -> Int
    /// Events handed to the gateway.
    let sent = ManagedAtomic<Int>(0)
    /// Emits Redis did not accept.
    let failed = ManagedAtomic<Int>(0)
    private let stopped = ManagedAtomic<Bool>(false)

    init(
        worker: WorkerSocketGateway,
        audience: EmitAudience,
        pace: EmitPace,
        tasks: Int,
        pipelined: Bool = false,
        payloadBytes: Int,
        realisticPayload: Bool = false,
        fanOut: Int,
        delivered: @escaping @Sendable () -> Int
    ) {
        self.worker = worker
        self.audience = audience
        self.pace = pace
        self.tasks = max(1, tasks)
        self.pipelined = pipelined
        if realisticPayload {
            self.body = [("items", RealisticPayload.items(bytes: payloadBytes))]
        } else {
            self.body = [("pad", .string(String(repeating: "x", count: max(0, payloadBytes))))]
        }
        self.fanOut = max(1, fanOut)
        self.delivered = delivered
    }

    /// Asks every emitting task to stop after its current emit.
    func stop() { self.stopped.store(true, ordering: .relaxed) }

    /// Emits until `stop()`.
    func run() async {
        if case .closedLoop(let window) = self.pace {
            await self.runClosedLoop(window: window)
            return
        }
        if self.pipelined, case .unbounded = self.pace {
            await self.runPipelined()
            return
        }
        let start = monotonicMicroseconds()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<self.tasks {
                group.addTask { await self.lane(lane, start: start) }
            }
        }
    }

    /// One controller polls the delivery count and starts emits (at most `tasks` at once) while fewer than
    /// `window` events are undelivered; a single poller keeps the load tool's own CPU low.
    private func runClosedLoop(window: Int) async {
        let limit = window * self.fanOut
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            var sequence = 0
            var lastProgress = monotonicMicroseconds()
            var lastDelivered = 0
            var forgiven = 0
            while !self.stopped.load(ordering: .relaxed) {
                let delivered = self.delivered()
                let now = monotonicMicroseconds()
                if delivered != lastDelivered {
                    lastDelivered = delivered
                    lastProgress = now
                }
                var outstanding = self.sent.load(ordering: .relaxed) * self.fanOut - delivered - forgiven
                // Deliveries lost (a client dropped): forget them after 2 s without progress rather than stall.
                if outstanding >= limit, now - lastProgress > 2_000_000 {
                    forgiven += outstanding
                    outstanding = 0
                    lastProgress = now
                }
                var started = false
                while outstanding < limit, running < self.tasks {
                    let index = sequence
                    group.addTask { await self.emitOne(sequence: index) }
                    sequence += 1
                    running += 1
                    outstanding += self.fanOut
                    started = true
                }
                if running >= self.tasks {
                    if await group.next() != nil { running -= 1 }
                } else if !started {
                    try? await Task.sleep(for: .microseconds(250))
                }
            }
            group.cancelAll()
        }
    }

    /// One task hands emits to the worker without awaiting them, keeping at most `tasks` unanswered: when fewer
    /// than half the window is free it waits (no polling) until answers free half of it, then emits the free
    /// room in one burst.
    private func runPipelined() async {
        let window = EmitWindow(limit: self.tasks)
        var sequence = 0
        let completion: @Sendable (EmitResult) -> Void = { result in
            if result.outcome == .published {
                self.sent.wrappingIncrement(ordering: .relaxed)
            } else {
                self.failed.wrappingIncrement(ordering: .relaxed)
            }
            window.answered()
        }
        while !self.stopped.load(ordering: .relaxed) {
            let room = await window.reserve()
            for _ in 0..<room {
                let (target, payload) = self.event(sequence: sequence)
                self.worker.emit(
                    "tick",
                    arguments: [payload],
                    to: target,
                    options: EmitOptions(),
                    completion: completion
                )
                sequence += 1
            }
        }
    }

    private func event(sequence: Int) -> (EmitTarget, JSONValue) {
        let target: EmitTarget
        switch self.audience {
        case .broadcast: target = .broadcast
        case .users(let count): target = .user("u\(sequence % max(1, count))")
        case .nobody: target = .room("bench-nobody")
        }
        let stamp = JSONValue.int(Int64(monotonicMicroseconds()))
        let payload: JSONValue = .object([("t", stamp), ("seq", .int(Int64(sequence)))] + self.body)
        return (target, payload)
    }

    private func lane(_ lane: Int, start: UInt64) async {
        var index = lane
        while !self.stopped.load(ordering: .relaxed) {
            if case .rate(let perSecond) = self.pace {
                let due = start + UInt64(Double(index) * 1_000_000 / perSecond)
                let now = monotonicMicroseconds()
                if due > now {
                    try? await Task.sleep(for: .microseconds(Int64(due - now)))
                    if self.stopped.load(ordering: .relaxed) { return }
                }
            }
            await self.emitOne(sequence: index)
            index += self.tasks
        }
    }

    private func emitOne(sequence: Int) async {
        let (target, payload) = self.event(sequence: sequence)
        self.sent.wrappingIncrement(ordering: .relaxed)
        let result = await self.worker.emit("tick", arguments: [payload], to: target, options: EmitOptions())
        if result.outcome != .published {
            self.failed.wrappingIncrement(ordering: .relaxed)
        }
    }
}

/// The pipelined emitter's window: at most `limit` emits unanswered. The emitter waits on a continuation (resumed
/// by the answer that frees half the window), not on a timer.
final class EmitWindow: @unchecked Sendable {
    private let limit: Int
    private let resumeAt: Int
    private let unanswered = ManagedAtomic<Int>(0)
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var waiter: CheckedContinuation<Void, Never>?

    init(limit: Int) {
        self.limit = max(1, limit)
        self.resumeAt = self.limit / 2
    }

    /// Waits until at least half the window is free, takes all the free room and returns its size (≥ 1).
    func reserve() async -> Int {
        while true {
            let room = self.limit - self.unanswered.load(ordering: .acquiring)
            if room > 0 && room >= self.limit - self.resumeAt {
                self.unanswered.wrappingIncrement(by: room, ordering: .relaxed)
                return room
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                self.lock.lock()
                self.waiter = continuation
                self.lock.unlock()
                // An answer may have crossed the mark before the waiter was set: check again.
                if self.unanswered.load(ordering: .acquiring) <= self.resumeAt { self.wake() }
            }
        }
    }

    /// One emit was answered (any thread).
    func answered() {
        if self.unanswered.wrappingDecrementThenLoad(ordering: .acquiringAndReleasing) == self.resumeAt {
            self.wake()
        }
    }

    private func wake() {
        self.lock.lock()
        let waiter = self.waiter
        self.waiter = nil
        self.lock.unlock()
        waiter?.resume()
    }
}

/// Application-like JSON for the compression benchmark: order updates with ids, names, amounts, timestamps and a
/// short note, drawn from a fixed pseudo-random sequence (the same bytes every run). It compresses about as well as
/// real API payloads do (a few times), unlike a run of one letter.
enum RealisticPayload {
    /// Records until their JSON text is at least `bytes` long.
    static func items(bytes: Int) -> JSONValue {
        let names = ["Maria Keller", "Jonas Weber", "Aiko Tanaka", "Lucas Martin", "Sofia Rossi", "Noah Jensen"]
        let statuses = ["pending", "paid", "packed", "shipped", "delivered", "refunded"]
        let words = [
            "please", "leave", "at", "the", "front", "door", "call", "on", "arrival", "gift", "wrap", "fragile",
            "second", "floor", "ring", "twice", "back", "entrance", "before", "noon", "office", "reception",
        ]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        var records: [JSONValue] = []
        var length = 2
        while length < bytes {
            let user = 1000 + next(9000)
            let note = (0..<(3 + next(6))).map { _ in words[next(words.count)] }.joined(separator: " ")
            let record: JSONValue = .object([
                ("id", .string("ord_" + String(UInt32(truncatingIfNeeded: seed >> 7), radix: 16))),
                ("status", .string(statuses[next(statuses.count)])),
                ("user", .object([("id", .string("u\(user)")), ("name", .string(names[next(names.count)]))])),
                ("total", .object([("amount", .double(Double(next(50_000)) / 100)), ("currency", .string("EUR"))])),
                ("lines", .int(Int64(1 + next(9)))),
                ("updatedAt", .string("2026-12-06T07:\(10 + next(50)):\(10 + next(50)).\(100 + next(900))Z")),
                ("note", .string(note)),
            ])
            records.append(record)
            length += approximateLength(record) + 1
        }
        return .array(records)
    }

    /// The length of `value`'s compact JSON text, close enough to size a payload.
    static func approximateLength(_ value: JSONValue) -> Int {
        switch value {
        case .null: return 4
        case .bool(let flag): return flag ? 4 : 5
        case .int(let number): return String(number).count
        case .double(let number): return String(number).count
        case .string(let text): return text.utf8.count + 2
        case .binary: return 0
        case .array(let elements): return 2 + elements.reduce(0) { $0 + approximateLength($1) + 1 }
        case .object(let pairs):
            return 2 + pairs.reduce(0) { $0 + $1.key.utf8.count + 4 + approximateLength($1.value) }
        }
    }
}
