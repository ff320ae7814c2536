import ArgumentParser
import _EventCodegenCore

/// `socket-gateway check`: validates an event catalog.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate an event catalog (events.yaml).",
        discussion: """
            Prints the build plugin's diagnostics (`file:line:col: error: message`)
            on stderr and exits 1 when the catalog has errors; otherwise prints
            `OK: N events` and exits 0.
            """
    )

    @Argument(help: "The catalog file.") var catalog: String

    func run() throws {
        guard let contents = readFile(self.catalog) else {
            throw fail("check", "cannot read '\(self.catalog)': \(lastError())", ExitCodes.fileError)
        }
        do {
            let parsed = try GeneratorPipeline.parseCatalog(InputFile(path: self.catalog, contents: contents))
            printLine("OK: \(parsed.events.count) events")
        } catch {
            printError(error.description)
            throw ExitCodes.catalogErrors
        }
    }
}

/// `socket-gateway export`: the catalog as TypeScript declarations or an AsyncAPI document.
struct ExportCommand: ParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case typescript, asyncapi
        case asyncapiJSON = "asyncapi-json"

        var output: OutputFormat {
            switch self {
            case .typescript: .typescript
            case .asyncapi: .asyncapi
            case .asyncapiJSON: .asyncapiJSON
            }
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export an event catalog as TypeScript declarations or an AsyncAPI 3.0 document.",
        discussion: "The code generator's output. Exits 1 (with diagnostics) on catalog errors."
    )

    @Option(help: "typescript, asyncapi (YAML) or asyncapi-json.") var format: Format
    @Option(name: [.short, .long], help: "Write here instead of stdout.") var output: String?
    @Argument(help: "The catalog file.") var catalog: String

    func run() throws {
        guard let contents = readFile(self.catalog) else {
            throw fail("export", "cannot read '\(self.catalog)': \(lastError())", ExitCodes.fileError)
        }
        let text: String
        do {
            text = try GeneratorPipeline.run(
                InputFile(path: self.catalog, contents: contents),
                format: self.format.output
            )
        } catch {
            printError(error.description)
            throw ExitCodes.catalogErrors
        }
        guard let output else {
            print(text, terminator: "")
            return
        }
        guard writeFile(output, Array(text.utf8)) else {
            throw fail("export", "cannot write '\(output)': \(lastError())", ExitCodes.fileError)
        }
    }
}
