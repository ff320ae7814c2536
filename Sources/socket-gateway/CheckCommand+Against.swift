import ArgumentParser
import SocketGatewayCore
import _EventCodegenCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ExitCodes {
    /// `check --against`: something already deployed would break.
    static let breakingChanges = ExitCode(3)
}

/// Where `check --against` reads the older catalog: a file, or the catalog's file at a git ref.
enum OldCatalogSource {
    /// Reads the old catalog named by `against`.
    /// - Parameters:
    ///   - against: A file; a git ref (the same file as `catalogPath` at that commit); or `REF:PATH`.
    ///   - catalogPath: The new catalog's path, as given.
    /// - Returns: The old catalog's bytes, named as findings print it (`origin/main:events.yaml` for git).
    /// - Throws: Exit 74 with one line saying why it cannot be read.
    static func load(_ against: String, catalogPath: String) throws -> InputFile {
        if let contents = readFile(against) { return InputFile(path: against, contents: contents) }
        let directory: String
        let spec: String
        let ref: String
        let shown: String
        if let colon = against.firstIndex(of: ":") {
            // REF:PATH, as `git show` reads it (PATH from the repository's top, or ./PATH from here).
            directory = "."
            spec = against
            ref = String(against[..<colon])
            shown = against
        } else {
            // The catalog's own file at REF, resolved next to the catalog.
            let parts = catalogPath.split(separator: "/", omittingEmptySubsequences: false)
            directory = parts.count > 1 ? parts.dropLast().joined(separator: "/") : "."
            spec = "\(against):./\(parts.last.map(String.init) ?? catalogPath)"
            ref = against
            shown = "\(against):\(catalogPath)"
        }
        let failure = { (reason: String) in fail("check", reason, ExitCodes.fileError) }
        guard let inside = runProcess(["git", "-C", directory, "rev-parse", "--is-inside-work-tree"]) else {
            throw failure("--against '\(against)' is not a readable file, and git could not be run")
        }
        guard inside.status == 0 else {
            // Say git's own reason when it is not the usual one (e.g. a repository owned by another user).
            let reason = String(decoding: inside.errorOutput, as: UTF8.self).split(separator: "\n").first ?? ""
            let gitSays = reason.contains("not a git repository") || reason.isEmpty ? "" : " (git: \(reason))"
            throw failure(
                "--against '\(against)' is not a readable file, and \(directory) is not in a git repository"
                    + "\(gitSays) (give an older events.yaml, or run inside the repository)"
            )
        }
        guard
            let verified = runProcess(["git", "-C", directory, "rev-parse", "--verify", "--quiet", ref + "^{commit}"]),
            verified.status == 0, !ref.isEmpty
        else {
            throw failure("--against '\(against)': unknown git ref '\(ref)' (try `git fetch`, or a branch or tag name)")
        }
        guard let shownFile = runProcess(["git", "-C", directory, "show", spec]), shownFile.status == 0 else {
            let path = spec[spec.index(after: spec.firstIndex(of: ":")!)...]
            throw failure("--against '\(against)': '\(path)' does not exist at \(ref)")
        }
        return InputFile(path: shown, contents: shownFile.output)
    }

    /// Runs a program found on PATH with stdin from /dev/null; returns its exit status, stdout and stderr, or
    /// `nil` when it cannot be started.
    static func runProcess(_ arguments: [String]) -> (status: Int32, output: [UInt8], errorOutput: [UInt8])? {
        var output: [Int32] = [0, 0]
        var errors: [Int32] = [0, 0]
        guard pipe(&output) == 0 else { return nil }
        guard pipe(&errors) == 0 else {
            close(output[0])
            close(output[1])
            return nil
        }
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t?
        #else
        var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        for descriptor in output + errors { posix_spawn_file_actions_addclose(&actions, descriptor) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let started = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        close(output[1])
        close(errors[1])
        defer {
            close(output[0])
            close(errors[0])
        }
        guard started == 0 else { return nil }
        // git's stderr here is a line or two, well under a pipe's buffer, so reading stdout first cannot block.
        let bytes = Self.readAll(output[0])
        let errorBytes = Self.readAll(errors[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { return nil }
        }
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), bytes, errorBytes)
    }

    private static func readAll(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: chunk[0..<count])
            } else if count == 0 || errno != EINTR {
                return bytes
            }
        }
    }
}

/// `check --against --json`: the findings as one JSON object.
enum CompatibilityReport {
    /// `{"old":…,"new":…,"breaking":n,"safe":n,"findings":[{"severity":…,"kind":…,…}]}`.
    static func json(_ findings: [CompatibilityFinding], old: String, new: String) -> String {
        let breaking = findings.filter { $0.severity == .breaking }.count
        let items: [JSONValue] = findings.map { finding in
            .object([
                (key: "severity", value: .string(finding.severity.rawValue)),
                (key: "kind", value: .string(finding.kind.rawValue)),
                (key: "direction", value: .string(finding.direction.rawValue)),
                (key: "event", value: .string(finding.event)),
                (key: "breaks", value: .array(finding.breaks.map { .string($0.rawValue) })),
                (key: "file", value: .string(finding.path)),
                (key: "line", value: .int(Int64(finding.location.line))),
                (key: "column", value: .int(Int64(finding.location.column))),
                (key: "message", value: .string(finding.message)),
            ])
        }
        let report: JSONValue = .object([
            (key: "old", value: .string(old)),
            (key: "new", value: .string(new)),
            (key: "breaking", value: .int(Int64(breaking))),
            (key: "safe", value: .int(Int64(findings.count - breaking))),
            (key: "findings", value: .array(items)),
        ])
        return report.jsonString
    }
}
