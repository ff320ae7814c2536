import NIOCore
import Testing

@testable import SocketGatewayEngineIO

/// Compression of long-polling responses (engine.io's `httpCompression`): the `Accept-Encoding` negotiation, and a
/// real server answering a raw HTTP client with gzip, deflate or plain bodies, read back with zlib's inflate.
@Suite struct HTTPCompressionTests {
    // MARK: negotiation

    @Test(arguments: [
        ("gzip, deflate", HTTPContentCoding.gzip),  // requests, aiohttp
        ("gzip, deflate, br, zstd", .gzip),  // browsers
        ("deflate", .deflate),
        ("br, deflate;q=0.5", .deflate),
        ("deflate;q=0.9, gzip;q=0.5", .deflate),
        ("deflate, gzip", .gzip),  // equal weight: gzip
        ("gzip;q=0, deflate", .deflate),
        ("*", .gzip),
        ("*;q=0.1, gzip;q=0", .deflate),
        ("GZIP", .gzip),
        ("x-gzip", .gzip),
        (" gzip ; q=1.0 ", .gzip),
        ("gzip;q=abc, deflate", .deflate),  // a malformed weight drops its item
        ("gzip;level=1", .gzip),
    ])
    func acceptedCodings(header: String, expected: HTTPContentCoding) {
        #expect(HTTPContentCoding.negotiate(acceptEncoding: [header]) == expected)
    }

    @Test(arguments: ["", "identity", "br", "gzip;q=0, deflate;q=0", "*;q=0", "gzip;q=2", ",", "gzip;q=-1"])
    func declinedCodings(header: String) {
        #expect(HTTPContentCoding.negotiate(acceptEncoding: [header]) == nil)
    }

    @Test func codingsAcrossHeaderLines() {
        #expect(HTTPContentCoding.negotiate(acceptEncoding: ["br", "deflate"]) == .deflate)
        #expect(HTTPContentCoding.negotiate(acceptEncoding: ["gzip;q=0.2", "deflate;q=0.3"]) == .deflate)
        #expect(HTTPContentCoding.negotiate(acceptEncoding: []) == nil)
    }

    @Test func aBodyThatDoesNotShrinkIsSentAsItIs() throws {
        let compression = PollingResponseCompression(threshold: 0, acceptEncoding: ["gzip"])
        // Twenty bytes: gzip's header and trailer alone take eighteen.
        let small = ByteBuffer(string: "4abcdefghijklmnopqrs")
        let (body, headers) = compression.encode(small)
        #expect(body == small)
        #expect(headers.map(\.0) == ["Vary"])
    }

    // MARK: server

    static let path = "/engine.io/?EIO=4&transport=polling"

    static func configuration(_ compression: HTTPCompressionConfiguration?) -> EngineIOConfiguration {
        // A heartbeat that cannot fire mid-test: a ping would join a payload.
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60), cors: .any)
        configuration.httpCompression = compression
        return configuration
    }

    /// A payload that compresses well, as JSON events do.
    static let large = "4" + String(repeating: #"{"cell":"A1","value":42,"by":"ada"},"#, count: 100)

    @Test func largePayloadsAreCompressedAsTheClientAcceptsSmallOnesAndOthersAreNot() async throws {
        let configuration = Self.configuration(HTTPCompressionConfiguration(threshold: 1024))
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let gzip = [("Accept-Encoding", "gzip, deflate")]
                // The handshake is below the threshold: plain.
                let open = try await connection.request("GET", Self.path, headers: gzip)
                #expect(open.header("Content-Encoding") == nil)
                #expect(open.header("Vary") == "Accept-Encoding")
                let sid = try EngineIOServerTests().handshake(open).sid
                let target = "\(Self.path)&sid=\(sid)"

                // gzip: the magic bytes, and zlib's inflate gives back the very payload.
                #expect(try await connection.request("POST", target, body: Self.large).text == "ok")
                let gzipped = try await connection.request("GET", target, headers: gzip)
                #expect(gzipped.status == 200)
                #expect(gzipped.header("Content-Encoding") == "gzip")
                #expect(gzipped.body.getBytes(at: gzipped.body.readerIndex, length: 2) == [0x1F, 0x8B])
                #expect(gzipped.body.readableBytes < Self.large.utf8.count / 4)
                let gunzip = try #require(WebSocketInflater(format: .gzip))
                #expect(String(buffer: try gunzip.inflate(gzipped.body, limit: 1 << 20).get()) == Self.large)

                // deflate (the zlib format) when that is what the client prefers.
                #expect(try await connection.request("POST", target, body: Self.large).text == "ok")
                let deflated = try await connection.request("GET", target, headers: [("Accept-Encoding", "deflate")])
                #expect(deflated.header("Content-Encoding") == "deflate")
                let inflater = try #require(WebSocketInflater(format: .zlib))
                #expect(String(buffer: try inflater.inflate(deflated.body, limit: 1 << 20).get()) == Self.large)

                // No Accept-Encoding, or one without gzip or deflate: plain.
                for headers in [[], [("Accept-Encoding", "br")], [("Accept-Encoding", "gzip;q=0")]] {
                    #expect(try await connection.request("POST", target, body: Self.large).text == "ok")
                    let plain = try await connection.request("GET", target, headers: headers)
                    #expect(plain.header("Content-Encoding") == nil, "\(headers)")
                    #expect(plain.text == Self.large)
                }

                // Below the threshold: plain, even when gzip is accepted.
                #expect(try await connection.request("POST", target, body: "4small").text == "ok")
                let small = try await connection.request("GET", target, headers: gzip)
                #expect(small.header("Content-Encoding") == nil)
                #expect(small.text == "4small")

                // A POST's `ok` is never compressed.
                let post = try await connection.request("POST", target, body: Self.large, headers: gzip)
                #expect(post.header("Content-Encoding") == nil)
                #expect(post.text == "ok")
            }
        }
    }

    @Test func offByDefault() async throws {
        #expect(EngineIOConfiguration().httpCompression == nil)
        try await EngineIOServerTests().withServer(configuration: Self.configuration(nil)) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let gzip = [("Accept-Encoding", "gzip")]
                let sid = try EngineIOServerTests().handshake(try await connection.request("GET", Self.path)).sid
                let target = "\(Self.path)&sid=\(sid)"
                #expect(try await connection.request("POST", target, body: Self.large).text == "ok")
                let plain = try await connection.request("GET", target, headers: gzip)
                #expect(plain.header("Content-Encoding") == nil)
                #expect(plain.header("Vary") == nil)
                #expect(plain.text == Self.large)
            }
        }
    }
}
