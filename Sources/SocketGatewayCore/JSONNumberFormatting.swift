/// The shortest decimal digits that round-trip a finite, non-zero `Double`, in the shape both JavaScript's
/// Number::toString and Python's float repr start from: `value = 0.d1d2…dk × 10^exponent`.
struct ShortestDecimal {
    /// ASCII digits, no leading or trailing zeros; "0" for zero.
    var digits: [UInt8]
    /// The decimal point position: the value is `0.digits × 10^pointPosition` (JavaScript's `n`, Python's `decpt`).
    var pointPosition: Int
    var isNegative: Bool

    /// Extracts the digits from Swift's own shortest round-trip rendering (`description`), which picks the same
    /// digits as V8 and CPython (the shortest string that reads back to the same double, closest on ties).
    init(_ value: Double) {
        precondition(value.isFinite)
        self.isNegative = value.sign == .minus
        let text = value.magnitude.description.utf8
        var digits: [UInt8] = []
        digits.reserveCapacity(20)
        var pointIndex: Int? = nil
        var exponent = 0
        var exponentNegative = false
        var inExponent = false
        for byte in text {
            if inExponent {
                switch byte {
                case UInt8(ascii: "-"): exponentNegative = true
                case UInt8(ascii: "+"): break
                default: exponent = exponent * 10 + Int(byte &- UInt8(ascii: "0"))
                }
            } else {
                switch byte {
                case UInt8(ascii: "."): pointIndex = digits.count
                case UInt8(ascii: "e"), UInt8(ascii: "E"): inExponent = true
                default: digits.append(byte)
                }
            }
        }
        if exponentNegative { exponent = -exponent }
        var point = (pointIndex ?? digits.count) + exponent
        // Strip leading zeros (each moves the point left) and trailing zeros.
        var leading = 0
        while leading < digits.count - 1 && digits[leading] == UInt8(ascii: "0") {
            leading += 1
        }
        if leading > 0 {
            digits.removeFirst(leading)
            point -= leading
        }
        while digits.count > 1 && digits[digits.count - 1] == UInt8(ascii: "0") {
            digits.removeLast()
        }
        if digits == [UInt8(ascii: "0")] { point = 1 }
        self.digits = digits
        self.pointPosition = point
    }
}

enum JSONNumberFormatting {
    /// Writes `value` as JavaScript's `String(number)` does (JSON.stringify of a finite number).
    /// NaN and ±Infinity are written as `null`, as JSON.stringify does.
    static func writeJavaScript(_ value: Double, to out: inout [UInt8]) {
        guard value.isFinite else {
            out.append(contentsOf: "null".utf8)
            return
        }
        if value == 0 {
            out.append(UInt8(ascii: "0"))  // JavaScript writes -0 as "0".
            return
        }
        let decimal = ShortestDecimal(value)
        let k = decimal.digits.count
        let n = decimal.pointPosition
        if decimal.isNegative { out.append(UInt8(ascii: "-")) }
        if k <= n && n <= 21 {
            out.append(contentsOf: decimal.digits)
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: n - k))
        } else if 0 < n && n <= 21 {
            out.append(contentsOf: decimal.digits[0..<n])
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: decimal.digits[n...])
        } else if -6 < n && n <= 0 {
            out.append(UInt8(ascii: "0"))
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -n))
            out.append(contentsOf: decimal.digits)
        } else {
            out.append(decimal.digits[0])
            if k > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: decimal.digits[1...])
            }
            out.append(UInt8(ascii: "e"))
            let exponent = n - 1
            out.append(exponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            out.append(contentsOf: String(exponent.magnitude).utf8)
        }
    }

    /// Writes `value` as Python's `repr(float)` does (what `json.dumps` writes): `1.0`, `1e+16`, `1.5e-07`,
    /// `NaN`, `Infinity`, `-Infinity`.
    static func writePython(_ value: Double, to out: inout [UInt8]) {
        if value.isNaN {
            out.append(contentsOf: "NaN".utf8)
            return
        }
        if value.isInfinite {
            out.append(contentsOf: (value < 0 ? "-Infinity" : "Infinity").utf8)
            return
        }
        if value == 0 {
            out.append(contentsOf: (value.sign == .minus ? "-0.0" : "0.0").utf8)
            return
        }
        let decimal = ShortestDecimal(value)
        let k = decimal.digits.count
        let decpt = decimal.pointPosition
        if decimal.isNegative { out.append(UInt8(ascii: "-")) }
        if decpt <= -4 || decpt > 16 {
            out.append(decimal.digits[0])
            if k > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: decimal.digits[1...])
            }
            out.append(UInt8(ascii: "e"))
            let exponent = decpt - 1
            out.append(exponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            if exponent.magnitude < 10 { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: String(exponent.magnitude).utf8)
        } else if decpt <= 0 {
            out.append(UInt8(ascii: "0"))
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -decpt))
            out.append(contentsOf: decimal.digits)
        } else if decpt >= k {
            out.append(contentsOf: decimal.digits)
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: decpt - k))
            out.append(UInt8(ascii: "."))
            out.append(UInt8(ascii: "0"))
        } else {
            out.append(contentsOf: decimal.digits[0..<decpt])
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: decimal.digits[decpt...])
        }
    }
}
