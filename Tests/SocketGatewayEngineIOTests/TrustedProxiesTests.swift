import NIOCore
import NIOHTTP1
import Testing

@testable import SocketGatewayEngineIO

/// Which client a request is attributed to, from its peer address and `X-Forwarded-For` lines.
@Suite struct TrustedProxiesTests {
    let proxies = try! TrustedProxies(parsing: ["127.0.0.1", "10.0.0.0/8", "fd00::/8"])

    func address(_ text: String, port: Int = 0) -> SocketAddress {
        try! SocketAddress(ipAddress: text, port: port)
    }

    func client(peer: String, forwardedFor lines: [String]) -> String? {
        let headers = HTTPHeaders(lines.map { ("X-Forwarded-For", $0) })
        return self.proxies.clientAddress(peer: self.address(peer, port: 4711), headers: headers)?.ipAddress
    }

    @Test func parsesAddressesAndRanges() throws {
        #expect(self.proxies.ranges.map(\.description) == ["127.0.0.1/32", "10.0.0.0/8", "fd00:0:0:0:0:0:0:0/8"])
        // Host bits beyond the prefix are ignored, as ip(8) does.
        #expect(try TrustedProxies(parsing: ["192.168.1.77/24"]).ranges.map(\.description) == ["192.168.1.0/24"])
        #expect(try TrustedProxies(parsing: ["::1"]).ranges.map(\.description) == ["0:0:0:0:0:0:0:1/128"])
        #expect(try TrustedProxies(parsing: ["0.0.0.0/0"]).contains(self.address("203.0.113.9")))
    }

    @Test(arguments: ["", "localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0/8", "1.2.3.4/8x"])
    func refusesWhatIsNotAnAddressOrRange(_ entry: String) {
        #expect(throws: TrustedProxiesParseError(entry: entry)) { try TrustedProxies(parsing: ["127.0.0.1", entry]) }
    }

    @Test func matchesByPrefix() {
        #expect(self.proxies.contains(self.address("10.255.0.1")))
        #expect(!self.proxies.contains(self.address("11.0.0.1")))
        #expect(!self.proxies.contains(self.address("127.0.0.2")))
        #expect(self.proxies.contains(self.address("fd12::1")))
        #expect(!self.proxies.contains(self.address("fe80::1")))
        // An IPv4-mapped IPv6 peer (a dual-stack listener) is its IPv4 address.
        #expect(self.proxies.contains(self.address("::ffff:10.1.2.3")))
        #expect(!TrustedProxies.none.contains(self.address("127.0.0.1")))
    }

    @Test func anUntrustedPeerIsTheClientWhateverItSends() {
        #expect(self.client(peer: "203.0.113.5", forwardedFor: ["198.51.100.1"]) == "203.0.113.5")
        #expect(self.client(peer: "127.0.0.2", forwardedFor: ["198.51.100.1"]) == "127.0.0.2")
    }

    @Test func aTrustedPeerWithoutTheHeaderIsTheClient() {
        #expect(self.client(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        #expect(self.client(peer: "127.0.0.1", forwardedFor: [""]) == "127.0.0.1")
    }

    @Test func theRightMostUntrustedAddressIsTheClient() {
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.1"]) == "198.51.100.1")
        // A client's own forged entry sits left of what the trusted proxies appended.
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.1"]) == "198.51.100.1")
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.1, 10.1.1.1"]) == "198.51.100.1")
        // Several header lines are one list, in order.
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["6.6.6.6", "198.51.100.1 ,10.1.1.1"]) == "198.51.100.1")
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["2001:db8::7"]) == "2001:db8::7")
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["[2001:db8::7]:4711"]) == "2001:db8::7")
    }

    @Test func allTrustedMeansTheLeftMost() {
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["10.0.0.9, 10.0.0.8"]) == "10.0.0.9")
    }

    @Test func anEntryThatIsNotAnAddressEndsTheWalk() {
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.1, unknown"]) == "127.0.0.1")
        #expect(self.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.1, garbage, 10.0.0.3"]) == "10.0.0.3")
    }
}
