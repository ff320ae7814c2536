import NIOHTTP1

/// WebSocket per-message compression (permessage-deflate, RFC 7692) as an endpoint offers it.
///
/// Off unless configured (as socket.io 4's `perMessageDeflate`). When a client offers the extension the server
/// always answers with `server_no_context_takeover` (each message is compressed on its own, so a broadcast is
/// compressed once and the same bytes go to every client that agreed) and `client_no_context_takeover` (the
/// server keeps no inflate window between a client's messages, so an idle connection holds no zlib memory).
package struct WebSocketCompressionConfiguration: Sendable, Equatable {
    /// Messages whose payload is shorter than this many bytes are sent uncompressed (socket.io's `threshold`,
    /// default 1024).
    package var threshold: Int

    /// - Parameter threshold: the smallest payload, in bytes, that is compressed (default 1024).
    package init(threshold: Int = 1024) {
        self.threshold = threshold
    }
}

/// What the server agreed with one client: how it sends and what it accepts.
package struct WebSocketDeflateAgreement: Sendable, Equatable {
    /// Payloads shorter than this are sent uncompressed.
    package var threshold: Int
    /// The client agreed to `server_max_window_bits` (only 15 is accepted), so the answer repeats it.
    var answersServerMaxWindowBits: Bool

    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    var responseHeader: String {
        var value = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        if self.answersServerMaxWindowBits { value += "; server_max_window_bits=15" }
        return value
    }
}

/// The permessage-deflate negotiation (RFC 7692 §5, §7.1), without I/O: a client's offers in, the answer out.
enum WebSocketDeflateNegotiation {
    /// The agreement for an upgrade request, or nil when compression is off or no offer is acceptable (then the
    /// 101 carries no `Sec-WebSocket-Extensions` and the connection is uncompressed).
    static func negotiate(
        _ headers: HTTPHeaders,
        configuration: WebSocketCompressionConfiguration?
    ) -> WebSocketDeflateAgreement? {
        guard let configuration else { return nil }
        return Self.negotiate(offers: headers[canonicalForm: "sec-websocket-extensions"].map(String.init))
            .map { WebSocketDeflateAgreement(threshold: configuration.threshold, answersServerMaxWindowBits: $0) }
    }

    /// Picks the first acceptable permessage-deflate offer among the header values (each a comma-separated list,
    /// in the client's order of preference, §5.1). Returns whether the answer must carry
    /// `server_max_window_bits=15`, or nil when no offer is acceptable.
    ///
    /// An offer is declined (§7) when it has a parameter not defined for offers, a parameter twice, or an invalid
    /// value. It is also declined when it asks for `server_max_window_bits` below 15: the server compresses every
    /// message once, with one window, for all clients. `client_max_window_bits` is accepted at any valid value and
    /// not answered: the client then uses the window it offered, which a 15-bit inflater reads.
    static func negotiate(offers headerValues: [String]) -> Bool? {
        for offer in headerValues.flatMap({ Self.split(Substring($0), separator: ",") }) {
            var parts = Self.split(offer, separator: ";").map(Self.trimmed)
            guard !parts.isEmpty, parts.removeFirst().lowercased() == "permessage-deflate" else { continue }
            if let answersWindowBits = Self.accept(parameters: parts) { return answersWindowBits }
        }
        return nil
    }

    /// Whether the parameters of one permessage-deflate offer are acceptable (nil if not), and if so whether the
    /// answer repeats `server_max_window_bits`.
    private static func accept(parameters: [Substring]) -> Bool? {
        var seen: Set<String> = []
        var answersWindowBits = false
        for parameter in parameters {
            let pieces = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.trimmed(pieces[0]).lowercased()
            guard seen.insert(name).inserted else { return nil }
            var value: Substring? = pieces.count == 2 ? Self.trimmed(pieces[1]) : nil
            if let quoted = value, quoted.count >= 2, quoted.first == "\"", quoted.last == "\"" {
                value = quoted.dropFirst().dropLast()
            }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
            case "client_max_window_bits":
                if let value { guard Self.windowBits(value) != nil else { return nil } }
            case "server_max_window_bits":
                guard let bits = value.flatMap(Self.windowBits), bits == 15 else { return nil }
                answersWindowBits = true
            default:
                return nil
            }
        }
        return answersWindowBits
    }

    /// A window size of 8–15 bits written as 1*DIGIT without a leading zero (§7.1.2.1).
    private static func windowBits(_ value: Substring) -> Int? {
        guard value.first != "0", value.allSatisfy(\.isASCII), let bits = Int(value), (8...15).contains(bits) else {
            return nil
        }
        return bits
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }

    /// Splits on `separator` where it is not inside a quoted string; drops empty pieces.
    private static func split(_ text: Substring, separator: Character) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        var inQuotes = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" {
                inQuotes.toggle()
            } else if character == separator, !inQuotes {
                pieces.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        pieces.append(text[start..<text.endIndex])
        return pieces.filter { !Self.trimmed($0).isEmpty }
    }
}
