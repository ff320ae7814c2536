import ArgumentParser

/// Several processes read as one: the servers of a cluster, whose CPU is summed (tools/bench's `scale` scenario).
struct ProcessSetProbe: Sendable {
    /// One probe per process.
    let probes: [ProcessProbe]

    init(pids: [Int32]) {
        self.probes = pids.map { ProcessProbe(pid: $0) }
    }

    /// The sum of every process's utime and stime in seconds; nil if any is unreadable.
    func cpuTimes() -> CPUTimes? {
        var sum = CPUTimes(user: 0, system: 0)
        for probe in self.probes {
            guard let times = probe.cpuTimes() else { return nil }
            sum.user += times.user
            sum.system += times.system
        }
        return sum
    }

    /// The sum of every process's utime + stime in seconds; nil if any is unreadable.
    func cpuSeconds() -> Double? {
        self.cpuTimes()?.total
    }

    /// The sum of a `Vm…:` line of every process's /proc/PID/status in KiB; nil if any is unreadable.
    func memoryKiB(_ field: String) -> Int? {
        var sum = 0
        for probe in self.probes {
            guard let value = probe.memoryKiB(field) else { return nil }
            sum += value
        }
        return sum
    }
}

extension LoadCommand {
    /// The servers' hosts and ports from `--url`, which may list several base URLs separated by commas (client i
    /// connects to the (i mod count)-th).
    static func hostsAndPorts(_ urls: String) throws -> [(String, Int)] {
        let listed = urls.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        guard !listed.isEmpty else { throw ValidationError("--url needs at least one http://host:port") }
        return try listed.map { try Self.hostAndPort($0) }
    }
}
