package import NIOCore
package import NIOHTTP1

/// The reverse proxies whose `X-Forwarded-For` header the server believes: a list of IP address ranges (CIDR).
///
/// A request that arrives from one of them is attributed to the client the header names (the right-most address
/// that is not itself a trusted proxy); a request from anywhere else is attributed to the address it came from,
/// whatever it claims. The default, ``none``, believes no one.
package struct TrustedProxies: Sendable, Hashable {
    /// One range: an address and how many leading bits must match.
    package struct Range: Sendable, Hashable, CustomStringConvertible {
        /// The address bytes (4 for IPv4, 16 for IPv6), masked to ``prefixLength``.
        var bytes: [UInt8]
        var prefixLength: Int

        /// Parses `10.0.0.0/8`, `fd00::/8`, or a single address (`127.0.0.1`, `::1`: every bit must match).
        /// - Returns: nil for anything else (a host name, a prefix longer than the address).
        package init?(parsing text: String) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Self.addressBytes(String(parts[0])) else { return nil }
            let bits = address.count * 8
            var prefixLength = bits
            if parts.count == 2 {
                guard let length = Int(parts[1]), (0...bits).contains(length) else {
                    return nil
                }
                prefixLength = length
            }
            self.bytes = Self.masked(address, prefixLength)
            self.prefixLength = prefixLength
        }

        /// Whether `address` (its bytes) is in the range. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is
        /// matched as the IPv4 address it maps.
        func contains(_ address: [UInt8]) -> Bool {
            let address = Self.unmapped(address)
            guard address.count == self.bytes.count else { return false }
            return Self.masked(address, self.prefixLength) == self.bytes
        }

        package var description: String {
            guard self.bytes.count == 16 else {
                return self.bytes.map(String.init).joined(separator: ".") + "/\(self.prefixLength)"
            }
            let groups = stride(from: 0, to: 16, by: 2).map { index in
                String(UInt16(self.bytes[index]) << 8 | UInt16(self.bytes[index + 1]), radix: 16)
            }
            return groups.joined(separator: ":") + "/\(self.prefixLength)"
        }

        static func addressBytes(_ text: String) -> [UInt8]? {
            guard !text.isEmpty, let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
            return Self.bytes(of: address)
        }

        static func bytes(of address: SocketAddress) -> [UInt8]? {
            switch address {
            // The address bytes sit at the same offsets of `sockaddr_in` (4) and `sockaddr_in6` (8) on Linux and
            // Darwin, in network order.
            case .v4(let v4):
                return withUnsafeBytes(of: v4.address) { Array($0[4..<8]) }
            case .v6(let v6):
                return withUnsafeBytes(of: v6.address) { Array($0[8..<24]) }
            case .unixDomainSocket:
                return nil
            }
        }

        static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
            guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF
            else { return bytes }
            return Array(bytes[12..<16])
        }

        static func masked(_ bytes: [UInt8], _ prefixLength: Int) -> [UInt8] {
            bytes.enumerated().map { index, byte in
                let keep = min(max(prefixLength - index * 8, 0), 8)
                return keep == 8 ? byte : byte & ~(UInt8(0xFF) >> keep)
            }
        }
    }

    /// The ranges, in the order given.
    package var ranges: [Range]

    /// Believes no `X-Forwarded-For` header.
    package static let none = TrustedProxies(ranges: [])

    /// Trusts the given ranges.
    package init(ranges: [Range]) {
        self.ranges = ranges
    }

    /// Parses a list of CIDR ranges or addresses (`["127.0.0.1", "10.0.0.0/8"]`).
    /// - Throws: the first entry that is not one, as given.
    package init(parsing entries: [String]) throws(TrustedProxiesParseError) {
        var ranges: [Range] = []
        for entry in entries {
            guard let range = Range(parsing: entry) else { throw TrustedProxiesParseError(entry: entry) }
            ranges.append(range)
        }
        self.ranges = ranges
    }

    /// Whether a request from `address` comes from a trusted proxy.
    package func contains(_ address: SocketAddress) -> Bool {
        guard !self.ranges.isEmpty, let bytes = Range.bytes(of: address) else { return false }
        return self.ranges.contains { $0.contains(bytes) }
    }

    /// The client a request is attributed to: `peer` unless it is a trusted proxy that sent `X-Forwarded-For`;
    /// then, reading the header's addresses from the right, the first that is not a trusted proxy (or the
    /// left-most, when all are). An entry that is not an IP address ends the walk at the address right of it
    /// (the last one a trusted proxy vouched for).
    /// - Parameters:
    ///   - peer: The address the connection comes from.
    ///   - headers: The request's headers (every `X-Forwarded-For` line, in order).
    package func clientAddress(peer: SocketAddress?, headers: HTTPHeaders) -> SocketAddress? {
        guard let peer, self.contains(peer) else { return peer }
        let entries = headers["X-Forwarded-For"].flatMap { $0.split(separator: ",") }
        var client = peer
        for entry in entries.reversed() {
            let text = Self.trimmed(entry)
            guard let address = try? SocketAddress(ipAddress: text, port: 0) else { break }
            client = address
            if !self.contains(address) { break }
        }
        return client
    }

    private static func trimmed(_ text: Substring) -> String {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        // An IPv6 address may come bracketed, with or without a port (`[2001:db8::1]:4711`).
        if text.first == "[", let close = text.firstIndex(of: "]") {
            text = text[text.index(after: text.startIndex)..<close]
        }
        return String(text)
    }
}

/// An entry of a trusted-proxies list that is neither an IP address nor a CIDR range.
package struct TrustedProxiesParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The entry as given.
    package var entry: String

    package var description: String {
        "'\(self.entry)' is not an IP address or CIDR range (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)"
    }
}
