import Atomics
import Histogram
import NIOCore

/// Counters and the latency histogram of the clients on one event loop. Touched only on that loop, except the
/// atomics, which the emitter and the reporter read from anywhere.
final class LoadRecorder: @unchecked Sendable {
    /// The loop that owns the histogram.
    let eventLoop: any EventLoop
    /// EVENT packets received since the start (read by the closed-loop emitter).
    let events = ManagedAtomic<Int>(0)
    /// Bytes the clients on this loop read off their sockets since the start.
    let wireBytes = ManagedAtomic<Int>(0)
    /// Messages that arrived compressed (permessage-deflate) since the start.
    let compressedMessages = ManagedAtomic<Int>(0)
    /// Inflates compressed messages for the clients on this loop (`--deflate`).
    let inflater = MessageInflater()
    /// Clients whose connection closed after they had connected.
    let disconnects = ManagedAtomic<Int>(0)
    /// Delivery latency in microseconds, recorded only while `recording` is set.
    private(set) var latency = Histogram<UInt64>(
        highestTrackableValue: 120_000_000,
        numberOfSignificantValueDigits: .three
    )
    /// Events whose payload carried no readable send timestamp.
    private(set) var unstamped = 0
    /// Shared by every recorder: whether the measurement window is open.
    let recording: ManagedAtomic<Bool>
    /// With `--progress`: latency since the last `takeInterval()`, warm-up included.
    private var interval: Histogram<UInt64>?

    init(eventLoop: any EventLoop, recording: ManagedAtomic<Bool>, progress: Bool = false) {
        self.eventLoop = eventLoop
        self.recording = recording
        if progress {
            self.interval = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .two)
        }
    }

    /// Counts one EVENT packet; `payload` is the Engine.IO message text (`42[...]`).
    func recordEvent(_ payload: ByteBuffer, now: UInt64) {
        self.events.wrappingIncrement(ordering: .relaxed)
        let recording = self.recording.load(ordering: .relaxed)
        guard recording || self.interval != nil else { return }
        if let sent = SendStamp.read(from: payload), now >= sent {
            if recording { _ = self.latency.record(now - sent) }
            _ = self.interval?.record(now - sent)
        } else if recording {
            self.unstamped += 1
        }
    }

    /// The latency histogram since the previous call, then cleared (on the recorder's loop; `--progress`).
    func takeInterval() async throws -> Histogram<UInt64>? {
        try await self.eventLoop.submit { () -> Histogram<UInt64>? in
            let taken = self.interval
            self.interval?.reset()
            return taken
        }.get()
    }

    /// Clears the histogram (on the recorder's loop).
    func resetLatency() {
        self.latency.reset()
        self.unstamped = 0
    }

    /// A copy of the histogram and the unstamped count, taken on the recorder's loop.
    func snapshot() async throws -> (Histogram<UInt64>, Int) {
        try await self.eventLoop.submit { (self.latency, self.unstamped) }.get()
    }

    func reset() async throws {
        try await self.eventLoop.submit { self.resetLatency() }.get()
    }
}

/// The send timestamp the emitter puts into every payload: `"t":<microseconds of CLOCK_MONOTONIC>`.
enum SendStamp {
    /// The key written before the number.
    static let key: [UInt8] = Array(#""t":"#.utf8)

    /// Finds `"t":` in `payload` and parses the unsigned integer after it (spaces allowed after the colon).
    static func read(from payload: ByteBuffer) -> UInt64? {
        payload.withUnsafeReadableBytes { bytes -> UInt64? in
            let count = bytes.count
            let keyCount = Self.key.count
            guard count > keyCount else { return nil }
            var index = 0
            search: while index + keyCount < count {
                for offset in 0..<keyCount where bytes[index + offset] != Self.key[offset] {
                    index += 1
                    continue search
                }
                var position = index + keyCount
                while position < count, bytes[position] == UInt8(ascii: " ") { position += 1 }
                var value: UInt64 = 0
                var digits = 0
                while position < count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
                    value = value &* 10 &+ UInt64(bytes[position] &- UInt8(ascii: "0"))
                    position += 1
                    digits += 1
                }
                return digits > 0 ? value : nil
            }
            return nil
        }
    }
}
