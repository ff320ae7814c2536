/// The version of the SocketGateway tools: the one place it is written. `socket-gateway --version`,
/// `socket-gateway-codegen --version` and `sheet-sync-demo --version` print it; change it here when releasing.
package enum SocketGatewayVersion {
    /// The version, `MAJOR.MINOR.PATCH` (semantic versioning).
    package static let current = "0.1.0"

    /// What `<tool> --version` prints: the tool's name and the version, e.g. `socket-gateway 0.1.0`.
    /// - Parameter tool: the executable's name.
    /// - Returns: one line, without a newline.
    package static func line(for tool: String) -> String {
        "\(tool) \(Self.current)"
    }
}
