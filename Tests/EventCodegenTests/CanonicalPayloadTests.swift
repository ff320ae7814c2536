import GeneratedEventsFixture
import SocketGatewayCore
import Testing
import _EventCodegenCore

/// `Catalog.canonicalPayload` (what `emit --catalog` publishes) writes a payload as the generated Swift type does:
/// a UUID the decoder accepts in either case comes out lowercase; nothing else changes.
@Suite struct CanonicalPayloadTests {
    static let catalog: Catalog = {
        let input = InputFile(path: "events.yaml", contents: try! readFixture("golden/kitchen-sink/events.yaml"))
        return try! GeneratorPipeline.parseCatalog(input)
    }()

    static func payload(_ value: JSONValue) -> PayloadValue {
        switch value {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .int(let number): .int(number)
        case .double(let number): .double(number)
        case .string(let text): .string(text)
        case .binary: .null
        case .array(let items): .array(items.map(Self.payload))
        case .object(let pairs): .object(pairs.map { (key: $0.key, value: Self.payload($0.value)) })
        }
    }

    @Test func uuidsAreLowercasedAsTheGeneratedTypeWritesThem() throws {
        let text = """
            {"ids":["4F1C2B3A-9D8E-4F70-8A6B-5C4D3E2F1A0B","0b8f9a3e-3f52-4d2c-9a57-1F7C7F0E9D11"],\
            "json_url":"HTTPS://X/Y.JSON","html_body":null,"api_keys":["ABC"]}
            """
        let uppercase = try JSONValue.parse(text)
        try Self.catalog.validate(event: "bulk:import:finished", payload: Self.payload(uppercase))
        let canonical = Self.catalog.canonicalPayload(event: "bulk:import:finished", payload: Self.payload(uppercase))
        #expect(
            canonical
                == .object([
                    (
                        key: "ids",
                        value: .array([
                            .string("4f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b"),
                            .string("0b8f9a3e-3f52-4d2c-9a57-1f7c7f0e9d11"),
                        ])
                    ),
                    (key: "json_url", value: .string("HTTPS://X/Y.JSON")),
                    (key: "html_body", value: .null),
                    (key: "api_keys", value: .array([.string("ABC")])),
                ])
        )
        // The generated type reads the same payload and writes the same UUIDs (it leaves out the null field).
        let generated = try BulkImportFinished(jsonValue: uppercase).jsonValue
        #expect(generated["ids"].map(Self.payload) == canonical.field("ids"))
    }

    @Test func anUnknownEventOrAPayloadWithoutUUIDsIsReturnedAsItIs() {
        let payload = PayloadValue.object([(key: "ID", value: .string("4F1C2B3A-9D8E-4F70-8A6B-5C4D3E2F1A0B"))])
        #expect(Self.catalog.canonicalPayload(event: "no-such-event", payload: payload) == payload)
        #expect(Self.catalog.canonicalPayload(event: "heartbeat", payload: payload) == payload)
    }
}

extension PayloadValue {
    fileprivate func field(_ key: String) -> PayloadValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.last { $0.key == key }?.value
    }
}
