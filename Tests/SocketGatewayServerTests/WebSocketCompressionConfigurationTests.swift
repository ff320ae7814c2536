import Testing

@testable import SocketGatewayServer

/// `SOCKET_WS_COMPRESSION` / `SOCKET_WS_COMPRESSION_THRESHOLD` and `webSocketCompression` in `validate()`: good
/// values reach the Engine.IO configuration, bad ones are refused with the variable's name.
@Suite struct WebSocketCompressionConfigurationTests {
    typealias Key = SocketServerConfiguration.EnvironmentKey

    @Test func environmentTurnsItOnWithAThreshold() throws {
        #expect(try SocketServerConfiguration(environment: [:]).webSocketCompression == nil)
        #expect(
            try SocketServerConfiguration(environment: [Key.webSocketCompression: "off"]).webSocketCompression == nil
        )
        let on = try SocketServerConfiguration(environment: [Key.webSocketCompression: "on"])
        #expect(on.webSocketCompression == SocketWebSocketCompression(threshold: 1024))
        #expect(on.engineIO.webSocketCompression?.threshold == 1024)
        let custom = try SocketServerConfiguration(environment: [
            Key.webSocketCompression: "ON", Key.webSocketCompressionThreshold: "0",
        ])
        #expect(custom.webSocketCompression?.threshold == 0)
        #expect(SocketServerConfiguration().engineIO.webSocketCompression == nil)
    }

    @Test(arguments: [
        ([Key.webSocketCompression: "yes please"], Key.webSocketCompression),
        ([Key.webSocketCompression: "on", Key.webSocketCompressionThreshold: "-1"], Key.webSocketCompressionThreshold),
        ([Key.webSocketCompression: "on", Key.webSocketCompressionThreshold: "1k"], Key.webSocketCompressionThreshold),
        // A threshold without compression would silently do nothing: refused.
        ([Key.webSocketCompressionThreshold: "2048"], Key.webSocketCompressionThreshold),
    ])
    func badValuesAreNamed(environment: [String: String], variable: String) {
        #expect {
            try SocketServerConfiguration(environment: environment)
        } throws: { error in
            (error as? SocketServerConfigurationError)?.variable == variable
        }
    }

    @Test func validateRefusesANegativeThreshold() throws {
        var configuration = SocketServerConfiguration().anonymous
        configuration.webSocketCompression = SocketWebSocketCompression(threshold: -5)
        #expect {
            try configuration.validate()
        } throws: { error in
            (error as? SocketServerConfigurationError)?.variable == "webSocketCompression.threshold"
        }
        configuration.webSocketCompression = SocketWebSocketCompression()
        try configuration.validate()
    }
}
