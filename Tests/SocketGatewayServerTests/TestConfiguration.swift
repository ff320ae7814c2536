import SocketGatewayServer

extension SocketServerConfiguration {
    /// This configuration with `allowAnonymous` set: for tests whose clients do not authenticate.
    var anonymous: Self {
        var configuration = self
        configuration.allowAnonymous = true
        return configuration
    }
}
