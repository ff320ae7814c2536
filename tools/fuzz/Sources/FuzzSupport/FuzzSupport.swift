import CFuzzerDriver
public import SocketGatewayCoreForFuzzing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The body of a fuzz target: one input, 0 to keep going (libFuzzer's `LLVMFuzzerTestOneInput` signature).
public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Hands the process's arguments to libFuzzer and runs `target` on every input; exits with libFuzzer's status.
///
/// SwiftPM on Linux renames an executable's `main` (`<module>_main`, aliased by the linker), so libFuzzer's own
/// `main` is never linked and main.swift calls libFuzzer's driver instead; `-parse-as-library` is not needed. Each
/// target's function is also exported as `LLVMFuzzerTestOneInput`, for drivers that look it up by name.
public func runLibFuzzer(_ target: FuzzTarget) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv, target)
    exit(status)
}

/// The input as a buffer pointer (libFuzzer may pass a null pointer for an empty input).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    UnsafeBufferPointer(start: size == 0 ? nil : data, count: size)
}

/// Stops the fuzzer with a message naming the property that failed (libFuzzer reports the trap and saves the input).
public func fuzzFailure(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never
{
    fatalError(message(), file: file, line: line)
}

/// JSON values that mean the same once written as JavaScript's `JSON.stringify` writes them: numbers compare by
/// value whatever their kind (`1.0` is written `1` and parses back as an integer, `-0.0` as `0`), a non-finite
/// double equals `null` (which is how it is written), everything else as `==` does.
public func javaScriptEquivalent(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
    switch (lhs, rhs) {
    case (.double(let a), .null) where !a.isFinite, (.null, .double(let a)) where !a.isFinite:
        return true
    case (.int(let a), .double(let b)), (.double(let b), .int(let a)):
        // `1114444444444444416.0` is written with its shortest digits, `1114444444444444400`, which parse as that
        // integer: the same number once read as a double, which is all JavaScript's form promises.
        return b.isFinite && Double(a) == b
    case (.double(let a), .double(let b)):
        return a == b || (!a.isFinite && !b.isFinite) || (a.isNaN && b.isNaN)
    case (.array(let a), .array(let b)):
        return a.count == b.count && zip(a, b).allSatisfy { javaScriptEquivalent($0, $1) }
    case (.object(let a), .object(let b)):
        return a.count == b.count
            && zip(a, b).allSatisfy { $0.key == $1.key && javaScriptEquivalent($0.value, $1.value) }
    default:
        return lhs == rhs
    }
}

/// Whether a value holds a NaN or infinite double anywhere (the strict parser reads `1e999` as infinity, which
/// Python's form writes `Infinity` and JavaScript's `null`).
public func containsNonFinite(_ value: JSONValue) -> Bool {
    switch value {
    case .double(let d): !d.isFinite
    case .array(let elements): elements.contains(where: containsNonFinite)
    case .object(let pairs): pairs.contains(where: { containsNonFinite($0.value) })
    case .null, .bool, .int, .string, .binary: false
    }
}
