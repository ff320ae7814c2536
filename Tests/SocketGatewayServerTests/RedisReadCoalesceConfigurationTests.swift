import SocketGatewayRedis
import SocketGatewayServer
import Testing

@Suite struct RedisReadCoalesceConfigurationTests {
    @Test func theEnvironmentSetsTheDelayInMillisecondsAndZeroTurnsItOff() throws {
        let redis = "redis://127.0.0.1:6379"
        let defaults = try SocketServerConfiguration(environment: ["REDIS_URL": redis])
        #expect(defaults.redis?.readCoalescing == .milliseconds(1))
        #expect(defaults.redis?.readCoalescing == RedisSubscriberConfiguration().readCoalescing)
        let half = try SocketServerConfiguration(environment: ["REDIS_URL": redis, "SOCKET_REDIS_READ_COALESCE": "0.5"])
        #expect(half.redis?.readCoalescing == .microseconds(500))
        let off = try SocketServerConfiguration(environment: ["REDIS_URL": redis, "SOCKET_REDIS_READ_COALESCE": "0"])
        #expect(off.redis?.readCoalescing == .zero)
    }

    @Test(arguments: ["-1", "101", "soon"])
    func aWrongDelayIsRefusedWithItsVariable(_ text: String) {
        #expect {
            _ = try SocketServerConfiguration(
                environment: ["REDIS_URL": "redis://127.0.0.1:6379", "SOCKET_REDIS_READ_COALESCE": text]
            )
        } throws: { error in
            (error as? SocketServerConfigurationError)?.variable == "SOCKET_REDIS_READ_COALESCE"
        }
    }
}
