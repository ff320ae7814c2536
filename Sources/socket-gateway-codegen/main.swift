import SocketGatewayVersion
import _EventCodegenCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `socket-gateway-codegen`: the shell around `_EventCodegenCore`. Arguments in, files out, diagnostics on
/// stderr, a non-zero exit code on failure. No dependencies beyond the core, so flags are parsed by hand.
enum Tool {
    static let usage = """
        USAGE: socket-gateway-codegen <command> [options] <events.yaml>

        The build plugin's tool: SocketGatewayEventsPlugin runs `generate` for every
        target with an events.yaml. Operators: use `socket-gateway check` and
        `socket-gateway export`, which print the same output (its header names
        `socket-gateway export`).

        COMMANDS:
          generate <events.yaml> --output <file.swift>
                Generates the Swift payload types and typed emitters (what the build plugin runs).
                The output is written only when its bytes change; prints nothing on success.
          export --format <\(GeneratorPipeline.formatNames)> <events.yaml> [--output <file>]
                Exports the catalog; without --output it is printed on stdout.
          check <events.yaml>
                Validates the catalog and prints its diagnostics.
          --version
                Prints the version.

        Diagnostics are printed as `path:line:col: error: message` on stderr.
        EXIT CODES: 0 success, 1 catalog errors, 64 wrong usage, 74 a file could not be read or written.
        """

    struct UsageError: Error {
        var message: String
    }

    struct Arguments {
        var command: String
        var input: String
        var output: String?
        var format: OutputFormat?
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> Arguments {
        guard let command = arguments.first else { throw UsageError(message: "missing command") }
        guard ["generate", "export", "check"].contains(command) else {
            throw UsageError(message: "unknown command '\(command)'")
        }
        var input: String?
        var output: String?
        var format: OutputFormat?
        var rest = arguments.dropFirst()[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--output", "-o":
                guard let value = rest.popFirst() else { throw UsageError(message: "\(argument) needs a file path") }
                output = value
            case "--format":
                guard command == "export" else { throw UsageError(message: "--format is an option of 'export'") }
                guard let value = rest.popFirst(), let parsed = OutputFormat(rawValue: value) else {
                    throw UsageError(message: "--format needs one of \(GeneratorPipeline.formatNames)")
                }
                format = parsed
            default:
                if argument.hasPrefix("-") { throw UsageError(message: "unknown option '\(argument)'") }
                guard input == nil else {
                    throw UsageError(message: "unexpected argument '\(argument)'; give one catalog")
                }
                input = argument
            }
        }
        guard let input else { throw UsageError(message: "missing the catalog path (events.yaml)") }
        if command == "generate", output == nil { throw UsageError(message: "'generate' needs --output <file.swift>") }
        if command == "export", format == nil {
            throw UsageError(message: "'export' needs --format \(GeneratorPipeline.formatNames)")
        }
        if command == "check", output != nil { throw UsageError(message: "'check' writes no file") }
        return Arguments(command: command, input: input, output: output, format: format)
    }

    static func run(_ arguments: [String]) -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") || arguments.first == "help" {
            print(Self.usage)
            return 0
        }
        if arguments == ["--version"] {
            print(SocketGatewayVersion.line(for: "socket-gateway-codegen"))
            return 0
        }
        let parsed: Arguments
        do {
            parsed = try Self.parse(arguments)
        } catch {
            Self.printError("error: \(error.message)\n\n\(Self.usage)")
            return 64
        }
        guard let contents = FileIO.read(parsed.input) else {
            Self.printError("error: cannot read '\(parsed.input)': \(FileIO.lastError())")
            return 74
        }
        let text: String
        let format: OutputFormat
        let catalog: Catalog
        do {
            catalog = try GeneratorPipeline.parseCatalog(InputFile(path: parsed.input, contents: contents))
            if parsed.command == "check" {
                print(GeneratorPipeline.checkedLine(path: parsed.input, catalog: catalog))
                return 0
            }
            format = parsed.format ?? .swift
            text = GeneratorPipeline.render(catalog, as: format)
        } catch {
            Self.printError(error.description)
            return 1
        }
        guard let output = parsed.output else {
            print(text, terminator: "")
            return 0
        }
        let outcome = FileIO.replaceContents(of: output, with: Array(text.utf8))
        switch outcome {
        case .unchanged, .written:
            if parsed.command == "export" {
                print(
                    GeneratorPipeline.exportedLine(
                        output: output,
                        format: format,
                        catalog: catalog,
                        changed: outcome == .written
                    )
                )
            }
            return 0
        case .failed(let reason):
            Self.printError("error: cannot write '\(output)': \(reason)")
            return 74
        }
    }

    static func printError(_ message: String) {
        var text = message
        if !text.hasSuffix("\n") { text += "\n" }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

exit(Tool.run(Array(CommandLine.arguments.dropFirst())))
