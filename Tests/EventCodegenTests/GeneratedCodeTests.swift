import Foundation
import GeneratedEventsFixture
import SocketGatewayCore
import Testing

/// Calls the code that SocketGatewayEventsPlugin generated at build time for Tests/GeneratedEventsFixture
/// (the kitchen-sink catalog).
@Suite struct GeneratedCodeTests {
    static let shippedAt = Date(timeIntervalSince1970: 1_795_979_583.120)  // 2026-11-29T19:13:03.120Z
    static let orderID = UUID(uuidString: "4F1C2B3A-9D8E-4F70-8A6B-5C4D3E2F1A0B")!

    static let order = OrderShipped(
        orderID: Self.orderID,
        trackingURL: nil,
        weightKg: 2.5,
        express: true,
        shippedAt: Self.shippedAt,
        carrier: .dhl,
        destination: .init(street: "1 Main St", city: "Lyon", location: .init(lat: 45.76, lng: 4.835)),
        items: [
            .init(sku: "A-1", quantity: 2, tags: ["red", "xl"]),
            .init(sku: "B-2", quantity: 1, tags: []),
        ],
        scores: [1.5, nil, 3],
        matrix: [[1, 2], [], [3]],
        history: [Tree(label: "root", children: [Tree(label: "leaf", children: [])])],
        statusByStage: [.done, .pending],
        default: "fallback",
        class: 7
    )

    static let allEvents: [KitchenSinkEvent] = [
        .orderShipped(Self.order),
        .userNotified(
            UserNotified(
                userID: "u-1",
                message: "Hi \"there\" ✓",
                priority: .veryHigh,
                attachments: [Attachment(fileName: "a.pdf", sizeBytes: 1024, contentType: "application/pdf")],
                readAt: Date(timeIntervalSince1970: -1.5)
            )
        ),
        .heartbeat(Heartbeat()),
        .bulkImportFinished(
            BulkImportFinished(ids: [Self.orderID, UUID()], jsonURL: "https://x/y.json", htmlBody: nil, apiKeys: ["k"])
        ),
    ]

    @Test func jsonValueHasCatalogKeyOrderAndWireFormats() {
        #expect(
            Self.order.jsonValue.jsonString
                == #"{"order_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b","weight_kg":2.5,"express":true,"#
                + #""shipped_at":"2026-11-29T19:13:03.120Z","carrier":"dhl","#
                + #""destination":{"street":"1 Main St","city":"Lyon","location":{"lat":45.76,"lng":4.835}},"#
                + #""items":[{"sku":"A-1","quantity":2,"tags":["red","xl"]},{"sku":"B-2","quantity":1,"tags":[]}],"#
                + #""scores":[1.5,null,3],"matrix":[[1,2],[],[3]],"#
                + #""history":[{"label":"root","children":[{"label":"leaf","children":[]}]}],"#
                + #""status_by_stage":["done","pending"],"default":"fallback","class":7}"#
        )
        #expect(OrderShipped.eventName == "order-shipped")
        #expect(OrderShipped.namespace == "/admin")
        #expect(UserNotified.namespace == "/")
        #expect(BulkImportFinished.namespace == "/jobs")
        #expect(Heartbeat().jsonValue.jsonString == "{}")
    }

    @Test(arguments: Self.allEvents)
    func roundTripThroughTheTypedDecoder(event: KitchenSinkEvent) throws {
        let payload = event.payload
        let name = type(of: payload).eventName
        #expect(name == event.name.rawValue)
        let decoded = try KitchenSinkEvent(event: name, arguments: [payload.jsonValue])
        #expect(decoded == event)
        // And through JSON text, as a client would receive it.
        let reparsed = try JSONValue.parse(payload.jsonValue.jsonString)
        #expect(try KitchenSinkEvent(event: name, arguments: [reparsed]) == event)
    }

    @Test func eventNameEnumListsWireNamesAndNamespaces() {
        #expect(
            KitchenSinkEventName.allCases.map(\.rawValue) == [
                "bulk:import:finished", "heartbeat", "order-shipped", "user.notified",
            ]
        )
        #expect(KitchenSinkEventName.bulkImportFinished.namespace == "/jobs")
    }

    @Test func optionalFieldsAcceptNullAndAbsence() throws {
        let absent: JSONValue = ["file_name": "a", "size_bytes": 3]
        let null: JSONValue = ["file_name": "a", "size_bytes": 3, "content_type": nil]
        #expect(try Attachment(jsonValue: absent) == Attachment(fileName: "a", sizeBytes: 3))
        #expect(try Attachment(jsonValue: null) == Attachment(fileName: "a", sizeBytes: 3))
        #expect(Attachment(fileName: "a", sizeBytes: 3).jsonValue.jsonString == #"{"file_name":"a","size_bytes":3}"#)
    }

    @Test func decoderErrorsNameTheEventAndThePath() throws {
        func error(_ event: String, _ arguments: [JSONValue]) -> String? {
            do {
                _ = try KitchenSinkEvent(event: event, arguments: arguments)
                return nil
            } catch let error as SocketEventDecodingError {
                return error.description
            } catch {
                return "unexpected \(error)"
            }
        }
        var json = Self.order.jsonValue
        #expect(error("nope", [json]) == "nope: unknown event: 'nope' is not an event of the KitchenSink catalog")
        #expect(
            error("order-shipped", [])
                == "order-shipped: wrong number of arguments: expected exactly one argument (the payload), found 0"
        )
        #expect(error("order-shipped", ["x"]) == "order-shipped: wrong type at $: expected an object, found a string")

        json = Self.replacing(json, path: ["items", 1, "quantity"], with: "one")
        #expect(
            error("order-shipped", [json])
                == "order-shipped: wrong type at $.items[1].quantity: expected an integer, found a string"
        )

        json = Self.replacing(Self.order.jsonValue, path: ["carrier"], with: "pigeon")
        #expect(
            error("order-shipped", [json])
                == "order-shipped: invalid value at $.carrier: expected one of 'ups', 'dhl', 'fedex', found 'pigeon'"
        )

        json = Self.replacing(Self.order.jsonValue, path: ["destination", "location", "lat"], with: nil)
        #expect(
            error("order-shipped", [json])
                == "order-shipped: missing field at $.destination.location.lat: the payload has no 'lat'"
        )

        json = Self.replacing(Self.order.jsonValue, path: ["shipped_at"], with: "yesterday")
        #expect(
            error("order-shipped", [json])
                == "order-shipped: invalid value at $.shipped_at: expected an ISO 8601 timestamp such as 2026-11-29T19:13:03.120Z, found 'yesterday'"
        )

        json = Self.replacing(Self.order.jsonValue, path: ["matrix", 0, 1], with: 1.5)
        #expect(
            error("order-shipped", [json])
                == "order-shipped: invalid value at $.matrix[0][1]: expected an integer, found 1.5"
        )
    }

    @Test func typedEmittersCallTheSharedEmitProtocol() async throws {
        let emitter = RecordingEmitter()
        await emitter.emit(Self.order, toUser: "42")
        await emitter.emit(Heartbeat(), toRoom: "ops", excluding: ["sid-1"])
        await emitter.broadcast(UserNotified(userID: "u", message: "m", priority: .low, attachments: []))
        await emitter.emit(BulkImportFinished(ids: [], jsonURL: "u", apiKeys: []), toRooms: ["a", "b"])
        let calls = await emitter.calls
        #expect(calls.count == 4)
        #expect(calls[0].event == "order-shipped")
        #expect(calls[0].target == .user("42"))
        #expect(calls[0].options == EmitOptions(namespace: "/admin"))
        #expect(calls[0].arguments.map(\.jsonString) == [Self.order.jsonValue.jsonString])
        #expect(calls[1].event == "heartbeat")
        #expect(calls[1].target == .room("ops"))
        #expect(calls[1].options == EmitOptions(namespace: "/admin", excluding: ["sid-1"]))
        #expect(calls[2].target == .broadcast)
        #expect(calls[2].options.namespace == "/")
        #expect(
            calls[2].arguments.map(\.jsonString) == [
                #"{"user_id":"u","message":"m","priority":"low","attachments":[]}"#
            ]
        )
        #expect(calls[3].target == .rooms(["a", "b"]))
        #expect(calls[3].options.namespace == "/jobs")
    }

    @Test func codableUsesWireNames() throws {
        let attachment = Attachment(fileName: "f", sizeBytes: 1, contentType: "t")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(attachment), as: UTF8.self)
        #expect(text == #"{"content_type":"t","file_name":"f","size_bytes":1}"#)
        #expect(try JSONDecoder().decode(Attachment.self, from: Data(text.utf8)) == attachment)
        #expect(try JSONDecoder().decode(Priority.self, from: Data(#""very-high""#.utf8)) == .veryHigh)
    }

    /// Foundation's coders go through the JSON form: `JSONEncoder` writes the JSON an emit sends (timestamps as
    /// ISO 8601 strings, lowercase UUIDs, absent optionals left out, enums as their wire value, nested types as
    /// objects) and `JSONDecoder` reads it back. Foundation's writer keeps neither the key order nor `/`
    /// unescaped by default, so its output (`.sortedKeys`, `.withoutEscapingSlashes`) is compared byte for byte
    /// with the emitted argument with its keys sorted.
    @Test func codableEncodesExactlyAsEmitted() async throws {
        var withOptionals = Self.order
        withOptionals.trackingURL = "https://track.example/a/b?c=d"
        withOptionals.destination.postalCode = "69001"
        withOptionals.destination.location = nil
        let payloads = Self.allEvents + [.orderShipped(withOptionals)]
        let emitter = RecordingEmitter()
        for payload in payloads {
            switch payload {
            case .orderShipped(let event): try await Self.expectCodableAsEmitted(event, emitter)
            case .userNotified(let event): try await Self.expectCodableAsEmitted(event, emitter)
            case .heartbeat(let event): try await Self.expectCodableAsEmitted(event, emitter)
            case .bulkImportFinished(let event): try await Self.expectCodableAsEmitted(event, emitter)
            }
        }
        let shipped = String(decoding: try JSONEncoder().encode(Self.order), as: UTF8.self)
        #expect(shipped.contains(#""shipped_at":"2026-11-29T19:13:03.120Z""#), "\(shipped)")
        #expect(shipped.contains(#""order_id":"4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b""#), "\(shipped)")
        #expect(!shipped.contains("tracking_url"), "\(shipped)")

        // A payload JSONDecoder cannot read fails as Codable users expect, with the path inside.
        let missing = Data(#"{"file_name":"f","size_bytes":"one"}"#.utf8)
        let error = #expect(throws: DecodingError.self) { try JSONDecoder().decode(Attachment.self, from: missing) }
        guard case .dataCorrupted(let context)? = error else { return }
        let underlying = try #require(context.underlyingError as? SocketEventDecodingError)
        #expect(underlying.path == [.key("size_bytes")])
    }

    static func expectCodableAsEmitted<Event: SocketEvent & Codable & Equatable>(
        _ event: Event,
        _ emitter: RecordingEmitter
    ) async throws {
        await emitter.emit(event, toRoom: "r")
        let emitted = try #require(await emitter.calls.last?.arguments.first?.jsonString)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let foundation = try encoder.encode(event)
        #expect(
            String(decoding: foundation, as: UTF8.self) == Self.sortingKeys(try JSONValue.parse(emitted)).jsonString,
            "\(Event.self): emitted \(emitted)"
        )
        #expect(try JSONDecoder().decode(Event.self, from: Data(emitted.utf8)) == event)
        #expect(try JSONDecoder().decode(Event.self, from: JSONEncoder().encode(event)) == event)
    }

    /// `value` with every object's keys sorted, as `.sortedKeys` writes them.
    static func sortingKeys(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.map { ($0.key, Self.sortingKeys($0.value)) }.sorted { $0.0 < $1.0 })
        case .array(let elements):
            return .array(elements.map(Self.sortingKeys))
        default:
            return value
        }
    }

    /// A copy of `value` with the value at `path` replaced (or removed when `replacement` is nil).
    static func replacing(_ value: JSONValue, path: [any Sendable], with replacement: JSONValue?) -> JSONValue {
        guard let first = path.first else { return replacement ?? .null }
        let rest = Array(path.dropFirst())
        switch value {
        case .object(var members):
            let key = first as! String
            if let index = members.firstIndex(where: { $0.key == key }) {
                if rest.isEmpty, replacement == nil {
                    members.remove(at: index)
                } else {
                    members[index].value = Self.replacing(members[index].value, path: rest, with: replacement)
                }
            }
            return .object(members)
        case .array(var elements):
            let index = first as! Int
            elements[index] = Self.replacing(elements[index], path: rest, with: replacement)
            return .array(elements)
        default:
            return value
        }
    }
}

/// A `SocketEmitter` that records what was emitted, to check what the generated emitters send.
actor RecordingEmitter: SocketEmitter {
    struct Call: Sendable {
        var event: String
        var arguments: [JSONValue]
        var target: EmitTarget
        var options: EmitOptions
    }

    private(set) var calls: [Call] = []

    func emit(_ event: String, arguments: [JSONValue], to target: EmitTarget, options: EmitOptions) async -> EmitResult
    {
        self.calls.append(Call(event: event, arguments: arguments, target: target, options: options))
        return EmitResult(outcome: .delivered, localDeliveries: 1)
    }

    func joinRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        EmitResult(outcome: .delivered)
    }
    func leaveRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        EmitResult(outcome: .delivered)
    }
    func closeRoom(_ room: String, namespace: String) async -> EmitResult { EmitResult(outcome: .delivered) }
    func disconnect(_ sid: String, namespace: String) async -> EmitResult { EmitResult(outcome: .delivered) }
}

@Suite struct ISO8601Tests {
    @Test(arguments: [
        (1_795_979_583.120, "2026-11-29T19:13:03.120Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (951_782_400, "2000-02-29T00:00:00.000Z"),
        (253_402_300_799.999, "9999-12-31T23:59:59.999Z"),
    ])
    func formatsLikeJavaScript(seconds: Double, text: String) throws {
        let date = Date(timeIntervalSince1970: seconds)
        let value = Attachment(fileName: text, sizeBytes: 0)
        _ = value
        let payload = UserNotified(userID: "u", message: "m", priority: .low, attachments: [], readAt: date)
        #expect(payload.jsonValue["read_at"] == .string(text))
        #expect(try UserNotified(jsonValue: payload.jsonValue).readAt == date)
    }

    @Test(arguments: [
        ("2026-11-29T20:13:03.120+01:00", 1_795_979_583.120),
        ("2026-11-29T19:13:03Z", 1_795_979_583.0),
        ("2026-11-29t19:13:03.12z", 1_795_979_583.120),
        ("2026-11-29T14:13:03.120-0500", 1_795_979_583.120),
    ])
    func parsesCommonProfiles(text: String, seconds: Double) throws {
        let json: JSONValue = [
            "user_id": "u", "message": "m", "priority": "low", "attachments": [], "read_at": .string(text),
        ]
        #expect(try UserNotified(jsonValue: json).readAt == Date(timeIntervalSince1970: seconds))
    }

    @Test(arguments: [
        "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T19:13:03", "2026-11-29", "2026-11-29T19:13:03.Z",
    ])
    func rejectsMalformedTimestamps(text: String) {
        let json: JSONValue = [
            "user_id": "u", "message": "m", "priority": "low", "attachments": [], "read_at": .string(text),
        ]
        #expect(throws: SocketEventDecodingError.self) { try UserNotified(jsonValue: json) }
    }
}
