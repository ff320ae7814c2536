/// Where and how to reach Redis, parsed from a URL.
///
/// Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]` (host may be `[::1]`; port defaults to 6379, db to 0)
/// - `unix:///path/to/redis.sock[?db=N][&password=P][&username=U]`
/// - Redis Cluster: `redis+cluster://[[user]:password@]host:port[,host:port…]` (also `redis-cluster://`), or
///   `redis://host:port?cluster=true[&addr=host:port…]` (the seed nodes; the database must be 0)
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

    /// Creates a URL from its parts.
    public init(endpoint: Endpoint, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a Redis URL.
    /// - Parameter string: The URL, e.g. `redis://:secret@10.0.0.5:6380/2`.
    /// - Throws: `RedisError` with code `.invalidURL`, whose message names the part that is wrong; the message
    ///   never contains the password.
    public init(parsing string: String) throws(RedisError) {
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
        case "redis":
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
        case "redis+cluster", "redis-cluster":
            endpoint = try Self.parseClusterSeeds(authority, whole: trimmed)
            let path = pathPart.drop { $0 == "/" }
            if !path.isEmpty && path != "0" {
                throw Self.error("a Redis Cluster has only database 0 (found '/\(path)')", trimmed)
            }
        case "rediss", "valkeys":
            throw Self.error("scheme '\(scheme)' (TLS) is not supported; use redis:// or unix://", trimmed)
        default:
            throw Self.error("unsupported scheme '\(scheme)'; use redis:// or unix://", trimmed)
        }

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
            default:
                throw Self.error(
                    "unknown query parameter '\(key)' (supported: db, password, username, cluster, addr)",
                    trimmed
                )
            }
        }
        if clusterQuery || !extraSeeds.isEmpty {
            switch endpoint {
            case .tcp(let host, let port):
                guard clusterQuery else { throw Self.error("addr= needs cluster=true", trimmed) }
                endpoint = .cluster(seeds: [RedisClusterAddress(host: host, port: port)] + extraSeeds)
            case .cluster(let seeds):
                endpoint = .cluster(seeds: seeds + extraSeeds)
            case .unixSocket:
                throw Self.error("cluster=true and addr= need TCP seed nodes, not a unix socket", trimmed)
            }
        }
        if case .cluster = endpoint, database != 0 {
            throw Self.error("a Redis Cluster has only database 0 (found \(database))", trimmed)
        }

        self.init(endpoint: endpoint, username: username, password: password, database: database)
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
            return "redis://\(userInfo)\(hostText):\(port)/\(self.database)"
        case .unixSocket(let path):
            var text = "unix://\(userInfo)\(path)"
            if self.database != 0 { text += "?db=\(self.database)" }
            return text
        case .cluster(let seeds):
            return "redis+cluster://\(userInfo)" + seeds.map(\.description).joined(separator: ",")
        }
    }

    /// Same as `redacted`: the password never appears.
    public var description: String { self.redacted }

    private static func parseHostPort(_ authority: Substring, whole: String) throws(RedisError) -> (String, Int) {
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
        var port = 6379
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

    private static func error(_ message: String, _ url: String) -> RedisError {
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
        if let range = text.firstRange(of: "password=") {
            let end = text[range.upperBound...].firstIndex(of: "&") ?? text.endIndex
            text.replaceSubrange(range.upperBound..<end, with: "***")
        }
        return text
    }

    private static func percentDecode(_ text: Substring) -> String? {
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

    private static func percentEncode(_ text: String) -> String {
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
