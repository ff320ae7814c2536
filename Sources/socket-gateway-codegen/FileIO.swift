#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading and writing whole files with POSIX calls, writing only when the bytes change (so the build system
/// does not see a regenerated file as new and recompile its target).
enum FileIO {
    enum WriteOutcome: Equatable {
        case unchanged
        case written
        case failed(String)
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count {
                if ferror(file) != 0 { return nil }
                return bytes
            }
        }
    }

    static func lastError() -> String {
        String(cString: strerror(errno))
    }

    /// Writes `bytes` to `path` unless the file already holds exactly these bytes; creates parent directories.
    /// The new contents go to a temporary file renamed over the old one, so readers never see half a file.
    static func replaceContents(of path: String, with bytes: [UInt8]) -> WriteOutcome {
        if let existing = Self.read(path), existing == bytes { return .unchanged }
        Self.createParentDirectories(of: path)
        let temporary = "\(path).tmp-\(getpid())"
        guard let file = fopen(temporary, "wb") else { return .failed(Self.lastError()) }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let closed = fclose(file)
        guard written == bytes.count, closed == 0 else {
            let reason = Self.lastError()
            unlink(temporary)
            return .failed(reason)
        }
        guard rename(temporary, path) == 0 else {
            let reason = Self.lastError()
            unlink(temporary)
            return .failed(reason)
        }
        return .written
    }

    private static func createParentDirectories(of path: String) {
        var components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        guard !components.isEmpty else { return }
        var current = path.hasPrefix("/") ? "" : "."
        if components.first == "" { components = components.dropFirst() }
        for component in components where !component.isEmpty {
            current += "/\(component)"
            mkdir(current, 0o755)
        }
    }
}
