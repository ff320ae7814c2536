import FuzzSupport
import NIOCore
import SocketGatewayCoreForFuzzing

/// One input is one JSON text. Properties: parsing never traps (nor recurses past `maxDepth`); an error's offset
/// is inside the input; whatever parses is written by both writers to text that parses back to the same value:
/// exactly for Python's form (which keeps `1.0` a double), up to number kind for JavaScript's (which writes `1.0`
/// as `1` and non-finite numbers as `null`), and JavaScript's form is a fixpoint (written again, the same bytes).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let value: JSONValue
    do {
        value = try JSONValue.parse(ByteBuffer(bytes: input), maxDepth: 64)
    } catch {
        guard error.offset >= 0 && error.offset <= input.count else {
            fuzzFailure("error offset \(error.offset) outside an input of \(input.count) bytes: \(error)")
        }
        return 0
    }
    // The [UInt8] entry point agrees with the ByteBuffer one.
    guard (try? JSONValue.parse(Array(input), maxDepth: 64)) == value else {
        fuzzFailure("parse([UInt8]) and parse(ByteBuffer) disagree on \(value)")
    }

    let javaScript = value.jsonString
    let fromJavaScript: JSONValue
    do {
        fromJavaScript = try JSONValue.parse(javaScript, maxDepth: 64)
    } catch {
        fuzzFailure("JavaScript form \(javaScript) of an accepted value does not parse: \(error)")
    }
    guard javaScriptEquivalent(value, fromJavaScript) else {
        fuzzFailure("\(value) written as \(javaScript) parses back as \(fromJavaScript)")
    }
    guard fromJavaScript.jsonString == javaScript else {
        fuzzFailure("JavaScript form is not a fixpoint: \(javaScript) then \(fromJavaScript.jsonString)")
    }

    let python = value.pythonJSONString
    guard python.utf8.allSatisfy({ $0 < 0x80 }) else { fuzzFailure("Python form is not ASCII: \(python)") }
    // Python writes NaN and Infinity, which strict JSON (and this parser) refuses.
    if containsNonFinite(value) { return 0 }
    let fromPython: JSONValue
    do {
        fromPython = try JSONValue.parse(python, maxDepth: 64)
    } catch {
        fuzzFailure("Python form \(python) of an accepted value does not parse: \(error)")
    }
    guard fromPython == value else { fuzzFailure("\(value) written as \(python) parses back as \(fromPython)") }
    guard fromPython.pythonJSONString == python else { fuzzFailure("Python form is not a fixpoint: \(python)") }
    return 0
}
