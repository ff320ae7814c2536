import Histogram

/// Every figure of one run.
final class LoadReport {
    let label: String
    var requested = 0
    var connected = 0
    var connectSeconds = 0.0
    var connectP50ms = 0.0
    var connectP99ms = 0.0
    var connectErrors: [String: Int] = [:]
    var connectOwnCPU = 0.0
    var connectServerCPU: Double?
    var windowSeconds = 0.0
    var deliveriesPerSecond = 0.0
    var emitsPerSecond = 0.0
    var ownCPU = 0.0
    /// The part of `ownCPU` spent in the kernel.
    var ownSystemCPU = 0.0
    var serverCPU: Double?
    /// Bytes the clients read off their sockets over the window per EVENT delivered (frames, pings included).
    var wireBytesPerDelivery: Double?
    /// Messages that arrived compressed over the window per EVENT delivered (0 without permessage-deflate).
    var compressedShare: Double?
    /// The part of `serverCPU` spent in the kernel.
    var serverSystemCPU: Double?
    /// redis-server's CPU in cores over the window (`--redis-pid`; summed over every one given).
    var redisCPU: Double?
    var serverRSSKiB: Int?
    var serverPeakRSSKiB: Int?
    var latency: Histogram<UInt64>?
    var unstamped = 0
    var undelivered = 0
    var failedEmits = 0
    var disconnects = 0

    init(label: String) { self.label = label }

    private func percentile(_ value: Double) -> Double {
        guard let latency, latency.totalCount > 0 else { return 0 }
        return Double(latency.valueAtPercentile(value)) / 1000
    }

    private var maxLatency: Double {
        guard let latency, latency.totalCount > 0 else { return 0 }
        return Double(latency.max) / 1000
    }

    func print(emitting: Bool) {
        func f(_ value: Double, _ digits: Int = 1) -> String {
            var text = String(Int((value * pow10(digits)).rounded()))
            guard digits > 0 else { return text }
            let negative = text.hasPrefix("-")
            if negative { text.removeFirst() }
            while text.count <= digits { text = "0" + text }
            text.insert(".", at: text.index(text.endIndex, offsetBy: -digits))
            return (negative ? "-" : "") + text
        }
        Swift.print(
            "[\(self.label)] connected \(self.connected)/\(self.requested) in \(f(self.connectSeconds, 2)) s "
                + "(connect p50 \(f(self.connectP50ms)) ms, p99 \(f(self.connectP99ms)) ms; load-tool CPU \(f(self.connectOwnCPU, 2)) s"
                + (self.connectServerCPU.map { ", server CPU \(f($0, 2)) s" } ?? "") + ")"
        )
        for (error, count) in self.connectErrors.sorted(by: { $0.value > $1.value }).prefix(3) {
            Swift.print("[\(self.label)]   \(count)× \(error)")
        }
        if emitting {
            Swift.print(
                "[\(self.label)] \(f(self.emitsPerSecond)) emits/s, \(f(self.deliveriesPerSecond)) deliveries/s over \(f(self.windowSeconds, 2)) s"
            )
            Swift.print(
                "[\(self.label)] latency ms: p50 \(f(self.percentile(50), 2)) p90 \(f(self.percentile(90), 2)) "
                    + "p99 \(f(self.percentile(99), 2)) p99.9 \(f(self.percentile(99.9), 2)) max \(f(self.maxLatency, 2)) "
                    + "(\(self.latency?.totalCount ?? 0) samples)"
            )
            if let bytes = self.wireBytesPerDelivery {
                Swift.print(
                    "[\(self.label)] \(f(bytes)) bytes read per delivery, "
                        + "\(f((self.compressedShare ?? 0) * 100)) % of deliveries compressed"
                )
            }
        }
        func kernelShare(_ system: Double?, of total: Double?) -> String {
            guard let system, let total, total > 0 else { return "" }
            return " (kernel \(f(system / total * 100, 0)) %)"
        }
        Swift.print(
            "[\(self.label)] CPU (cores): server " + (self.serverCPU.map { f($0, 2) } ?? "?")
                + kernelShare(self.serverSystemCPU, of: self.serverCPU)
                + ", load tool \(f(self.ownCPU, 2))" + kernelShare(self.ownSystemCPU, of: self.ownCPU)
                + (self.redisCPU.map { ", redis-server \(f($0, 3))" } ?? "")
                + (self.serverRSSKiB.map { "; server RSS \(f(Double($0) / 1024)) MiB" } ?? "")
                + (self.serverPeakRSSKiB.map { " (peak \(f(Double($0) / 1024)) MiB)" } ?? "")
        )
        if self.undelivered > 0 || self.failedEmits > 0 || self.disconnects > 0 || self.unstamped > 0 {
            Swift.print(
                "[\(self.label)] undelivered \(self.undelivered), failed emits \(self.failedEmits), "
                    + "client disconnects \(self.disconnects), unstamped \(self.unstamped)"
            )
        }
    }

    func printJSON() {
        var fields: [(String, String)] = [
            ("label", "\"\(self.label)\""), ("requested", "\(self.requested)"), ("connected", "\(self.connected)"),
            ("connect_s", "\(self.connectSeconds)"), ("connect_p50_ms", "\(self.connectP50ms)"),
            ("connect_p99_ms", "\(self.connectP99ms)"), ("connect_errors", "\(self.connectErrors.values.reduce(0, +))"),
            ("connect_tool_cpu_s", "\(self.connectOwnCPU)"), ("window_s", "\(self.windowSeconds)"),
            ("deliveries_per_s", "\(self.deliveriesPerSecond)"), ("emits_per_s", "\(self.emitsPerSecond)"),
            ("tool_cpu", "\(self.ownCPU)"), ("tool_sys_cpu", "\(self.ownSystemCPU)"),
            ("p50_ms", "\(self.percentile(50))"), ("p90_ms", "\(self.percentile(90))"),
            ("p99_ms", "\(self.percentile(99))"), ("p999_ms", "\(self.percentile(99.9))"),
            ("max_ms", "\(self.maxLatency)"),
            ("samples", "\(self.latency?.totalCount ?? 0)"), ("undelivered", "\(self.undelivered)"),
            ("failed_emits", "\(self.failedEmits)"), ("disconnects", "\(self.disconnects)"),
        ]
        if let value = self.connectServerCPU { fields.append(("connect_server_cpu_s", "\(value)")) }
        if let value = self.serverCPU { fields.append(("server_cpu", "\(value)")) }
        if let value = self.wireBytesPerDelivery { fields.append(("wire_bytes_per_delivery", "\(value)")) }
        if let value = self.compressedShare { fields.append(("compressed_share", "\(value)")) }
        if let value = self.serverSystemCPU { fields.append(("server_sys_cpu", "\(value)")) }
        if let value = self.redisCPU { fields.append(("redis_cpu", "\(value)")) }
        if let value = self.serverRSSKiB { fields.append(("server_rss_kib", "\(value)")) }
        if let value = self.serverPeakRSSKiB { fields.append(("server_peak_rss_kib", "\(value)")) }
        Swift.print("JSON " + "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }
}

private func pow10(_ digits: Int) -> Double {
    var value = 1.0
    for _ in 0..<digits { value *= 10 }
    return value
}
