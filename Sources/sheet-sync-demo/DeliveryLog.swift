import CoreMetrics

/// Turns the server's delivery counter (`socketgateway_emit_deliveries_total`, one per client a packet was written
/// to) into live-log lines, so the demo shows how many clients of each server got each event. Every other metric
/// is dropped: the demo has no metrics backend.
struct DeliveryLogMetrics: MetricsFactory {
    /// Called with the number of clients one emit reached on this server (only when it reached some).
    let onDelivery: @Sendable (Int64) -> Void

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard label == "socketgateway_emit_deliveries_total" else { return NOOPMetricsHandler.instance }
        return DeliveryCounter(onDelivery: self.onDelivery)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        NOOPMetricsHandler.instance
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class DeliveryCounter: CounterHandler {
        let onDelivery: @Sendable (Int64) -> Void

        init(onDelivery: @escaping @Sendable (Int64) -> Void) {
            self.onDelivery = onDelivery
        }

        func increment(by amount: Int64) {
            if amount > 0 { self.onDelivery(amount) }
        }

        func reset() {}
    }
}
