public import Foundation

/// Collects what a child process writes to a pipe, line by line (for Python peers that print one JSON line per
/// event). Install it before `process.run()`.
public final class ProcessLines: @unchecked Sendable {
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var complete: [String] = []
    /// Guarded by `lock`: the text after the last newline.
    private var partial = ""
    private let pipe: Pipe

    /// Starts reading `pipe` (set it as the process's standard output).
    public init(_ pipe: Pipe) {
        self.pipe = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.append(String(decoding: handle.availableData, as: UTF8.self))
        }
    }

    /// The complete lines so far.
    public var lines: [String] {
        self.lock.withLock { self.complete }
    }

    /// Waits until `count` lines have arrived (true), or `process` has exited or 30 s have passed (false): a
    /// python process importing aiohttp and socketio on a loaded machine can take several seconds to start.
    public func wait(for count: Int, from process: Process) async -> Bool {
        for _ in 0..<1200 {
            if self.lines.count >= count { return true }
            if !process.isRunning { return false }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }

    /// Stops reading.
    public func stop() {
        self.pipe.fileHandleForReading.readabilityHandler = nil
    }

    private func append(_ text: String) {
        self.lock.withLock {
            self.partial += text
            while let newline = self.partial.firstIndex(of: "\n") {
                self.complete.append(String(self.partial[..<newline]))
                self.partial.removeSubrange(...newline)
            }
        }
    }
}
