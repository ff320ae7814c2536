import Foundation
import SocketGatewayRedis
import Testing

@Suite struct RedisURLTests {
    struct Case: Sendable, CustomStringConvertible {
        var text: String
        var endpoint: RedisURL.Endpoint
        var username: String?
        var password: String?
        var database: Int
        var redacted: String
        var description: String { self.text }
    }

    static let valid: [Case] = [
        Case(
            text: "redis://",
            endpoint: .tcp(host: "localhost", port: 6379),
            database: 0,
            redacted: "redis://localhost:6379/0"
        ),
        Case(
            text: "redis://127.0.0.1",
            endpoint: .tcp(host: "127.0.0.1", port: 6379),
            database: 0,
            redacted: "redis://127.0.0.1:6379/0"
        ),
        Case(
            text: "redis://cache:6380/2",
            endpoint: .tcp(host: "cache", port: 6380),
            database: 2,
            redacted: "redis://cache:6380/2"
        ),
        Case(
            text: "redis://:s3cret@cache:6380/1",
            endpoint: .tcp(host: "cache", port: 6380),
            password: "s3cret",
            database: 1,
            redacted: "redis://:***@cache:6380/1"
        ),
        Case(
            text: "redis://alice:p%40ss%3Aw0rd@h/0",
            endpoint: .tcp(host: "h", port: 6379),
            username: "alice",
            password: "p@ss:w0rd",
            database: 0,
            redacted: "redis://alice:***@h:6379/0"
        ),
        Case(
            text: "redis://[::1]:7000/3",
            endpoint: .tcp(host: "::1", port: 7000),
            database: 3,
            redacted: "redis://[::1]:7000/3"
        ),
        Case(text: "  REDIS://h:1/  ", endpoint: .tcp(host: "h", port: 1), database: 0, redacted: "redis://h:1/0"),
        Case(
            text: "redis://h?db=4&password=pw",
            endpoint: .tcp(host: "h", port: 6379),
            password: "pw",
            database: 4,
            redacted: "redis://:***@h:6379/4"
        ),
        Case(
            text: "unix:///var/run/redis/redis.sock",
            endpoint: .unixSocket(path: "/var/run/redis/redis.sock"),
            database: 0,
            redacted: "unix:///var/run/redis/redis.sock"
        ),
        Case(
            text: "unix:///tmp/my%20redis.sock?db=5&password=x%26y",
            endpoint: .unixSocket(path: "/tmp/my redis.sock"),
            password: "x&y",
            database: 5,
            redacted: "unix://:***@/tmp/my redis.sock?db=5"
        ),
    ]

    @Test(arguments: Self.valid)
    func parses(_ item: Case) throws {
        let url = try RedisURL(parsing: item.text)
        #expect(url.endpoint == item.endpoint)
        #expect(url.username == item.username)
        #expect(url.password == item.password)
        #expect(url.database == item.database)
        #expect(url.redacted == item.redacted)
        #expect(url.description == item.redacted)
        if let password = item.password {
            #expect(!url.description.contains(password))
            #expect(!"\(url)".contains(password))
        }
    }

    static let invalid: [(String, String)] = [
        ("localhost:6379", "missing scheme"),
        ("http://h:1/0", "unsupported scheme 'http'"),
        ("redis://h:1/0?ssl_keyfile=/k.pem", "needs TLS: use rediss://"),
        ("redis://h:notaport/0", "port 'notaport'"),
        ("redis://h:70000/0", "port '70000'"),
        ("redis://h:1/x", "database 'x'"),
        ("redis://h:1/-1", "database '-1'"),
        ("redis://h?db=zz", "db='zz'"),
        ("redis://h?timeout=3", "unknown query parameter 'timeout'"),
        ("redis://[::1:6379/0", "closing ']'"),
        ("redis://:p%zzss@h/0", "password has invalid percent-encoding"),
        ("unix://host/tmp/x.sock", "unix socket URL must look like"),
        ("unix://", "unix socket path is missing"),
    ]

    @Test(arguments: Self.invalid)
    func rejects(_ text: String, _ fragment: String) {
        do {
            _ = try RedisURL(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func errorsNeverContainThePassword() {
        let secret = "hunter2secret"
        for text in ["redis://user:\(secret)@h:bad/0", "redis://:\(secret)@h/zz", "unix:///x?password=\(secret)&db=q"] {
            do {
                _ = try RedisURL(parsing: text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(!error.description.contains(secret), "\(error)")
                #expect(error.redactedURL?.contains("***") == true)
            }
        }
    }

    /// A raw '/', '?' or '#' in a password ends the authority early; the password is masked all the same, and the
    /// message says how to write it.
    @Test(arguments: ["se?cret", "se/cret", "se#cret", "s/e?c#r@et"])
    func passwordsWithURLDelimitersAreNeverPrinted(_ password: String) {
        let text = "redis://:\(password)@127.0.0.1:1"
        do {
            let url = try RedisURL(parsing: text)
            Issue.record("\(text) parsed as \(url)")
        } catch {
            for fragment in password.split(whereSeparator: { "/?#@".contains($0) }) where fragment.count > 1 {
                #expect(!error.description.contains(fragment), "\(error)")
            }
            #expect(error.redactedURL == "redis://:***@127.0.0.1:1")
            #expect(error.message.contains("percent-encode"), "\(error.message)")
        }
        let encoded = password.replacingOccurrences(of: "/", with: "%2F").replacingOccurrences(of: "?", with: "%3F")
            .replacingOccurrences(of: "#", with: "%23").replacingOccurrences(of: "@", with: "%40")
        #expect((try? RedisURL(parsing: "redis://:\(encoded)@127.0.0.1:1"))?.password == password)
    }

    @Test func maskingNeverLeavesAPasswordInRawText() {
        #expect(RedisURL.maskPassword(in: "redis://:a/b@h:1/0") == "redis://:***@h:1/0")
        #expect(RedisURL.maskPassword(in: "redis://u:a?b#c@h") == "redis://u:***@h")
        #expect(RedisURL.maskPassword(in: "redis://:x@y@h/0?db=1") == "redis://:***@h/0?db=1")
        #expect(RedisURL.maskPassword(in: "redis://user@h/0") == "redis://user@h/0")
    }
}
