#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ISO 8601 timestamps as JavaScript's `Date.prototype.toISOString` writes them, e.g. `2026-11-29T19:13:03.120Z`.
enum JSONDateFormatting {
    /// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
    static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// `toISOString` of `date`, rounded to the nearest millisecond; years outside 0…9999 as `±YYYYYY`.
    /// Returns nil for dates JavaScript cannot hold (beyond ±8.64e15 ms).
    static func string(from date: Date) -> String? {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        guard milliseconds.isFinite, milliseconds.magnitude <= 8.64e15 else { return nil }
        let total = Int64(milliseconds)
        var days = total / 86_400_000
        var rest = total % 86_400_000
        if rest < 0 {
            rest += 86_400_000
            days -= 1
        }
        let (year, month, day) = Self.civilFromDays(days)
        let yearText: String
        if year >= 0 && year <= 9999 {
            yearText = Self.pad(year, 4)
        } else {
            yearText = (year < 0 ? "-" : "+") + Self.pad(year.magnitude > Int64.max.magnitude ? 0 : abs(year), 6)
        }
        return yearText + "-" + Self.pad(month, 2) + "-" + Self.pad(day, 2) + "T" + Self.pad(rest / 3_600_000, 2) + ":"
            + Self.pad(rest / 60000 % 60, 2) + ":" + Self.pad(rest / 1000 % 60, 2) + "." + Self.pad(rest % 1000, 3)
            + "Z"
    }

    /// Reads an RFC 3339 / ISO 8601 timestamp: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)` (also a `,`
    /// before the fraction and the `±YYYYYY` extended years `toISOString` writes). Returns nil for anything else.
    ///
    /// Up to three fraction digits are read as whole milliseconds, so what `string(from:)` wrote reads back as the
    /// identical `Date` (no binary rounding of 0.1-steps); more digits keep nanosecond precision.
    static func date(from text: String) -> Date? {
        var bytes = Array(text.utf8)[...]
        func number(_ count: Int) -> Int64? {
            guard bytes.count >= count else { return nil }
            var value: Int64 = 0
            for byte in bytes.prefix(count) {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            bytes = bytes.dropFirst(count)
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard let byte = bytes.first, characters.utf8.contains(byte) else { return false }
            bytes = bytes.dropFirst()
            return true
        }
        let year: Int64
        if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            bytes = bytes.dropFirst()
            guard let extended = number(6) else { return nil }
            year = sign == UInt8(ascii: "-") ? -extended : extended
        } else {
            guard let plain = number(4) else { return nil }
            year = plain
        }
        guard expect("-"), let month = number(2), expect("-"), let day = number(2), expect("Tt "),
            let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= Self.daysInMonth(year: year, month: month), hour < 24,
            minute < 60, second <= 60
        else { return nil }
        var nanoseconds: Int64 = 0
        var fractionDigits = 0
        if expect(".,") {
            while let byte = bytes.first, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                if fractionDigits < 9 {
                    nanoseconds = nanoseconds * 10 + Int64(byte - UInt8(ascii: "0"))
                    fractionDigits += 1
                }
                bytes = bytes.dropFirst()
            }
            guard fractionDigits > 0 else { return nil }
        }
        var offsetSeconds: Int64 = 0
        if expect("Zz") {
        } else if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            bytes = bytes.dropFirst()
            guard let offsetHours = number(2) else { return nil }
            _ = expect(":")
            guard let offsetMinutes = number(2), offsetHours < 24, offsetMinutes < 60 else { return nil }
            offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        guard bytes.isEmpty else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        if fractionDigits <= 3 {
            var milliseconds = nanoseconds
            for _ in fractionDigits..<3 { milliseconds *= 10 }
            return Date(timeIntervalSince1970: Double(seconds * 1000 + milliseconds) / 1000)
        }
        for _ in fractionDigits..<9 { nanoseconds *= 10 }
        return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
    }

    /// The number of days in `month` (1…12) of the proleptic Gregorian `year`.
    static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
