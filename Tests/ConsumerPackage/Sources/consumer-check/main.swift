import ConsumerEvents
import Foundation
import SocketGatewayCore

/// A SocketEmitter that records every emit, so the check can see exactly what the generated API sends.
actor RecordingEmitter: SocketEmitter {
    private(set) var sent: [(event: String, target: EmitTarget, namespace: String, json: String)] = []

    func emit(_ event: String, arguments: [JSONValue], to target: EmitTarget, options: EmitOptions) async -> EmitResult
    {
        self.sent.append((event, target, options.namespace, arguments.map(\.jsonString).joined(separator: ",")))
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

nonisolated(unsafe) var failures = 0
@MainActor func check(_ condition: Bool, _ message: String) {
    if condition {
        print("ok: \(message)")
    } else {
        print("FAILED: \(message)")
        failures += 1
    }
}

let emitter = RecordingEmitter()
let invoiceID = UUID(uuidString: "0E5A7C1D-2B3F-4A5B-8C9D-0E1F2A3B4C5D")!
let created = InvoiceCreated(
    invoiceID: invoiceID,
    customerID: "cus_42",
    amountCents: 12_500,
    state: .sent,
    createdAt: Date(timeIntervalSince1970: 1_795_979_583.120)
)
let result = await emitter.emit(created, toUser: "42")
await emitter.broadcast(InvoicePaid(invoiceID: invoiceID, paidAt: Date(timeIntervalSince1970: 1_795_983_200)))

let sent = await emitter.sent
check(result.outcome == .delivered, "typed emit returns the emitter's EmitResult")
check(sent.count == 2, "two emits recorded")
check(sent[0].event == "invoice:created", "event name is the wire name")
check(sent[0].target == .user("42") && sent[0].namespace == "/", "toUser targets user:42 in namespace /")
check(
    sent[0].json
        == #"{"invoice_id":"0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d","customer_id":"cus_42","amount_cents":12500,"state":"sent","created_at":"2026-11-29T19:13:03.120Z"}"#,
    "invoice:created JSON: \(sent[0].json)"
)
check(
    sent[1].event == "invoice:paid" && sent[1].target == .broadcast && sent[1].namespace == "/billing",
    "broadcast in /billing"
)
check(
    sent[1].json == #"{"invoice_id":"0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d","paid_at":"2026-11-29T20:13:20.000Z"}"#,
    "invoice:paid JSON leaves out the absent optional: \(sent[1].json)"
)
let decoded = try InvoiceEvent(event: "invoice:created", arguments: [created.jsonValue])
check(decoded == .invoiceCreated(created), "the typed decoder reads back what was emitted")
#if CONSUMER_EDITED_CATALOG
let expectedNames = ["invoice:created", "invoice:paid", "invoice:voided"]
#else
let expectedNames = ["invoice:created", "invoice:paid"]
#endif
check(InvoiceEventName.allCases.map(\.rawValue) == expectedNames, "event-name enum: \(expectedNames)")

// A client event: the server decodes what a client sends and answers with the typed ack.
let remind = try InvoiceRemind(jsonValue: ["invoice_id": "0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d", "channel": "email"])
check(remind == InvoiceRemind(invoiceID: invoiceID, channel: "email"), "client event decodes: \(remind)")
check(InvoiceRemind.eventName == "invoice:remind" && InvoiceRemind.Ack.self == InvoiceRemindAck.self, "ack type")
check(InvoiceRemindAck(queued: true).jsonValue.jsonString == #"{"queued":true}"#, "ack JSON")
do {
    _ = try InvoiceRemind(jsonValue: ["invoice_id": "nope", "channel": "email"])
    check(false, "an invalid client payload must not decode")
} catch let error as SocketEventDecodingError {
    check(error.pathDescription == "$.invoice_id", "an invalid client payload names the path: \(error)")
}

#if CONSUMER_EDITED_CATALOG
// tools/test-consumer also adds a field to the client event and to its ack: the typed handler's API follows.
let urgent = try InvoiceRemind(
    jsonValue: ["invoice_id": "0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d", "channel": "sms", "urgent": true]
)
check(urgent.urgent == true, "new client event field urgent: \(urgent)")
check(
    InvoiceRemindAck(queued: true, position: 3).jsonValue.jsonString == #"{"queued":true,"position":3}"#,
    "new ack field position"
)
#endif

#if CONSUMER_EDITED_CATALOG
// tools/test-consumer adds a field and an event to a copy of the catalog and builds with this flag: the new
// names only exist if the plugin regenerated the code from the edited events.yaml.
let voided = InvoiceVoided(invoiceID: invoiceID, reason: "duplicate")
await emitter.emit(voided, toRoom: "invoices")
let withNote = InvoiceCreated(
    invoiceID: invoiceID,
    customerID: "c",
    amountCents: 1,
    state: .draft,
    createdAt: Date(timeIntervalSince1970: 0),
    note: "hi"
)
await emitter.emit(withNote, toUser: "7")
let edited = await emitter.sent
check(
    edited[2].event == "invoice:voided"
        && edited[2].json == #"{"invoice_id":"0e5a7c1d-2b3f-4a5b-8c9d-0e1f2a3b4c5d","reason":"duplicate"}"#,
    "new event invoice:voided: \(edited[2].json)"
)
check(edited[3].json.hasSuffix(#","note":"hi"}"#), "new field note: \(edited[3].json)")
#endif

if failures > 0 {
    print("\(failures) check(s) failed")
    exit(1)
}
print("consumer-check: all checks passed")
