#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Redis Sentinel: the sentinels to ask, in order, for the address of a primary, and how to authenticate to them.
///
/// The user name and password of the ``RedisURL`` are the data nodes' (the primary's); the sentinels' own are
/// here, because deployments usually protect the two differently.
public struct RedisSentinelEndpoint: Sendable, Hashable {
    /// The environment variable read for ``password`` when the URL has no `sentinel_password=`.
    public static let passwordVariable = "SOCKET_REDIS_SENTINEL_PASSWORD"
    /// The port of a sentinel address that names none.
    public static let defaultPort = 26379

    /// A sentinel's address.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        /// The host name or IP address.
        public var host: String
        /// The TCP port.
        public var port: Int

        /// Creates an address.
        public init(host: String, port: Int = RedisSentinelEndpoint.defaultPort) {
            self.host = host
            self.port = port
        }

        /// `host:port` (`[host]:port` for IPv6).
        public var description: String {
            self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        }
    }

    /// The sentinels, asked in this order.
    public var sentinels: [Node]
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    public var primaryName: String
    /// The sentinels' ACL user name, if any.
    public var username: String?
    /// The sentinels' password (`requirepass` in sentinel.conf), if any.
    public var password: String?
    /// Whether, when the URL uses TLS (`rediss+sentinel://`), the sentinels are reached over TLS too, with the same
    /// settings (their `tls-port`); `false` (`sentinel_ssl=false`) reaches them in clear. Without TLS it has no effect.
    public var sentinelsUseTLS: Bool = true

    /// Creates a sentinel endpoint.
    public init(sentinels: [Node], primaryName: String, username: String? = nil, password: String? = nil) {
        self.sentinels = sentinels
        self.primaryName = primaryName
        self.username = username
        self.password = password
    }

    /// The password from `SOCKET_REDIS_SENTINEL_PASSWORD`; `nil` when unset or empty.
    static func passwordFromEnvironment(_ environment: [String: String]?) -> String? {
        let value =
            if let environment { environment[Self.passwordVariable] } else {
                getenv(Self.passwordVariable).map { String(cString: $0) }
            }
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// Parses the authority (`host1:26379,host2`) and the path (`/name[/db]` or python-socketio's `/db/name`) of
    /// a sentinel URL.
    static func parse(
        authority: Substring,
        path: Substring,
        url: String
    ) throws(RedisError) -> (RedisURL.Endpoint, database: Int) {
        var nodes: [Node] = []
        for (index, address) in authority.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            guard !address.isEmpty else {
                throw RedisURL.error("sentinel address \(index + 1) of the comma-separated list is empty", url)
            }
            let (host, port) = try RedisURL.parseHostPort(address, defaultPort: Self.defaultPort, whole: url)
            nodes.append(Node(host: host, port: port))
        }
        let expected = "expected redis+sentinel://host1:26379,host2:26379/primary-name[/db]"
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if segments.last == "" { segments = segments.dropLast() }
        let isNumber = { (text: Substring) in !text.isEmpty && text.allSatisfy(\.isASCII) && Int(text) != nil }
        let nameText: Substring
        var databaseText: Substring?
        switch segments.count {
        case 0:
            throw RedisURL.error("the primary's name is missing: \(expected)", url)
        case 1:
            guard !isNumber(segments.first!) else {
                throw RedisURL.error(
                    "'/\(segments.first!)' is a database, and the primary's name is missing: \(expected) "
                        + "(python-socketio's /db/primary-name also works)",
                    url
                )
            }
            nameText = segments.first!
        case 2:
            let first = segments.first!
            let second = segments.last!
            // python-socketio writes /db/name; we write /name/db. A number first is python-socketio's order.
            if isNumber(first) {
                (databaseText, nameText) = (first, second)
            } else {
                (nameText, databaseText) = (first, second)
            }
        default:
            throw RedisURL.error("too many path segments '\(path)': \(expected)", url)
        }
        guard let name = RedisURL.percentDecode(nameText), !name.isEmpty else {
            throw RedisURL.error("the primary's name is empty or has invalid percent-encoding: \(expected)", url)
        }
        var database = 0
        if let databaseText {
            guard let value = Int(databaseText), value >= 0 else {
                throw RedisURL.error(
                    "database '\(databaseText)' is not a non-negative integer (expected /\(name)/0, /\(name)/1, …)",
                    url
                )
            }
            database = value
        }
        return (.sentinel(RedisSentinelEndpoint(sentinels: nodes, primaryName: name)), database)
    }

    /// The URL text with every password masked.
    func redacted(userInfo: String, database: Int, tls: Bool) -> String {
        let hosts = self.sentinels.map(\.description).joined(separator: ",")
        let scheme = tls ? "rediss+sentinel" : "redis+sentinel"
        var text = "\(scheme)://\(userInfo)\(hosts)/\(RedisURL.percentEncode(self.primaryName))/\(database)"
        var query: [String] = []
        if tls, !self.sentinelsUseTLS { query.append("sentinel_ssl=false") }
        if let username = self.username { query.append("sentinel_username=\(RedisURL.percentEncode(username))") }
        if self.password != nil { query.append("sentinel_password=***") }
        if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        return text
    }
}

extension RedisURL.Endpoint {
    /// Whether this is a sentinel endpoint.
    var isSentinel: Bool {
        if case .sentinel = self { return true }
        return false
    }
}

extension RedisURL {
    /// The URL of the data node at `host:port` that a sentinel named: this URL's user, password and database.
    package func primary(host: String, port: Int) -> RedisURL {
        var url = self
        url.endpoint = .tcp(host: host, port: port)
        return url
    }

    /// The URL of sentinel `node`: the sentinels' user and password, database 0; TLS as the data nodes' unless
    /// `sentinelsUseTLS` is off.
    package func sentinel(_ node: RedisSentinelEndpoint.Node, of endpoint: RedisSentinelEndpoint) -> RedisURL {
        var url = endpoint.sentinelsUseTLS ? self : self.withoutTLS()
        url.endpoint = .tcp(host: node.host, port: node.port)
        url.username = endpoint.username
        url.password = endpoint.password
        url.database = 0
        return url
    }
}
