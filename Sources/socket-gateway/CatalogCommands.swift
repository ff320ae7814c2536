import ArgumentParser
import _EventCodegenCore

/// `socket-gateway check`: validates an event catalog, and with `--against` lists what changed since an older
/// version and whom it breaks.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate an event catalog (events.yaml); with --against, list breaking changes.",
        discussion: """
            Prints the build plugin's diagnostics (`file:line:col: error: message`)
            on stderr and exits 1 when the catalog has errors; otherwise prints
            `OK: <file>: catalog <name> version <n>, <n> events, <n> types` and
            exits 0. Exit 74: the file cannot be read.

            With --against OLD, compares the catalog with an older version of it
            and prints one line per change on stdout,
            `events.yaml:12:7: breaking: <what>; breaks <who>: <why>` (or `safe`;
            a removed thing is located in the old file), then a summary line.
            OLD is a file, a git ref (the same file at that commit:
            `git show REF:./events.yaml` next to the catalog) or REF:PATH.
            Exit 0: nothing breaks; 3: something deployed breaks; 1: either
            catalog has errors; 74: OLD cannot be read (not a file and not in a
            git repository, an unknown ref, or the file is absent at that ref).

            EXAMPLE
              socket-gateway check events.yaml
              socket-gateway check --against origin/main events.yaml
            """
    )

    @Option(help: "An older version to compare with: a file, a git ref, or REF:PATH (default: no comparison).")
    var against: String?
    @Flag(help: "With --against: print the findings as one JSON object instead of lines.") var json = false
    @Argument(help: "The catalog file (no default).") var catalog: String

    func validate() throws {
        if self.json, self.against == nil { throw ValidationError("--json reports a comparison; add --against OLD") }
    }

    func run() throws {
        guard let contents = readFile(self.catalog) else {
            throw fail("check", "cannot read '\(self.catalog)': \(lastError())", ExitCodes.fileError)
        }
        let new: LocatedCatalog
        do {
            new = try LocatedCatalog(InputFile(path: self.catalog, contents: contents))
        } catch {
            printError(error.description)
            throw ExitCodes.catalogErrors
        }
        guard let against else {
            printLine(GeneratorPipeline.checkedLine(path: self.catalog, catalog: new.catalog))
            return
        }
        let oldInput = try OldCatalogSource.load(against, catalogPath: self.catalog)
        let old: LocatedCatalog
        do {
            old = try LocatedCatalog(oldInput)
        } catch {
            printError(error.description)
            throw ExitCodes.catalogErrors
        }
        let findings = CatalogCompatibility.compare(old: old, new: new)
        if self.json {
            printLine(CompatibilityReport.json(findings, old: old.path, new: new.path))
        } else {
            for finding in findings { printLine(finding.description) }
            printLine(CatalogCompatibility.summary(findings, old: old.path, new: new.path))
        }
        if findings.contains(where: { $0.severity == .breaking }) { throw ExitCodes.breakingChanges }
    }
}

/// `socket-gateway export`: the catalog as Swift, TypeScript declarations or an AsyncAPI document; the same
/// renderers the build plugin's `socket-gateway-codegen` runs.
struct ExportCommand: ParsableCommand {
    /// What the header line of an exported file names as its generator.
    static let generator = "socket-gateway export"

    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export an event catalog as Swift, TypeScript declarations or an AsyncAPI 3.0 document.",
        discussion: """
            The code generator's output: the same renderers the build plugin runs
            (socket-gateway-codegen), with a header naming `socket-gateway export`.
            With --output, prints `wrote <file>: <format> of catalog <name> ...`.
            Exits 1 (with diagnostics) on catalog errors, 74 when a file cannot be
            read or written.

            EXAMPLE
              socket-gateway export --format typescript --output events.d.ts events.yaml
            """
    )

    @Option(
        help: "\(GeneratorPipeline.formatNames) (no default; asyncapi is YAML).",
        transform: ExportCommand.format(_:)
    )
    var format: OutputFormat
    @Option(name: [.short, .long], help: "Write here instead of stdout (default: stdout).") var output: String?
    @Argument(help: "The catalog file (no default).") var catalog: String

    static func format(_ text: String) throws -> OutputFormat {
        guard let format = OutputFormat(rawValue: text) else {
            throw ValidationError("use one of \(GeneratorPipeline.formatNames)")
        }
        return format
    }

    func run() throws {
        guard let contents = readFile(self.catalog) else {
            throw fail("export", "cannot read '\(self.catalog)': \(lastError())", ExitCodes.fileError)
        }
        let catalog: Catalog
        do {
            catalog = try GeneratorPipeline.parseCatalog(InputFile(path: self.catalog, contents: contents))
        } catch {
            printError(error.description)
            throw ExitCodes.catalogErrors
        }
        let text = GeneratorPipeline.render(catalog, as: self.format, generator: Self.generator)
        guard let output else {
            print(text, terminator: "")
            return
        }
        guard writeFile(output, Array(text.utf8)) else {
            throw fail("export", "cannot write '\(output)': \(lastError())", ExitCodes.fileError)
        }
        printLine(GeneratorPipeline.exportedLine(output: output, format: self.format, catalog: catalog, changed: true))
    }
}
