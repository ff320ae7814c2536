import Foundation
import PackagePlugin

/// Generates typed Socket.IO events from the `events.yaml` of the target it is applied to.
///
/// The plugin only finds the catalog and names the output; `socket-gateway-codegen` parses and renders. The
/// generated Swift goes to the plugin work directory under a fixed name and is never committed.
@main
struct SocketGatewayEventsPlugin: BuildToolPlugin {
    /// The catalog file names the plugin looks for among a target's files.
    static let catalogNames: Set<String> = ["events.yaml", "events.yml"]
    /// The generated file's name in the plugin work directory.
    static let outputName = "SocketGatewayEvents.swift"

    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        guard let sourceTarget = target as? SwiftSourceModuleTarget else {
            throw PluginError(
                "SocketGatewayEventsPlugin can only be applied to a Swift target; '\(target.name)' is not one"
            )
        }
        let catalogs = sourceTarget.sourceFiles.map(\.url).filter { Self.catalogNames.contains($0.lastPathComponent) }
        guard let catalog = catalogs.first else {
            throw PluginError(
                "target '\(target.name)' applies SocketGatewayEventsPlugin but has no events.yaml; add one to \(sourceTarget.directoryURL.path(percentEncoded: false))"
            )
        }
        guard catalogs.count == 1 else {
            let paths = catalogs.map { $0.path(percentEncoded: false) }.sorted().joined(separator: ", ")
            throw PluginError("target '\(target.name)' has more than one event catalog (\(paths)); keep one")
        }
        let output = context.pluginWorkDirectoryURL
            .appending(component: "GeneratedSources")
            .appending(component: Self.outputName)
        return [
            .buildCommand(
                displayName: "Generating socket events from \(catalog.lastPathComponent) for \(target.name)",
                executable: try context.tool(named: "socket-gateway-codegen").url,
                arguments: [
                    "generate", catalog.path(percentEncoded: false), "--output", output.path(percentEncoded: false),
                ],
                inputFiles: [catalog],
                outputFiles: [output]
            )
        ]
    }
}

/// A plugin failure with a message that says what to do.
struct PluginError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
