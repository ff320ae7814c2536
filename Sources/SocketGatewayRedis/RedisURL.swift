package import Logging

/// Where and how to reach Redis, parsed from a URL.
///
/// Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]` (host may be `[::1]`; port defaults to 6379, db to 0)
/// - `rediss://…` (TLS, same form), with redis-py's TLS parameters: `ssl_ca_certs=<PEM file>`,
///   `ssl_certfile=<PEM>&ssl_keyfile=<PEM>`, `ssl_cert_reqs=none|optional|required`, `ssl_check_hostname=false`,
///   and `ssl_server_name=<name>` (``RedisTLSConfiguration``); `valkey://` and `valkeys://` are the same
/// - `unix:///path/to/redis.sock[?db=N][&password=P][&username=U]`
/// - `redis+sentinel://[[user]:password@]host1[:26379][,host2[:26379]…]/primary-name[/db]` (or `valkey+sentinel://`;
///   python-socketio's order `/db/primary-name` is accepted too): ask these sentinels for the primary's address.
///   The user and password are the data nodes'; the sentinels' own come from `sentinel_password=` and
///   `sentinel_username=` query parameters, or the `SOCKET_REDIS_SENTINEL_PASSWORD` environment variable.
/// - Redis Cluster: `redis+cluster://[[user]:password@]host:port[,host:port…]` (also `redis-cluster://`), or
///   `redis://host:port?cluster=true[&addr=host:port…]` (the seed nodes; the database must be 0)
/// - TLS for Sentinel and Cluster: `rediss+sentinel://` (also `valkeys+sentinel://`, and Lettuce's
///   `rediss-sentinel://`), `rediss+cluster://` (also `rediss-cluster://`), or go-redis's and redis-py's
///   `rediss://host:port?cluster=true[&addr=…]`. The TLS settings apply to every node connection (the primary a
///   sentinel names, every cluster node). The sentinels are reached over TLS too (sentinel.conf's `tls-port`);
///   `sentinel_ssl=false` reaches them in clear (redis-py's default, where `sentinel_kwargs` must ask for TLS).
///   A node found by discovery is usually an IP address: its certificate must hold that address (IP SAN), unless
///   `ssl_server_name` (`SOCKET_REDIS_TLS_SERVER_NAME`) names the host every certificate is checked against.
///
/// User name, password and path are percent-decoded. `description` masks the password, so the value can be
/// logged as is.
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    /// The address of the server.
    public enum Endpoint: Sendable, Hashable {
        /// A TCP host and port.
        case tcp(host: String, port: Int)
        /// A unix domain socket path.
        case unixSocket(path: String)
        /// The primary that these sentinels name (see ``RedisSentinelEndpoint``).
        case sentinel(RedisSentinelEndpoint)
        /// A Redis Cluster, reached through any of these seed nodes (at least one).
        case cluster(seeds: [RedisClusterAddress])
    }

    /// The address of the server.
    public var endpoint: Endpoint
    /// The ACL user name for `AUTH user password`, if any.
    public var username: String?
    /// The password for AUTH, if any.
    public var password: String?
    /// The database index to SELECT (0 needs no SELECT).
    public var database: Int
    /// The TLS settings with their files loaded (`rediss://`); `nil` for plain TCP and unix sockets.
    package private(set) var tlsContext: RedisTLSContext?

    /// The TLS settings (`rediss://`); `nil` for plain TCP and unix sockets. Set with ``applyingTLS(_:)``.
    public var tls: RedisTLSConfiguration? { self.tlsContext?.configuration }

    /// Creates a URL from its parts.
    public init(endpoint: Endpoint, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// This URL with TLS on (`configuration`, its PEM files read now) or off (`nil`).
    /// - Throws: `RedisError` (`.invalidTLSConfiguration`) naming the setting and file at fault, or for a unix
    ///   socket URL (TLS is for TCP).
    public func applyingTLS(_ configuration: RedisTLSConfiguration?) throws(RedisError) -> RedisURL {
        var url = self
        guard let configuration else {
            url.tlsContext = nil
            return url
        }
        if case .unixSocket = self.endpoint {
            throw RedisTLSContext.error("TLS is for TCP connections (rediss://host:port), not unix sockets")
        }
        do throws(RedisError) {
            url.tlsContext = try RedisTLSContext(configuration)
        } catch {
            var error = error
            error.redactedURL = self.redacted
            throw error
        }
        return url
    }

    /// This URL with TLS settings from elsewhere (the environment, code) added to its own: what the URL's
    /// `ssl_…` parameters leave unset is taken from `settings`.
    /// - Parameter settings: `nil` returns the URL as it is.
    /// - Throws: `RedisError` (`.invalidTLSConfiguration`) when the URL is not `rediss://` (settings for TLS
    ///   with a plain URL are a mistake, not a reason to connect in clear), or a file cannot be used.
    public func applyingTLSSettings(_ settings: RedisTLSConfiguration?) throws(RedisError) -> RedisURL {
        guard let settings else { return self }
        guard let own = self.tls else {
            var error = RedisTLSContext.error(
                "TLS settings (SOCKET_REDIS_TLS_…) are given but the URL is not rediss://; use rediss://host:port "
                    + "for TLS, or unset them"
            )
            error.redactedURL = self.redacted
            throw error
        }
        return try self.applyingTLS(own.filling(from: settings))
    }

    /// This URL without TLS (a sentinel reached in clear while its data nodes use TLS).
    package func withoutTLS() -> RedisURL {
        var url = self
        url.tlsContext = nil
        return url
    }

    /// Logs, once per call, that the server's certificate is not (fully) checked, when the TLS settings say so.
    package func warnIfTLSVerificationRelaxed(_ logger: Logger) {
        guard let tls = self.tls, tls.verification != .full else { return }
        let what =
            tls.verification == .none
            ? "any certificate is accepted (ssl_cert_reqs=none): the connection is encrypted but the server is "
                + "not authenticated"
            : "the server's name is not checked against its certificate (ssl_check_hostname=false)"
        logger.warning("Redis TLS verification relaxed: \(what)", metadata: ["redis": "\(self.redacted)"])
    }

    /// Parses a Redis URL.
    /// - Parameters:
    ///   - string: The URL, e.g. `redis://:secret@10.0.0.5:6380/2`.
    ///   - environment: Where a sentinel URL without `sentinel_password=` finds `SOCKET_REDIS_SENTINEL_PASSWORD`;
    ///     `nil` reads the process environment.
    /// - Throws: `RedisError` with code `.invalidURL`, whose message names the part that is wrong; the message
    ///   never contains the password.
    public init(parsing string: String, environment: [String: String]? = nil) throws(RedisError) {
        let trimmed = string.trimmingWhitespace()
        guard let schemeEnd = trimmed.firstRange(of: "://") else {
            throw Self.error("missing scheme: expected redis://host:port/db or unix:///path/to/redis.sock", trimmed)
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(trimmed[schemeEnd.upperBound...])

        // Query string.
        var query: [(String, String)] = []
        if let questionMark = rest.firstIndex(of: "?") {
            let queryText = rest[rest.index(after: questionMark)...]
            rest = rest[..<questionMark]
            for pair in queryText.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(parts[0])
                guard let value = Self.percentDecode(parts.count > 1 ? parts[1] : "") else {
                    throw Self.error("query parameter '\(key)' has invalid percent-encoding", trimmed)
                }
                query.append((key, value))
            }
        }
        if let hash = rest.firstIndex(of: "#") {
            rest = rest[..<hash]
        }

        // User info: everything before the last '@' (a password may contain '@' only when percent-encoded,
        // but the last '@' rule also accepts a raw one).
        var username: String?
        var password: String?
        let authorityEnd =
            scheme == "unix" ? (rest.firstIndex(of: "/") ?? rest.endIndex) : (rest.firstIndex(of: "/") ?? rest.endIndex)
        var authority = rest[..<authorityEnd]
        let pathPart = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                guard let user = Self.percentDecode(userInfo[..<colon]) else {
                    throw Self.error("user name has invalid percent-encoding", trimmed)
                }
                guard let pass = Self.percentDecode(userInfo[userInfo.index(after: colon)...]) else {
                    throw Self.error("password has invalid percent-encoding", trimmed)
                }
                username = user.isEmpty ? nil : user
                password = pass.isEmpty ? nil : pass
            } else {
                guard let user = Self.percentDecode(userInfo) else {
                    throw Self.error("user name has invalid percent-encoding", trimmed)
                }
                username = user.isEmpty ? nil : user
            }
        }

        var database = 0
        var endpoint: Endpoint
        switch scheme {
        case "redis", "rediss", "valkey", "valkeys":
            let (host, port) = try Self.parseHostPort(authority, whole: trimmed)
            endpoint = .tcp(host: host, port: port)
            var path = pathPart.dropFirst()
            if path.hasSuffix("/") { path = path.dropLast() }
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else {
                    throw Self.error("database '\(path)' is not a non-negative integer (expected /0, /1, …)", trimmed)
                }
                database = db
            }
        case "unix":
            guard authority.isEmpty else {
                throw Self.error(
                    "unix socket URL must look like unix:///path/to/redis.sock (found host '\(authority)')",
                    trimmed
                )
            }
            guard let path = Self.percentDecode(pathPart), path.count > 1 else {
                throw Self.error("unix socket path is missing or has invalid percent-encoding", trimmed)
            }
            endpoint = .unixSocket(path: path)
        case "redis+sentinel", "valkey+sentinel", "rediss+sentinel", "valkeys+sentinel", "rediss-sentinel":
            (endpoint, database) = try RedisSentinelEndpoint.parse(authority: authority, path: pathPart, url: trimmed)
        case "redis+cluster", "redis-cluster", "rediss+cluster", "rediss-cluster":
            endpoint = try Self.parseClusterSeeds(authority, whole: trimmed)
            let path = pathPart.drop { $0 == "/" }
            if !path.isEmpty && path != "0" {
                throw Self.error("a Redis Cluster has only database 0 (found '/\(path)')", trimmed)
            }
        default:
            throw Self.error("unsupported scheme '\(scheme)'; use redis://, rediss:// (TLS) or unix://", trimmed)
        }
        let usesTLS = [
            "rediss", "valkeys", "rediss+sentinel", "valkeys+sentinel", "rediss-sentinel", "rediss+cluster",
            "rediss-cluster",
        ].contains(scheme)
        var tls = RedisTLSConfiguration()

        var clusterQuery = false
        var extraSeeds: [RedisClusterAddress] = []
        for (key, value) in query {
            switch key {
            case "cluster":
                guard ["true", "1", "yes", "false", "0", "no"].contains(value.lowercased()) else {
                    throw Self.error("query parameter cluster='\(value)' is not true or false", trimmed)
                }
                clusterQuery = ["true", "1", "yes"].contains(value.lowercased())
            case "addr":
                guard case .cluster(let seeds) = try Self.parseClusterSeeds(Substring(value), whole: trimmed) else {
                    continue
                }
                extraSeeds += seeds

            case "db":
                guard let db = Int(value), db >= 0 else {
                    throw Self.error("query parameter db='\(value)' is not a non-negative integer", trimmed)
                }
                database = db
            case "password":
                password = value.isEmpty ? nil : value
            case "username", "user":
                username = value.isEmpty ? nil : value
            case "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname",
                "ssl_server_name":
                guard usesTLS else {
                    throw Self.error(
                        "query parameter '\(key)' needs TLS: use rediss:// instead of \(scheme)://",
                        trimmed
                    )
                }
                try Self.applyTLSParameter(key, value, to: &tls, whole: trimmed)
            case "sentinel_password", "sentinel_username", "sentinel_ssl":
                guard case .sentinel(var sentinel) = endpoint else {
                    throw Self.error("query parameter '\(key)' needs a redis+sentinel:// URL", trimmed)
                }
                if key == "sentinel_ssl" {
                    guard usesTLS else {
                        throw Self.error("query parameter 'sentinel_ssl' needs rediss+sentinel:// (TLS)", trimmed)
                    }
                    switch value.lowercased() {
                    case "true", "1", "yes": sentinel.sentinelsUseTLS = true
                    case "false", "0", "no": sentinel.sentinelsUseTLS = false
                    default: throw Self.error("query parameter sentinel_ssl='\(value)' is not true or false", trimmed)
                    }
                } else if key == "sentinel_password" {
                    sentinel.password = value.isEmpty ? nil : value
                } else {
                    sentinel.username = value.isEmpty ? nil : value
                }
                endpoint = .sentinel(sentinel)
            default:
                let sentinelKeys = endpoint.isSentinel ? ", sentinel_password, sentinel_username, sentinel_ssl" : ""
                let hint =
                    key.hasPrefix("ssl_")
                    ? " (TLS parameters supported: ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, "
                        + "ssl_check_hostname, ssl_server_name)"
                    : " (supported: db, password, username\(sentinelKeys), cluster, addr, and ssl_… with rediss://)"
                throw Self.error("unknown query parameter '\(key)'\(hint)", trimmed)
            }
        }
        if case .sentinel(var sentinel) = endpoint, sentinel.password == nil,
            !query.contains(where: { $0.0 == "sentinel_password" })
        {
            sentinel.password = RedisSentinelEndpoint.passwordFromEnvironment(environment)
            endpoint = .sentinel(sentinel)
        }
        if clusterQuery || !extraSeeds.isEmpty {
            switch endpoint {
            case .tcp(let host, let port):
                guard clusterQuery else { throw Self.error("addr= needs cluster=true", trimmed) }
                endpoint = .cluster(seeds: [RedisClusterAddress(host: host, port: port)] + extraSeeds)
            case .cluster(let seeds):
                endpoint = .cluster(seeds: seeds + extraSeeds)
            case .unixSocket, .sentinel:
                throw Self.error("cluster=true and addr= need TCP seed nodes, not a unix socket or sentinels", trimmed)
            }
        }
        if case .cluster = endpoint, database != 0 {
            throw Self.error("a Redis Cluster has only database 0 (found \(database))", trimmed)
        }

        self.init(endpoint: endpoint, username: username, password: password, database: database)
        if usesTLS { self = try self.applyingTLS(tls) }
    }

    /// One of redis-py's TLS query parameters (`ssl_…`), or our `ssl_server_name`.
    private static func applyTLSParameter(
        _ key: String,
        _ value: String,
        to tls: inout RedisTLSConfiguration,
        whole: String
    ) throws(RedisError) {
        switch key {
        case "ssl_ca_certs": tls.caFile = value.isEmpty ? nil : value
        case "ssl_certfile": tls.certificateFile = value.isEmpty ? nil : value
        case "ssl_keyfile": tls.keyFile = value.isEmpty ? nil : value
        case "ssl_server_name": tls.serverName = value.isEmpty ? nil : value
        case "ssl_cert_reqs":
            switch value.lowercased() {
            // A client that asks for an optional certificate checks the one it gets, as Python's ssl does.
            case "required", "optional": if tls.verification == .none { tls.verification = .full }
            case "none": tls.verification = .none
            default:
                throw Self.error("ssl_cert_reqs='\(value)' is not one of required, optional, none", whole)
            }
        default:  // ssl_check_hostname, with redis-py's reading of booleans
            let isFalse = ["0", "F", "FALSE", "N", "NO"].contains(value.uppercased())
            if isFalse, tls.verification == .full { tls.verification = .noHostname }
            if !isFalse, !value.isEmpty, tls.verification == .noHostname { tls.verification = .full }
        }
    }

    /// The URL with the password replaced by `***`; safe to log.
    public var redacted: String {
        var userInfo = ""
        if self.username != nil || self.password != nil {
            userInfo = Self.percentEncode(self.username ?? "")
            if self.password != nil { userInfo += ":***" }
            userInfo += "@"
        }
        switch self.endpoint {
        case .tcp(let host, let port):
            let hostText = host.contains(":") ? "[\(host)]" : host
            let scheme = self.tlsContext == nil ? "redis" : "rediss"
            return "\(scheme)://\(userInfo)\(hostText):\(port)/\(self.database)"
        case .unixSocket(let path):
            var text = "unix://\(userInfo)\(path)"
            if self.database != 0 { text += "?db=\(self.database)" }
            return text
        case .sentinel(let sentinel):
            return sentinel.redacted(userInfo: userInfo, database: self.database, tls: self.tlsContext != nil)
        case .cluster(let seeds):
            let scheme = self.tlsContext == nil ? "redis+cluster" : "rediss+cluster"
            return "\(scheme)://\(userInfo)" + seeds.map(\.description).joined(separator: ",")
        }
    }

    /// Same as `redacted`: the password never appears.
    public var description: String { self.redacted }

    static func parseHostPort(
        _ authority: Substring,
        defaultPort: Int = 6379,
        whole: String
    ) throws(RedisError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw Self.error("IPv6 host is missing its closing ']'", whole)
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw Self.error("unexpected text after IPv6 host: '\(after)'", whole)
                }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        if host.isEmpty { host = "localhost" }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw Self.error("port '\(portText)' is not a number between 1 and 65535", whole)
            }
            port = value
        }
        return (String(host), port)
    }

    /// `host:port[,host:port…]`, each parsed as a `redis://` authority.
    private static func parseClusterSeeds(_ authority: Substring, whole: String) throws(RedisError) -> Endpoint {
        var seeds: [RedisClusterAddress] = []
        for part in authority.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw Self.error("empty seed node in the list '\(authority)'", whole) }
            let (host, port) = try Self.parseHostPort(part, whole: whole)
            seeds.append(RedisClusterAddress(host: host, port: port))
        }
        guard !seeds.isEmpty else { throw Self.error("a Redis Cluster URL needs at least one host:port", whole) }
        return .cluster(seeds: seeds)
    }

    static func error(_ message: String, _ url: String) -> RedisError {
        var message = message
        if let schemeEnd = url.firstRange(of: "://") {
            let afterScheme = url[schemeEnd.upperBound...]
            let authorityEnd = afterScheme.firstIndex(where: { "/?#".contains($0) }) ?? afterScheme.endIndex
            if afterScheme[authorityEnd...].contains("@") {
                // A raw '/', '?' or '#' in the password cut the URL early: the specific message would quote a piece
                // of the password as a host, port or database.
                message =
                    "cannot tell the password from the host: if the password contains '/', '?', '#' or '@', "
                    + "percent-encode them (%2F %3F %23 %40)"
            }
        }
        return RedisError(
            code: .invalidURL,
            message: "invalid Redis URL: \(message)",
            redactedURL: Self.maskPassword(in: url)
        )
    }

    /// Masks whatever sits between `user:` and the last `@`, and any `password=` query value, in raw URL text.
    ///
    /// The last `@` of the whole text, not of the authority: a password holding a raw `/`, `?` or `#` ends the
    /// authority early for a parser, and must still never be printed. A query value holding `@` is then masked
    /// too, which errs on the safe side.
    package static func maskPassword(in url: String) -> String {
        var text = url
        if let schemeEnd = text.firstRange(of: "://") {
            let afterScheme = text[schemeEnd.upperBound...]
            if let at = afterScheme.lastIndex(of: "@"), let colon = afterScheme[..<at].firstIndex(of: ":") {
                text.replaceSubrange(text.index(after: colon)..<at, with: "***")
            }
        }
        // Every `password=` value (`sentinel_password=` too).
        var searchFrom = 0
        while let range = text.dropFirst(searchFrom).firstRange(of: "password=") {
            let valueOffset = text.distance(from: text.startIndex, to: range.upperBound)
            let end = text[range.upperBound...].firstIndex(of: "&") ?? text.endIndex
            text.replaceSubrange(range.upperBound..<end, with: "***")
            searchFrom = valueOffset + 3
        }
        return text
    }

    static func percentDecode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Self.hexValue),
                    let low = iterator.next().flatMap(Self.hexValue)
                else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static func percentEncode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                result += "%"
                result.unicodeScalars.append(hex[Int(byte >> 4)])
                result.unicodeScalars.append(hex[Int(byte & 0xF)])
            }
        }
        return result
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
