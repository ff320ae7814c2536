package import NIOCore
import NIOHTTP1

/// Compression of long-polling responses (engine.io's `httpCompression`): a GET's payload of at least
/// ``threshold`` bytes is sent with `Content-Encoding: gzip` or `deflate` when the request's `Accept-Encoding`
/// accepts one (gzip preferred at equal weight) and the compressed body is smaller; anything else is sent as it is.
///
/// Memory: one response is compressed at a time per thread, in one pass, into a buffer of at most zlib's bound for
/// the payload's size (the payload itself is bounded by the session's buffer limit); the compressors (about 256
/// KiB each) are pooled per process, a few per format, not kept per session.
package struct HTTPCompressionConfiguration: Sendable, Equatable {
    /// The smallest payload, in bytes, that is compressed (engine.io's `threshold`, default 1024).
    package var threshold: Int

    /// - Parameter threshold: The smallest payload, in bytes, that is compressed (default 1024).
    package init(threshold: Int = 1024) {
        self.threshold = threshold
    }

    /// What a request allows for its response: nil when its `Accept-Encoding` names no coding (then nothing is
    /// compressed and nothing is parsed).
    func forRequest(_ headers: HTTPHeaders) -> PollingResponseCompression? {
        let acceptEncoding = headers[canonicalForm: "accept-encoding"].map(String.init)
        guard !acceptEncoding.isEmpty else { return nil }
        return PollingResponseCompression(threshold: self.threshold, acceptEncoding: acceptEncoding)
    }
}

/// An HTTP content coding a polling response may be sent with (RFC 9110 §8.4.1).
enum HTTPContentCoding: String, Sendable, Equatable, CaseIterable {
    /// The gzip format (RFC 1952).
    case gzip
    /// The zlib format (RFC 1950): what HTTP calls `deflate`.
    case deflate

    /// The coding to answer `Accept-Encoding` (its header lines, in order) with: the acceptable one of highest
    /// weight, gzip on a tie; nil when neither is acceptable (`q=0`, not listed and no `*`).
    static func negotiate(acceptEncoding lines: [String]) -> HTTPContentCoding? {
        var weights: [String: Double] = [:]
        for line in lines {
            for item in line.split(separator: ",") {
                let parts = item.split(separator: ";")
                guard let first = parts.first else { continue }
                let coding = first.trimmingSpaces().lowercased()
                guard !coding.isEmpty else { continue }
                var weight = 1.0
                var valid = true
                for parameter in parts.dropFirst() {
                    let pair = parameter.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2, pair[0].trimmingSpaces().lowercased() == "q" else { continue }
                    guard let q = Double(pair[1].trimmingSpaces()), q >= 0, q <= 1 else {
                        valid = false
                        break
                    }
                    weight = q
                }
                // An item with a malformed weight is ignored, as if not sent.
                if valid { weights[coding == "x-gzip" ? "gzip" : coding] = weight }
            }
        }
        var best: (coding: HTTPContentCoding, weight: Double)?
        for coding in Self.allCases {
            let weight = weights[coding.rawValue] ?? weights["*"] ?? 0
            if weight > 0, weight > (best?.weight ?? 0) { best = (coding, weight) }
        }
        return best?.coding
    }

    /// The pool of compressors of this coding.
    var pool: WebSocketDeflaterPool {
        switch self {
        case .gzip: .gzip
        case .deflate: .zlib
        }
    }
}

/// The compression one polling request allows: its `Accept-Encoding` against the configured threshold.
package struct PollingResponseCompression: Sendable {
    let threshold: Int
    let acceptEncoding: [String]

    /// `body` as it should be sent, with the headers that say so: compressed (with `Content-Encoding`) when it
    /// reaches the threshold, the request accepts gzip or deflate, and compressing makes it smaller; else as it is.
    /// `Vary: Accept-Encoding` comes with every answer of a server that compresses.
    package func encode(_ body: ByteBuffer) -> (body: ByteBuffer, headers: [(String, String)]) {
        let vary = ("Vary", "Accept-Encoding")
        guard body.readableBytes >= self.threshold, body.readableBytes > 0,
            let coding = HTTPContentCoding.negotiate(acceptEncoding: self.acceptEncoding)
        else { return (body, [vary]) }
        let compressed: ByteBuffer? = coding.pool.withDeflater { deflater in
            guard let deflater else { return nil }
            var output = ByteBuffer()
            deflater.compressWhole(body.readableBytesView, into: &output)
            return output
        }
        guard let compressed, compressed.readableBytes < body.readableBytes else { return (body, [vary]) }
        return (compressed, [("Content-Encoding", coding.rawValue), vary])
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    fileprivate func trimmingSpaces() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
