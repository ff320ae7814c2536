#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Microseconds of CLOCK_MONOTONIC: comparable between processes on one machine.
func monotonicMicroseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1_000
}

/// CPU time of a process in seconds: in user space and in the kernel (system calls, the TCP stack, wake-ups).
struct CPUTimes: Sendable {
    var user: Double
    var system: Double
    var total: Double { self.user + self.system }

    static func - (lhs: CPUTimes, rhs: CPUTimes) -> CPUTimes {
        CPUTimes(user: lhs.user - rhs.user, system: lhs.system - rhs.system)
    }
}

/// CPU time (user + system) of this process, in seconds.
func ownCPUSeconds() -> Double {
    ownCPUTimes().total
}

/// CPU time of this process, split into user and system time.
func ownCPUTimes() -> CPUTimes {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return CPUTimes(
        user: Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
        system: Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    )
}

/// Reads another process's CPU time and memory from /proc (Linux).
struct ProcessProbe: Sendable {
    /// The process id.
    let pid: Int32

    /// utime + stime in seconds, from /proc/PID/stat; nil if unreadable.
    func cpuSeconds() -> Double? {
        self.cpuTimes()?.total
    }

    /// utime and stime in seconds, from /proc/PID/stat; nil if unreadable.
    func cpuTimes() -> CPUTimes? {
        guard let text = readProcFile("/proc/\(self.pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After ")": state(0) ppid(1) … utime is field 14 of the line = index 11 here, stime index 12.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return CPUTimes(user: user / ticks, system: system / ticks)
    }

    /// A `Vm…:` line of /proc/PID/status in KiB (e.g. "VmRSS", "VmHWM").
    func memoryKiB(_ field: String) -> Int? {
        guard let text = readProcFile("/proc/\(self.pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let number = line.dropFirst(field.count + 1).filter { $0.isNumber }
            return Int(number)
        }
        return nil
    }
}

/// The whole text of a small /proc file.
func readProcFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let read = fread(&chunk, 1, chunk.count, file)
        if read <= 0 { break }
        bytes.append(contentsOf: chunk[0..<read])
    }
    return String(decoding: bytes, as: UTF8.self)
}
