import Foundation
import SocketGatewayRedisTestKit
import Testing

@testable import _EventCodegenCore

/// The TypeScript export compiled with `tsc --strict` (Debian's node-typescript) against a stand-in for
/// socket.io-client's typed `Socket` (Fixtures/typescript/socket.io-client.d.ts): a page's correct use of both
/// directions and acks compiles, and each deliberately wrong call is refused where it is written.
///
/// `tools/test` installs node-typescript and sets `SOCKET_GATEWAY_TSC`; then a missing or failing tsc fails here.
/// Without that variable the suite runs when `tsc` is on PATH and is skipped (reported as such) when it is not.
@Suite(.enabled(if: TypeScriptCompiler.path != nil, "tsc not found: apt-get install node-typescript"))
struct TypeScriptCheckTests {
    /// Each wrong statement of bad.ts: where tsc must report it, its error code, and a part of its message.
    static let expectedErrors: [(location: String, code: String, message: String)] = [
        ("(7,37)", "TS2322", "Type 'number' is not assignable to type 'string'."),
        ("(8,8)", "TS2554", "Expected 3 arguments, but got 2."),
        ("(9,53)", "TS2322", "Type '\"urgent\"' is not assignable to type"),
        ("(10,46)", "TS2554", "Expected 2 arguments, but got 3."),
        ("(11,13)", "TS2345", "Argument of type '\"sheet:sync:progress\"' is not assignable to parameter of type"),
        ("(12,69)", "TS2322", "Type 'string' is not assignable to type 'boolean'."),
        ("(13,36)", "TS2345", "Property 'text' is missing in type '{ room: string; }'"),
    ]

    @Test func theExportsCompileAndAPageUsingBothDirectionsTypeChecks() async throws {
        let directory = try Self.project(main: "good.ts")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await TypeScriptCompiler.run(in: directory)
        #expect(result.status == 0, "tsc refused good.ts or an export:\n\(result.output)")
        #expect(result.output.isEmpty, "tsc printed:\n\(result.output)")
    }

    @Test func wrongPayloadsEventsAndAckCallbacksDoNotCompile() async throws {
        let directory = try Self.project(main: "bad.ts")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await TypeScriptCompiler.run(in: directory)
        #expect(result.status != 0, "tsc accepted bad.ts")
        let errors = result.output.split(separator: "\n").filter { $0.hasPrefix("bad.ts(") }
        let reported = errors.map { line in
            String(line.dropFirst("bad.ts".count).prefix { $0 != ":" })
                + " "
                + String(line.split(separator: " ").dropFirst(2).first ?? "").trimmingCharacters(in: [":"])
        }
        #expect(reported == Self.expectedErrors.map { "\($0.location) \($0.code)" }, "tsc printed:\n\(result.output)")
        for expected in Self.expectedErrors {
            #expect(
                result.output.contains(expected.message),
                "no '\(expected.message)' for bad.ts\(expected.location) in:\n\(result.output)"
            )
        }
        // Nothing else is wrong: every error is one of bad.ts's deliberate ones, none in the exports.
        let otherErrors = result.output.split(separator: "\n").filter {
            $0.contains("error TS") && !$0.hasPrefix("bad.ts(")
        }
        #expect(otherErrors.isEmpty)
    }

    /// A folder with the exports of the three golden catalogs, the socket.io-client stand-in, `main` and a
    /// tsconfig.json that checks them strictly (no emit, no @types lookups).
    private static func project(main: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("socketgateway-tsc-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var files = ["socket.io-client.d.ts", main]
        for (catalog, output) in [
            ("both-ways", "events.d.ts"), ("sheet-sync", "sheet-sync.d.ts"),
            ("kitchen-sink", "kitchen-sink.d.ts"),
        ] {
            let input = InputFile(path: "events.yaml", contents: try readFixture("golden/\(catalog)/events.yaml"))
            try GeneratorPipeline.run(input, format: .typescript).write(
                to: directory.appendingPathComponent(output),
                atomically: true,
                encoding: .utf8
            )
            files.append(output)
        }
        for file in ["socket.io-client.d.ts", main] {
            try Data(try readFixture("typescript/\(file)")).write(to: directory.appendingPathComponent(file))
        }
        let names = files.map { "\"\($0)\"" }.joined(separator: ", ")
        let configuration = """
            {
              "compilerOptions": {
                "strict": true, "noEmit": true, "target": "es2020", "lib": ["es2020", "dom"],
                "module": "commonjs", "types": []
              },
              "files": [\(names)]
            }

            """
        try configuration.write(
            to: directory.appendingPathComponent("tsconfig.json"),
            atomically: true,
            encoding: .utf8
        )
        return directory
    }
}

/// Finds and runs the TypeScript compiler.
enum TypeScriptCompiler {
    /// `SOCKET_GATEWAY_TSC` when set (tools/test sets it: a missing file there is a failure, not a skip), else the
    /// first `tsc` on PATH, else nil.
    static let path: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let configured = environment["SOCKET_GATEWAY_TSC"], !configured.isEmpty { return configured }
        for folder in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(folder)/tsc"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// How long one compile may take before it is stopped and reported.
    static let timeLimit: Duration = .seconds(180)

    struct Result {
        var status: Int32
        /// stdout and stderr together, as tsc prints its diagnostics on stdout.
        var output: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `tsc -p tsconfig.json` in `directory`, without holding a thread of the cooperative pool.
    /// - Throws: ``Failure`` when tsc is missing, cannot start or runs past ``timeLimit`` (then it is killed).
    static func run(in directory: URL) async throws -> Result {
        guard let path = Self.path, FileManager.default.isExecutableFile(atPath: path) else {
            throw Failure(description: "tsc not found at \(Self.path ?? "PATH"): apt-get install node-typescript")
        }
        do {
            let result = try await ChildProcess.run(
                path,
                ["-p", "tsconfig.json"],
                currentDirectory: directory.path,
                timeout: Self.timeLimit
            )
            return Result(status: result.status, output: result.output)
        } catch let failure as ChildProcess.Failure {
            throw Failure(description: "\(failure) (in \(directory.path))")
        }
    }
}
