import Logging
import SocketGatewayWorker
import Testing

/// `SOCKET_REDIS_MODE` for a worker: read from the environment, and a wrong value makes every emit fail with it.
@Suite struct WorkerChannelModeTests {
    let logger: Logger = {
        var logger = Logger(label: "test.worker.mode")
        logger.logLevel = .critical
        return logger
    }()

    @Test func theModeComesFromTheEnvironment() {
        let rooms = WorkerSocketGateway(
            environment: ["REDIS_URL": "redis://127.0.0.1:1", "SOCKET_REDIS_MODE": "rooms"],
            logger: self.logger
        )
        #expect(rooms.mode == .rooms)
        let python = WorkerSocketGateway(environment: ["REDIS_URL": "redis://127.0.0.1:1"], logger: self.logger)
        #expect(python.mode == .python)
    }

    @Test func aWrongModeFailsEveryEmitWithTheReason() async {
        let worker = WorkerSocketGateway(
            environment: ["REDIS_URL": "redis://127.0.0.1:1", "SOCKET_REDIS_MODE": "sharded"],
            logger: self.logger
        )
        let result = await worker.emitToUser("1", event: "e", data: 1)
        #expect(result.outcome == .failed)
        #expect(result.reason?.contains("SOCKET_REDIS_MODE") == true)
        #expect(!worker.isConfigured)
    }
}
