import Foundation
import SocketGatewayRedisTestKit
import Testing

/// The test kit's answer to the race between choosing a free port and binding it: a redis-server whose port another
/// process took meanwhile is started again on another port, a bounded number of times.
@Suite struct RedisServerProcessPortTests {
    @Test func aStartWhosePortWasTakenMovesToAnotherPort() async throws {
        let taken = try ListeningLoopbackSocket()
        defer { taken.release() }
        var offered = [taken.port]
        var given: [Int] = []
        let server = try await RedisServerProcess.start(
            tls: nil,
            pickPort: {
                let port = offered.isEmpty ? try RedisServerProcess.freeLoopbackPort() : offered.removeFirst()
                given.append(port)
                return port
            },
            extraArguments: { [] }
        )
        #expect(given.count == 2 && given.first == taken.port, "ports given: \(given)")
        #expect(server.port == given.last && server.port != taken.port)
        #expect(try await server.cli(["PING"]) == "PONG")
        await server.stop()
    }

    @Test func aStartWhosePortsAreAllTakenFailsNamingThemAndTheLog() async throws {
        let taken = try ListeningLoopbackSocket()
        defer { taken.release() }
        var attempts = 0
        let error = await #expect(throws: RedisServerProcess.FixtureError.self) {
            _ = try await RedisServerProcess.start(
                tls: nil,
                pickPort: {
                    attempts += 1
                    return taken.port
                },
                extraArguments: { [] }
            )
        }
        #expect(attempts == RedisServerProcess.portAttempts)
        let ports = Array(repeating: String(taken.port), count: RedisServerProcess.portAttempts)
        let description = error?.description ?? ""
        #expect(description.contains("ports given: \(ports.joined(separator: ", "))"), "\(description)")
        #expect(description.contains("Address already in use"), "\(description)")
    }

    @Test func aClusterBusPortThatWasTakenIsChosenAgain() async throws {
        let taken = try ListeningLoopbackSocket()
        defer { taken.release() }
        var busPorts = [taken.port]
        var given: [Int] = []
        let server = try await RedisServerProcess.start(tls: nil) {
            let port = busPorts.isEmpty ? try RedisServerProcess.freeLoopbackPort() : busPorts.removeFirst()
            given.append(port)
            return ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", String(port)]
        }
        #expect(given.count == 2 && given.first == taken.port, "bus ports given: \(given)")
        #expect(try await server.cli(["CONFIG", "GET", "cluster-port"]).hasSuffix("\n\(given[1])"))
        await server.stop()
    }
}

/// A socket listening on a free 127.0.0.1 port, as another process's would be: binding that port fails with
/// "Address already in use" until `release()`.
private struct ListeningLoopbackSocket {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SocketFailure(call: "socket()", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && listen(descriptor, 1) == 0
                    && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard listening else {
            let failure = errno
            close(descriptor)
            throw SocketFailure(call: "bind/listen/getsockname on 127.0.0.1:0", errno: failure)
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func release() { close(self.descriptor) }
}

/// A socket call that failed while setting up `ListeningLoopbackSocket`.
private struct SocketFailure: Error {
    var call: String
    var errno: Int32
}
