import Foundation

/// The Python interpreter that runs real python-socketio peers in Swift tests.
public enum PythonPeer {
    /// No Python with the needed modules: says which candidates were tried and how to get one.
    public struct Missing: Error, CustomStringConvertible {
        /// What went wrong and what to do.
        public var description: String
    }

    /// Python source of `plain(value)`: turns what a python-socketio client received into JSON-printable values
    /// (bytes become `{"$bytes": <base64>}`), for peers that print every event as one JSON line. Needs
    /// `import base64` in the script; insert it at the script's top level.
    public static let plainFunction = """
        def plain(value):
            if isinstance(value, bytes):
                return {"$bytes": base64.b64encode(value).decode()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value
        """

    /// The first Python that can import every module of `modules`: `$SOCKET_GATEWAY_PYTHON` (tools/test sets it to
    /// the project's venv), else the project's `.venv/bin/python` (made by tools/test).
    /// - Throws: `Missing`, naming each candidate's import error, when none can.
    public static func interpreter(importing modules: [String]) async throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let candidates: [String?] = [
            ProcessInfo.processInfo.environment["SOCKET_GATEWAY_PYTHON"],
            root.appendingPathComponent(".venv/bin/python").path,
        ]
        var problems: [String] = []
        for candidate in candidates.compactMap({ $0 }) where FileManager.default.isExecutableFile(atPath: candidate) {
            do {
                let probe = try await ChildProcess.run(candidate, ["-c", "import " + modules.joined(separator: ", ")])
                if probe.status == 0 { return candidate }
                problems.append("\(candidate): \(probe.output.split(separator: "\n").last ?? "")")
            } catch let failure as ChildProcess.Failure {
                problems.append("\(candidate): \(failure.reason)")
            }
        }
        throw Missing(
            description: "no Python that can import \(modules.joined(separator: ", ")) ("
                + (problems.isEmpty ? "none found" : problems.joined(separator: "; "))
                + "); run tools/test (it builds .venv from Tests/Interop/requirements.txt), or set "
                + "SOCKET_GATEWAY_PYTHON to a Python with those packages installed"
        )
    }
}
