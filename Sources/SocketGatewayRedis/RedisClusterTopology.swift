/// A Redis Cluster node's address: a seed from the URL, or a node as the cluster announces it (its `endpoint`,
/// or its `ip`).
public struct RedisClusterAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The host name or IP address.
    public var host: String
    /// The TCP port clients use.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` (`[host]:port` for IPv6).
    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// Orders by host, then port (for deterministic output).
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }
}

/// The hash slot of a key or channel, as Redis Cluster computes it: CRC16 (XMODEM) of the key modulo 16384, where
/// only the part between the first `{` and the next `}` counts when that part is not empty (a hash tag).
package enum RedisClusterSlot {
    /// The number of hash slots.
    package static let count = 16384

    /// The slot of `key` (a key, or a channel for `SPUBLISH`/`SSUBSCRIBE`).
    package static func of(_ key: String) -> Int {
        var bytes = Array(key.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            bytes = Array(bytes[(open + 1)..<close])
        }
        return Int(Self.crc16(bytes) & 0x3FFF)
    }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
    package static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ Self.table[Int((crc >> 8) ^ UInt16(byte)) & 0xFF]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}

/// Who serves which hash slots: the shards of a Redis Cluster, as `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS`
/// reported them, with a lookup from slot to primary.
package struct RedisClusterTopology: Sendable, Hashable {
    /// One node of a shard.
    package struct Node: Sendable, Hashable {
        /// The node's id (40 hex characters), when reported.
        package var id: String?
        /// Where clients reach it.
        package var address: RedisClusterAddress
        /// Whether the cluster considers it healthy (`CLUSTER SHARDS`' `health: online`; always true from
        /// `CLUSTER SLOTS`, which lists no failed node as primary).
        package var isOnline: Bool

        /// Creates a node.
        package init(id: String? = nil, address: RedisClusterAddress, isOnline: Bool = true) {
            self.id = id
            self.address = address
            self.isOnline = isOnline
        }
    }

    /// A primary, its replicas, and the slot ranges it serves.
    package struct Shard: Sendable, Hashable {
        /// The slot ranges, sorted.
        package var slots: [ClosedRange<Int>]
        /// The node that serves the slots' writes and sharded pub/sub.
        package var primary: Node
        /// Its replicas.
        package var replicas: [Node]

        /// Creates a shard.
        package init(slots: [ClosedRange<Int>], primary: Node, replicas: [Node] = []) {
            self.slots = slots.sorted { $0.lowerBound < $1.lowerBound }
            self.primary = primary
            self.replicas = replicas
        }
    }

    /// The shards that serve slots, sorted by their first slot.
    package let shards: [Shard]
    /// For every slot, the index in `shards` of the shard that serves it; `UInt16.max` when no shard does.
    private let owner: [UInt16]

    /// Creates a topology from shards; shards without slots are dropped, and a slot claimed twice goes to the
    /// later shard (a topology in the middle of a migration may say so).
    package init(shards: [Shard]) {
        let serving = shards.filter { !$0.slots.isEmpty }.sorted {
            ($0.slots.first?.lowerBound ?? 0) < ($1.slots.first?.lowerBound ?? 0)
        }
        var owner = [UInt16](repeating: .max, count: RedisClusterSlot.count)
        for (index, shard) in serving.enumerated() {
            for range in shard.slots {
                let clamped = max(range.lowerBound, 0)...min(range.upperBound, RedisClusterSlot.count - 1)
                guard clamped.lowerBound <= clamped.upperBound else { continue }
                for slot in clamped { owner[slot] = UInt16(index) }
            }
        }
        self.shards = serving
        self.owner = owner
    }

    /// The primary that serves `slot`, if any shard does.
    package func primary(forSlot slot: Int) -> RedisClusterAddress? {
        self.shard(forSlot: slot).map { self.shards[$0].primary.address }
    }

    /// The index in `shards` of the shard that serves `slot`.
    package func shard(forSlot slot: Int) -> Int? {
        guard (0..<RedisClusterSlot.count).contains(slot) else { return nil }
        let index = self.owner[slot]
        return index == .max ? nil : Int(index)
    }

    /// Whether every slot is served.
    package var coversAllSlots: Bool { !self.owner.contains(.max) }

    /// Every primary address, sorted.
    package var primaries: [RedisClusterAddress] { self.shards.map(\.primary.address).sorted() }

    /// Every node (primaries and replicas), primaries first, for topology refreshes and classic pub/sub.
    package var allNodes: [RedisClusterAddress] {
        var seen = Set<RedisClusterAddress>()
        var result: [RedisClusterAddress] = []
        for address in self.primaries + self.shards.flatMap({ $0.replicas.map(\.address) })
        where seen.insert(address).inserted {
            result.append(address)
        }
        return result
    }

    /// The same topology with `slot` moved to the primary at `address` (what a `MOVED` reply says), until the next
    /// refresh. A primary not known yet becomes a shard of its own.
    package func moving(slot: Int, to address: RedisClusterAddress) -> RedisClusterTopology {
        guard (0..<RedisClusterSlot.count).contains(slot), self.primary(forSlot: slot) != address else { return self }
        var shards = self.shards.map { shard -> Shard in
            var shard = shard
            shard.slots = shard.slots.flatMap { range -> [ClosedRange<Int>] in
                guard range.contains(slot) else { return [range] }
                var pieces: [ClosedRange<Int>] = []
                if range.lowerBound < slot { pieces.append(range.lowerBound...(slot - 1)) }
                if slot < range.upperBound { pieces.append((slot + 1)...range.upperBound) }
                return pieces
            }
            return shard
        }
        if let index = shards.firstIndex(where: { $0.primary.address == address }) {
            shards[index].slots.append(slot...slot)
            shards[index].slots.sort { $0.lowerBound < $1.lowerBound }
        } else {
            shards.append(Shard(slots: [slot...slot], primary: Node(address: address)))
        }
        return RedisClusterTopology(shards: shards)
    }

    /// Equal when the same shards serve the same slots.
    package static func == (lhs: Self, rhs: Self) -> Bool { lhs.shards == rhs.shards }

    /// Hashes the shards.
    package func hash(into hasher: inout Hasher) { hasher.combine(self.shards) }
}

// MARK: - Parsing

extension RedisClusterTopology {
    /// Parses a `CLUSTER SHARDS` reply (Redis ≥ 7.0, RESP2: every shard and node a flat list of names and values).
    ///
    /// A node's address is its `endpoint`, or its `ip` when the endpoint is empty or `?` (unknown), or the address
    /// the reply came from (`replyingNode`) when neither is known. Shards without a primary or without slots are
    /// skipped. A node with both a plain `port` and a `tls-port` is reached on the one the client speaks (`tls`).
    /// - Throws: `RedisError` `.protocolError` when the reply does not have the documented shape.
    package static func parse(
        shards reply: RESPValue,
        from replyingNode: RedisClusterAddress,
        tls: Bool = false
    ) throws(RedisError)
        -> RedisClusterTopology
    {
        guard case .array(let items) = reply else { throw Self.shapeError("CLUSTER SHARDS", reply) }
        var shards: [Shard] = []
        for item in items {
            guard let fields = Self.fields(item) else { throw Self.shapeError("CLUSTER SHARDS", item) }
            guard case .array(let bounds)? = fields["slots"], bounds.count % 2 == 0,
                case .array(let nodeItems)? = fields["nodes"]
            else { throw Self.shapeError("CLUSTER SHARDS", item) }
            var slots: [ClosedRange<Int>] = []
            var index = 0
            while index < bounds.count {
                guard let low = Self.int(bounds[index]), let high = Self.int(bounds[index + 1]), low <= high,
                    low >= 0, high < RedisClusterSlot.count
                else { throw Self.shapeError("CLUSTER SHARDS", item) }
                slots.append(low...high)
                index += 2
            }
            var primary: Node?
            var replicas: [Node] = []
            for nodeItem in nodeItems {
                guard let node = Self.fields(nodeItem),
                    let port = tls
                        ? node["tls-port"].flatMap(Self.int) ?? node["port"].flatMap(Self.int)
                        : node["port"].flatMap(Self.int) ?? node["tls-port"].flatMap(Self.int)
                else { throw Self.shapeError("CLUSTER SHARDS", nodeItem) }
                let host = Self.known(node["endpoint"]?.string) ?? Self.known(node["ip"]?.string) ?? replyingNode.host
                let parsed = Node(
                    id: node["id"]?.string,
                    address: RedisClusterAddress(host: host, port: port),
                    isOnline: node["health"]?.string.map { $0 == "online" } ?? true
                )
                if node["role"]?.string == "master" { primary = parsed } else { replicas.append(parsed) }
            }
            guard let primary, !slots.isEmpty else { continue }
            shards.append(Shard(slots: slots, primary: primary, replicas: replicas))
        }
        return RedisClusterTopology(shards: shards)
    }

    /// Parses a `CLUSTER SLOTS` reply (every Redis Cluster version; deprecated in 7.0 but still answered):
    /// `[[start, end, [host, port, id, …], replica…], …]`. Ranges served by the same primary form one shard.
    /// - Throws: `RedisError` `.protocolError` when the reply does not have the documented shape.
    package static func parse(
        slots reply: RESPValue,
        from replyingNode: RedisClusterAddress
    ) throws(RedisError)
        -> RedisClusterTopology
    {
        guard case .array(let items) = reply else { throw Self.shapeError("CLUSTER SLOTS", reply) }
        var shards: [Shard] = []
        for item in items {
            guard case .array(let parts) = item, parts.count >= 3, let low = Self.int(parts[0]),
                let high = Self.int(parts[1]), low <= high, low >= 0, high < RedisClusterSlot.count
            else { throw Self.shapeError("CLUSTER SLOTS", item) }
            var nodes: [Node] = []
            for part in parts.dropFirst(2) {
                guard case .array(let node) = part, node.count >= 2, let port = Self.int(node[1]) else {
                    throw Self.shapeError("CLUSTER SLOTS", part)
                }
                let host = Self.known(node[0].string) ?? replyingNode.host
                nodes.append(Node(id: node.count > 2 ? node[2].string : nil, address: .init(host: host, port: port)))
            }
            let primary = nodes[0]
            if let index = shards.firstIndex(where: { $0.primary.address == primary.address }) {
                shards[index].slots.append(low...high)
                shards[index].slots.sort { $0.lowerBound < $1.lowerBound }
            } else {
                shards.append(Shard(slots: [low...high], primary: primary, replicas: Array(nodes.dropFirst())))
            }
        }
        return RedisClusterTopology(shards: shards)
    }

    private static func fields(_ value: RESPValue) -> [String: RESPValue]? {
        guard case .array(let items) = value, items.count % 2 == 0 else { return nil }
        var result: [String: RESPValue] = [:]
        var index = 0
        while index < items.count {
            guard let name = items[index].string else { return nil }
            result[name] = items[index + 1]
            index += 2
        }
        return result
    }

    private static func int(_ value: RESPValue) -> Int? {
        switch value {
        case .integer(let number): Int(exactly: number)
        case .bulkString, .simpleString: value.string.flatMap { Int($0) }
        default: nil
        }
    }

    /// `nil` for an empty or unknown (`?`) host.
    private static func known(_ host: String?) -> String? {
        guard let host, !host.isEmpty, host != "?" else { return nil }
        return host
    }

    private static func shapeError(_ command: String, _ value: RESPValue) -> RedisError {
        RedisError(
            code: .protocolError,
            message: "unexpected \(command) reply: \(String(describing: value).prefix(200))",
            command: command
        )
    }
}

/// A Redis Cluster redirection: the error reply `MOVED <slot> <host:port>` (the slot lives there now: update the
/// map) or `ASK <slot> <host:port>` (the slot is being migrated: send this one command there, preceded by `ASKING`).
package enum RedisClusterRedirection: Sendable, Hashable {
    /// The slot has moved for good.
    case moved(slot: Int, to: RedisClusterAddress)
    /// Only this command goes to the node importing the slot.
    case ask(slot: Int, to: RedisClusterAddress)

    /// Parses an error reply's text (without the leading `-`); `nil` when it is not a redirection.
    ///
    /// An empty host (`MOVED 3999 :6381`: the node does not know its own address) means the host of the node that
    /// answered, `replyingHost`.
    package init?(errorMessage: String, replyingHost: String) {
        let parts = errorMessage.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, let slot = Int(parts[1]), (0..<RedisClusterSlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = replyingHost }
        let address = RedisClusterAddress(host: host, port: port)
        switch parts[0] {
        case "MOVED": self = .moved(slot: slot, to: address)
        case "ASK": self = .ask(slot: slot, to: address)
        default: return nil
        }
    }

    /// The slot the redirection is about.
    package var slot: Int {
        switch self {
        case .moved(let slot, _), .ask(let slot, _): slot
        }
    }

    /// Where to send the command.
    package var address: RedisClusterAddress {
        switch self {
        case .moved(_, let address), .ask(_, let address): address
        }
    }
}
