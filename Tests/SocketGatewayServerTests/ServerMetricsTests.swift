import MetricsTestKit
import NIOCore
import SocketGatewayServer
import Testing

extension SocketServerLimitsTests {
    /// The metrics `/metrics` added: client events per namespace (those a handler takes), the namespaces, and the
    /// round trip of `emitWithAck` (answers only; a timeout records nothing).
    @Test func clientEventsNamespacesAndAckRoundTripsAreRecorded() async throws {
        try await self.withServer { h in
            #expect(try h.metrics.expectMeter("socketgateway_namespaces").lastValue == 1)
            h.server.namespace("/admin")
            h.server.namespace("/admin")
            #expect(try h.metrics.expectMeter("socketgateway_namespaces").lastValue == 2)

            let (client, sid) = try await self.connect(port: h.port, group: h.group)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))
            for index in 0..<3 {
                try await client.send("42[\"flood\",\(index)]")
            }
            try await client.send(#"42["no handler"]"#)
            try await client.send(#"421["echo","x"]"#)
            // A connection's events are handled in order: once the echo is answered, the floods were recorded.
            #expect(try await client.nextText() == #"431["x"]"#)
            #expect(h.recorder.events == ["flood 0", "flood 1", "flood 2"])
            #expect(h.counter("socketgateway_client_events_total", [("namespace", "/")]) == 4)
            #expect(h.counter("socketgateway_client_events_total", [("namespace", "/admin")]) == 0)

            async let answer = connection.emitWithAck("question", arguments: [], timeout: .seconds(10))
            #expect(try await client.nextText() == #"420["question"]"#)
            try await client.send(#"430["yes"]"#)
            #expect(try await answer == ["yes"])
            await #expect(throws: SocketAckError.self) {
                _ = try await connection.emitWithAck("unanswered", arguments: [], timeout: .milliseconds(50))
            }
            #expect(try await client.nextText() == #"421["unanswered"]"#)
            let roundTrips = try h.metrics.expectTimer("socketgateway_ack_round_trip_seconds").values
            #expect(roundTrips.count == 1)
            #expect(roundTrips.allSatisfy { $0 > 0 })
            await client.close()
        }
    }
}

extension SocketServerLimitsTests {
    /// `socketgateway_rooms` follows the rooms with a member on the server, each connection's own sid room
    /// included: joins and leaves of another room, and a disconnect, move it; a second member does not.
    @Test func roomsGaugeFollowsTheRoomsWithMembers() async throws {
        try await self.withServer { h in
            func rooms() throws -> Double? { try h.metrics.expectGauge("socketgateway_rooms").lastValue }
            let (first, firstSid) = try await self.connect(port: h.port, group: h.group)
            let (second, secondSid) = try await self.connect(port: h.port, group: h.group)
            try await h.recorder.waitUntil { $0.connection(firstSid) != nil && $0.connection(secondSid) != nil }
            let a = try #require(h.recorder.connection(firstSid))
            let b = try #require(h.recorder.connection(secondSid))
            try await self.waitUntil("two sid rooms") { (try? rooms()) == 2 }
            await a.join("team")
            #expect(try rooms() == 3)
            await b.join("team")
            #expect(try rooms() == 3)
            await a.leave("team")
            #expect(try rooms() == 3)
            await b.leave("team")
            #expect(try rooms() == 2)
            await first.close()
            try await h.recorder.waitUntil { $0.disconnectReason(firstSid) != nil }
            try await self.waitUntil("one sid room left") { (try? rooms()) == 1 }
            await second.close()
            try await h.recorder.waitUntil { $0.disconnectReason(secondSid) != nil }
            try await self.waitUntil("no room left") { (try? rooms()) == 0 }
        }
    }
}
