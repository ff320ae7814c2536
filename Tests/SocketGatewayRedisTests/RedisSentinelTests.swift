import NIOCore
import Testing

@testable import SocketGatewayRedis

/// Sentinel URLs: the forms python-socketio and this project write, the sentinels' own credentials, and errors
/// that name the wrong part.
@Suite struct RedisSentinelURLTests {
    typealias Node = RedisSentinelEndpoint.Node

    struct Case: Sendable, CustomStringConvertible {
        var text: String
        var sentinel: RedisSentinelEndpoint
        var username: String? = nil
        var password: String? = nil
        var database: Int = 0
        var redacted: String
        var description: String { self.text }
    }

    static let valid: [Case] = [
        Case(
            text: "redis+sentinel://127.0.0.1:26379/mymaster",
            sentinel: .init(sentinels: [Node(host: "127.0.0.1", port: 26379)], primaryName: "mymaster"),
            redacted: "redis+sentinel://127.0.0.1:26379/mymaster/0"
        ),
        Case(
            text: "redis+sentinel://:pw@s1,s2:26380,[::1]:26381/mymaster/2",
            sentinel: .init(
                sentinels: [Node(host: "s1"), Node(host: "s2", port: 26380), Node(host: "::1", port: 26381)],
                primaryName: "mymaster"
            ),
            password: "pw",
            database: 2,
            redacted: "redis+sentinel://:***@s1:26379,s2:26380,[::1]:26381/mymaster/2"
        ),
        // python-socketio's order: /db/service_name.
        Case(
            text: "redis+sentinel://user:pw@h1:1234,h2:2345/0/myredis",
            sentinel: .init(
                sentinels: [Node(host: "h1", port: 1234), Node(host: "h2", port: 2345)],
                primaryName: "myredis"
            ),
            username: "user",
            password: "pw",
            redacted: "redis+sentinel://user:***@h1:1234,h2:2345/myredis/0"
        ),
        Case(
            text: "VALKEY+SENTINEL://h/my%20primary/?db=3&sentinel_password=s%26p&sentinel_username=sen",
            sentinel: .init(sentinels: [Node(host: "h")], primaryName: "my primary", username: "sen", password: "s&p"),
            database: 3,
            redacted: "redis+sentinel://h:26379/my%20primary/3?sentinel_username=sen&sentinel_password=***"
        ),
        // Both segments numbers: python-socketio's order (the URL is shared with Python peers).
        Case(
            text: "redis+sentinel://h:1/4/5",
            sentinel: .init(sentinels: [Node(host: "h", port: 1)], primaryName: "5"),
            database: 4,
            redacted: "redis+sentinel://h:1/5/4"
        ),
    ]

    @Test(arguments: Self.valid)
    func parses(_ item: Case) throws {
        let url = try RedisURL(parsing: item.text, environment: [:])
        #expect(url.endpoint == .sentinel(item.sentinel))
        #expect(url.username == item.username)
        #expect(url.password == item.password)
        #expect(url.database == item.database)
        #expect(url.redacted == item.redacted)
        #expect(RedisHandshakeStep.handshake(for: url).last == .verifyPrimary)
    }

    @Test func sentinelPasswordComesFromTheEnvironmentUnlessTheURLHasOne() throws {
        let environment = [RedisSentinelEndpoint.passwordVariable: "from-env"]
        let plain = try RedisURL(parsing: "redis+sentinel://:data@h/p", environment: environment)
        let fromEnvironment = RedisSentinelEndpoint(
            sentinels: [Node(host: "h")],
            primaryName: "p",
            password: "from-env"
        )
        #expect(plain.endpoint == .sentinel(fromEnvironment))
        #expect(plain.password == "data")
        let explicit = try RedisURL(parsing: "redis+sentinel://h/p?sentinel_password=q", environment: environment)
        #expect(explicit.endpoint == .sentinel(.init(sentinels: [Node(host: "h")], primaryName: "p", password: "q")))
        // An empty sentinel_password= says "none", whatever the environment says.
        let none = try RedisURL(parsing: "redis+sentinel://h/p?sentinel_password=", environment: environment)
        #expect(none.endpoint == .sentinel(.init(sentinels: [Node(host: "h")], primaryName: "p")))
        // A plain redis:// URL ignores it.
        #expect(try RedisURL(parsing: "redis://h", environment: environment).endpoint == .tcp(host: "h", port: 6379))
    }

    @Test func theSentinelsCredentialsAreTheirOwnAndTheDataNodesKeepTheURLs() throws {
        let url = try RedisURL(parsing: "redis+sentinel://u:data@h:7/p/2?sentinel_password=sen", environment: [:])
        guard case .sentinel(let endpoint) = url.endpoint else {
            Issue.record("not a sentinel endpoint")
            return
        }
        let sentinel = url.sentinel(endpoint.sentinels[0], of: endpoint)
        #expect(sentinel.endpoint == .tcp(host: "h", port: 7))
        #expect(sentinel.username == nil && sentinel.password == "sen" && sentinel.database == 0)
        let primary = url.primary(host: "10.0.0.9", port: 6380)
        #expect(primary.endpoint == .tcp(host: "10.0.0.9", port: 6380))
        #expect(primary.username == "u" && primary.password == "data" && primary.database == 2)
        #expect(RedisHandshakeStep.handshake(for: primary).last != .verifyPrimary)
    }

    static let invalid: [(String, String)] = [
        ("redis+sentinel://h:26379", "the primary's name is missing"),
        ("redis+sentinel://h:26379/", "the primary's name is missing"),
        ("redis+sentinel://h:26379/0", "'/0' is a database, and the primary's name is missing"),
        ("redis+sentinel://h/p/x", "database 'x'"),
        ("redis+sentinel://h/p/0/extra", "too many path segments"),
        ("redis+sentinel://h1,,h2/p", "sentinel address 2 of the comma-separated list is empty"),
        ("redis+sentinel://h1,h2:0/p", "port '0'"),
        ("redis+sentinel://h/p?timeout=1", "sentinel_password, sentinel_username"),
        ("redis://h/0?sentinel_password=x", "'sentinel_password' needs a redis+sentinel:// URL"),
        ("redis+sentinel://h/%zz", "invalid percent-encoding"),
    ]

    @Test(arguments: Self.invalid)
    func rejects(_ text: String, _ fragment: String) {
        do {
            let url = try RedisURL(parsing: text, environment: [:])
            Issue.record("\(text) parsed as \(url)")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func passwordsAreNeverPrinted() {
        let url = "redis+sentinel://u:data-secret@h/p/x?sentinel_password=sentinel-secret&password=other-secret"
        do {
            _ = try RedisURL(parsing: url, environment: [:])
            Issue.record("parsed")
        } catch {
            for secret in ["data-secret", "sentinel-secret", "other-secret"] {
                #expect(!error.description.contains(secret), "\(error)")
            }
        }
        #expect(
            RedisURL.maskPassword(in: "redis+sentinel://h/p?password=a&db=x&sentinel_password=b")
                == "redis+sentinel://h/p?password=***&db=x&sentinel_password=***"
        )
        let parsed = try? RedisURL(parsing: "redis+sentinel://:a@h/p?sentinel_password=b", environment: [:])
        #expect(parsed?.description == "redis+sentinel://:***@h:26379/p/0?sentinel_password=***")
    }
}

/// The discovery machine at synthetic times: the order sentinels are asked in, what each answer means, the
/// per-sentinel timeout, and the one error that lists every reason.
@Suite struct RedisSentinelDiscoveryTests {
    typealias Discovery = RedisSentinelDiscovery
    typealias Node = RedisSentinelEndpoint.Node
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let timeout = TimeAmount.milliseconds(500)
    let nodes = [Node(host: "10.0.0.1"), Node(host: "10.0.0.2", port: 26380), Node(host: "10.0.0.3")]
    let query = ["SENTINEL", "get-master-addr-by-name", "mymaster"]
    let url = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,10.0.0.3:26379/mymaster/0"

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }

    func discovery(password: String? = nil, username: String? = nil, count: Int = 3) -> Discovery {
        let endpoint = RedisSentinelEndpoint(
            sentinels: Array(self.nodes.prefix(count)),
            primaryName: "mymaster",
            username: username,
            password: password
        )
        return Discovery(endpoint: endpoint, timeout: self.timeout, redactedURL: self.url)
    }

    func address(_ host: String, _ port: String) -> RESPValue {
        .array([.bulkString(ByteBuffer(string: host)), .bulkString(ByteBuffer(string: port))])
    }

    func connect(_ index: Int, at milliseconds: Int64) -> Discovery.Action {
        .connect(index: index, node: self.nodes[index], deadline: self.at(milliseconds) + self.timeout)
    }

    func failure(_ reasons: String) -> Discovery.Action {
        .failed(
            RedisError(
                code: .primaryNotFound,
                message: "no sentinel knows primary 'mymaster' (tried \(reasons)); check the sentinel addresses "
                    + "and the primary's name in the URL, that the sentinels run, and their password "
                    + "(sentinel_password= or SOCKET_REDIS_SENTINEL_PASSWORD)"
            )
        )
    }

    @Test func theFirstSentinelThatAnswersGivesTheAddress() {
        var discovery = self.discovery()
        #expect(discovery.start(now: self.start) == self.connect(0, at: 0))
        #expect(discovery.start(now: self.start) == .nothing)
        #expect(discovery.connected(index: 0, now: self.at(1)) == .send([self.query]))
        #expect(
            discovery.received(self.address("10.0.1.5", "6380"), index: 0, now: self.at(2))
                == .found(host: "10.0.1.5", port: 6380, index: 0)
        )
        #expect(discovery.isDone)
        // What the closed sentinel connection and the old timer report afterwards changes nothing.
        #expect(discovery.closed(index: 0, error: nil, now: self.at(3)) == .nothing)
        #expect(discovery.tick(now: self.at(600)) == .nothing)
        #expect(discovery.received(self.address("10.0.1.6", "1"), index: 0, now: self.at(3)) == .nothing)
    }

    @Test func sentinelsAreAuthenticatedWithTheirOwnCredentials() {
        var discovery = self.discovery(password: "sen", username: "watcher")
        #expect(discovery.start(now: self.start) == self.connect(0, at: 0))
        #expect(discovery.connected(index: 0, now: self.at(1)) == .send([["AUTH", "watcher", "sen"], self.query]))
        #expect(discovery.received(.simpleString("OK"), index: 0, now: self.at(2)) == .nothing)
        #expect(
            discovery.received(self.address("h", "7"), index: 0, now: self.at(2))
                == .found(host: "h", port: 7, index: 0)
        )
    }

    /// Every way a sentinel can fail moves on to the next one, in order; the last failure ends the discovery with
    /// one error naming each sentinel and its reason.
    @Test func eachFailingSentinelIsSkippedAndTheErrorListsThemAll() {
        var discovery = self.discovery(password: "sen")
        #expect(discovery.start(now: self.start) == self.connect(0, at: 0))
        // 1: refused connection.
        #expect(
            discovery.connectFailed(index: 0, error: IOError(errnoCode: 111, reason: "connect"), now: self.at(1))
                == self.connect(1, at: 1)
        )
        // 2: refuses AUTH.
        #expect(discovery.connected(index: 1, now: self.at(2)) == .send([["AUTH", "sen"], self.query]))
        #expect(
            discovery.received(.error("WRONGPASS invalid\npassword"), index: 1, now: self.at(3))
                == self.connect(2, at: 3)
        )
        // A late reply from sentinel 2 changes nothing.
        #expect(discovery.received(self.address("h", "1"), index: 1, now: self.at(4)) == .nothing)
        // 3: does not know the name.
        #expect(discovery.connected(index: 2, now: self.at(4)) == .send([["AUTH", "sen"], self.query]))
        #expect(discovery.received(.simpleString("OK"), index: 2, now: self.at(5)) == .nothing)
        let action = discovery.received(.null, index: 2, now: self.at(5))
        #expect(
            action
                == self.failure(
                    "10.0.0.1:26379 cannot connect (\(IOError(errnoCode: 111, reason: "connect"))); "
                        + "10.0.0.2:26380 refused AUTH (WRONGPASS invalid\\npassword); "
                        + "10.0.0.3:26379 does not know 'mymaster'"
                )
        )
        if case .failed(let error) = action {
            #expect(error.code == .primaryNotFound)
            #expect(error.redactedURL == self.url)
        }
        #expect(discovery.isDone)
    }

    @Test func aSilentSentinelIsSkippedAtItsDeadline() {
        var discovery = self.discovery(count: 2)
        #expect(discovery.start(now: self.start) == self.connect(0, at: 0))
        // The connect hangs: before the deadline the tick does nothing, at the deadline the next is asked.
        #expect(discovery.tick(now: self.at(499)) == .nothing)
        #expect(discovery.tick(now: self.at(500)) == self.connect(1, at: 500))
        // The hung connect completing late is ignored (the shell closes that channel).
        #expect(discovery.connected(index: 0, now: self.at(501)) == .nothing)
        // Connected but never answers.
        #expect(discovery.connected(index: 1, now: self.at(510)) == .send([self.query]))
        #expect(discovery.tick(now: self.at(999)) == .nothing)
        #expect(
            discovery.tick(now: self.at(1000))
                == self.failure(
                    "10.0.0.1:26379 no answer within \(self.timeout); 10.0.0.2:26380 no answer within \(self.timeout)"
                )
        )
        #expect(discovery.tick(now: self.at(2000)) == .nothing)
    }

    @Test func closedConnectionsAndOddAnswersAreSkipped() {
        var discovery = self.discovery()
        #expect(discovery.start(now: self.start) == self.connect(0, at: 0))
        #expect(discovery.connected(index: 0, now: self.at(1)) == .send([self.query]))
        #expect(discovery.closed(index: 0, error: nil, now: self.at(2)) == self.connect(1, at: 2))
        // The old connection's close, reported twice, is stale.
        #expect(discovery.closed(index: 0, error: nil, now: self.at(2)) == .nothing)
        #expect(discovery.connected(index: 1, now: self.at(3)) == .send([self.query]))
        #expect(discovery.received(self.address("h", "notaport"), index: 1, now: self.at(4)) == self.connect(2, at: 4))
        #expect(discovery.connected(index: 2, now: self.at(5)) == .send([self.query]))
        #expect(
            discovery.received(.error("ERR unknown command 'SENTINEL'"), index: 2, now: self.at(6))
                == self.failure(
                    "10.0.0.1:26379 closed the connection; 10.0.0.2:26380 answered an address that is not host and "
                        + "port; 10.0.0.3:26379 refused (ERR unknown command 'SENTINEL')"
                )
        )
    }

    @Test func otherReplyShapesAreNotAddresses() {
        for reply: RESPValue in [.integer(1), .simpleString("OK"), .array([]), self.address("", "6379")] {
            var discovery = self.discovery(count: 1)
            _ = discovery.start(now: self.start)
            _ = discovery.connected(index: 0, now: self.at(1))
            let action = discovery.received(reply, index: 0, now: self.at(2))
            guard case .failed(let error) = action else {
                Issue.record("\(reply) gave \(action)")
                continue
            }
            #expect(error.code == .primaryNotFound)
        }
    }

    @Test func switchMasterMessagesNameTheNewPrimaryOfOurNameOnly() {
        func message(_ channel: String, _ text: String) -> RESPValue {
            .array([
                .bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: channel)),
                .bulkString(ByteBuffer(string: text)),
            ])
        }
        let ours = Discovery.switchedPrimary(
            in: message("+switch-master", "mymaster 127.0.0.1 6379 10.0.0.7 6380"),
            primaryName: "mymaster"
        )
        #expect(ours?.host == "10.0.0.7" && ours?.port == 6380)
        for other in [
            message("+switch-master", "other 127.0.0.1 6379 10.0.0.7 6380"),
            message("+switch-master", "mymaster 127.0.0.1 6379 10.0.0.7"),
            message("+switch-master", "mymaster 127.0.0.1 6379 10.0.0.7 0"),
            message("+sdown", "mymaster 127.0.0.1 6379 10.0.0.7 6380"),
            .array([.bulkString(ByteBuffer(string: "subscribe")), .bulkString(ByteBuffer(string: "+switch-master"))]),
            .simpleString("OK"),
        ] {
            #expect(Discovery.switchedPrimary(in: other, primaryName: "mymaster") == nil, "\(other)")
        }
        #expect(self.discovery().watchCommands == [["SUBSCRIBE", "+switch-master"]])
        #expect(
            self.discovery(password: "p").watchCommands == [["AUTH", "p"], ["SUBSCRIBE", "+switch-master"]]
        )
    }

    @Test func cancelEndsIt() {
        var discovery = self.discovery()
        _ = discovery.start(now: self.start)
        guard case .failed(let error) = discovery.cancel() else {
            Issue.record("cancel did not fail the discovery")
            return
        }
        #expect(error.code == .shutdown)
        #expect(discovery.cancel() == .nothing)
        #expect(discovery.connected(index: 0, now: self.at(1)) == .nothing)
    }
}

/// ROLE in the connection machine's handshake: a node that is not the primary is refused with `.notPrimary`, which
/// each client treats as a refused handshake (the subscriber and the publisher back off and ask the sentinels again).
@Suite struct RedisVerifyPrimaryStepTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func machine() -> RedisConnectionStateMachine {
        RedisConnectionStateMachine(
            configuration: .init(
                handshake: [.auth(["AUTH", "pw"]), .verifyPrimary, .subscribe(channels: ["c"])],
                redactedURL: "redis+sentinel://:***@h:26379/p/0",
                backoff: ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(100)),
                afterConnectFailure: .reconnectAfterBackoff,
                afterHandshakeRefused: .reconnectAfterBackoff,
                afterConnectionLost: .reconnectAfterBackoff
            )
        )
    }

    func role(_ name: String) -> RESPValue {
        .array([.bulkString(ByteBuffer(string: name)), .integer(0), .array([])])
    }

    @Test func thePrimaryPasses() {
        var machine = self.machine()
        #expect(machine.start(now: self.start) == .connect(generation: 1))
        _ = machine.connected(generation: 1, now: self.start)
        #expect(machine.received(.simpleString("OK"), generation: 1, now: self.start) == .nothing)
        #expect(machine.received(self.role("master"), generation: 1, now: self.start) == .nothing)
        let confirmation = RESPValue.array([
            .bulkString(ByteBuffer(string: "subscribe")), .bulkString(ByteBuffer(string: "c")), .integer(1),
        ])
        #expect(machine.received(confirmation, generation: 1, now: self.start) == .becomeReady(isReconnect: false))
    }

    @Test(arguments: ["slave", "sentinel", "something\u{1B}[2J"])
    func aReplicaIsRefusedAndTheClientTriesAgain(_ role: String) {
        var machine = self.machine()
        _ = machine.start(now: self.start)
        _ = machine.connected(generation: 1, now: self.start)
        _ = machine.received(.simpleString("OK"), generation: 1, now: self.start)
        let action = machine.received(self.role(role), generation: 1, now: self.start)
        guard case .connectFailed(let error, let close, let retry?) = action else {
            Issue.record("\(action)")
            return
        }
        #expect(error.code == .notPrimary)
        #expect(error.command == "ROLE")
        #expect(error.message.contains(role.hasPrefix("something") ? "ROLE: not master" : "ROLE: \(role)"))
        #expect(!error.message.contains("\u{1B}"))
        #expect(close)
        #expect(retry.generation == 2 && retry.attempt == 1)
    }
}
