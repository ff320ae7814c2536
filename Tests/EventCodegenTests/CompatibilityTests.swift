import Foundation
import Testing

@testable import _EventCodegenCore

/// `CatalogCompatibility.compare(old:new:)`, one rule per test: an old catalog, the same catalog with one change,
/// and the exact findings (`file:line:col: severity: message`) with whom they break.
@Suite struct CompatibilityTests {
    /// The old catalog every test starts from. Line numbers matter: the expectations point into it.
    static let base = """
        version: 1
        name: Shop
        types:
          Stage:
            enum: [queued, running, done]
          Item:
            fields:
              sku: string
              note: string?
        events:
          order:updated:
            summary: An order changed.
            payload:
              order_id: uuid
              stage: Stage
              count: int
              comment: string?
              items: [Item]
              place:
                fields:
                  city: string
          order:deleted:
            summary: An order was deleted.
            payload:
              order_id: uuid
              last_stage: Stage

        """

    static func located(_ text: String, path: String) throws -> LocatedCatalog {
        try LocatedCatalog(InputFile(path: path, contents: Array(text.utf8)))
    }

    /// The findings for `base` → `new`.
    static func compare(_ new: String, old: String = Self.base) throws -> [CompatibilityFinding] {
        CatalogCompatibility.compare(
            old: try Self.located(old, path: "old.yaml"),
            new: try Self.located(new, path: "new.yaml")
        )
    }

    /// `base` with `original` replaced by `replacement` (which must occur exactly once).
    static func changed(_ original: String, _ replacement: String, in text: String = Self.base) -> String {
        precondition(text.components(separatedBy: original).count == 2, "'\(original)' must occur once")
        return text.replacing(original, with: replacement)
    }

    @Test func anUnchangedCatalogHasNoFindings() throws {
        let reordered = Self.changed(
            "      count: int\n      comment: string?\n",
            "      comment: string?\n      count:\n        type: int\n        summary: Pieces.\n"
        )
        let findings = try Self.compare(reordered)
        #expect(findings.isEmpty)
        #expect(
            CatalogCompatibility.summary(findings, old: "old.yaml", new: "new.yaml")
                == "new.yaml against old.yaml: no changes on the wire"
        )
    }

    @Test func aRemovedEventBreaksClientsAndWorkers() throws {
        let new = Self.base.components(separatedBy: "  order:deleted:")[0]
        let findings = try Self.compare(new)
        #expect(
            findings.map(\.description) == [
                "old.yaml:22:3: breaking: server→client event 'order:deleted': event removed; breaks "
                    + "workers/publishers: "
                    + "workers/publishers on the old catalog still emit it, and `serve --catalog` refuses events "
                    + "outside "
                    + "the catalog; breaks deployed clients: deployed clients listening for it never receive it again"
            ]
        )
        #expect(findings.map(\.breaks) == [[.deployedClients, .publishers]])
        #expect(findings.map(\.kind) == [.eventRemoved])
    }

    @Test func anAddedEventIsSafe() throws {
        let new = Self.base + "  order:created:\n    summary: New.\n    payload:\n      order_id: uuid\n"
        let findings = try Self.compare(new)
        #expect(
            findings.map(\.description) == ["new.yaml:27:3: safe: server→client event 'order:created': event added"]
        )
        #expect(findings.map(\.severity) == [.safe])
        #expect(
            CatalogCompatibility.summary(findings, old: "old.yaml", new: "new.yaml")
                == "new.yaml against old.yaml: 0 breaking, 1 safe"
        )
    }

    @Test func aChangedNamespaceBreaksClientsAndWorkers() throws {
        let new = Self.changed(
            "    summary: An order was deleted.\n",
            "    summary: An order was deleted.\n    namespace: /admin\n"
        )
        let findings = try Self.compare(new)
        #expect(
            findings.map(\.description) == [
                "new.yaml:24:16: breaking: server→client event 'order:deleted': namespace changed from / to /admin; "
                    + "breaks workers/publishers: workers/publishers on the old catalog emit it in /, where "
                    + "`serve --catalog` refuses it; breaks deployed clients: deployed clients listen for it in /"
            ]
        )
    }

    @Test func aCatalogWideNamespaceIsLocatedAtItsLine() throws {
        let new = Self.changed("name: Shop\n", "name: Shop\nnamespace: /shop\n")
        let findings = try Self.compare(new)
        #expect(findings.map(\.kind) == [.namespaceChanged, .namespaceChanged])
        #expect(findings.map(\.location) == [SourceLocation(line: 3, column: 12), SourceLocation(line: 3, column: 12)])
    }

    @Test func aRemovedRequiredFieldBreaksClientsAndWorkers() throws {
        let findings = try Self.compare(Self.changed("      count: int\n", ""))
        #expect(
            findings.map(\.description) == [
                "old.yaml:16:7: breaking: server→client event 'order:updated' $.count: required field 'count' removed; "
                    + "breaks workers/publishers: workers/publishers on the old catalog still send it, and "
                    + "`serve --catalog` refuses unknown keys; breaks deployed clients: deployed clients require it, "
                    + "and it is no longer sent"
            ]
        )
    }

    @Test func aRemovedOptionalFieldBreaksOnlyWorkersUnderServeCatalog() throws {
        let findings = try Self.compare(Self.changed("      comment: string?\n", ""))
        #expect(findings.map(\.kind) == [.fieldRemoved])
        #expect(findings.map(\.breaks) == [[.publishers]])
        #expect(findings.map(\.location) == [SourceLocation(line: 17, column: 7)])
    }

    @Test func aRenamedFieldIsOneFinding() throws {
        let findings = try Self.compare(Self.changed("      count: int\n", "      quantity: int\n"))
        #expect(
            findings.map(\.description) == [
                "new.yaml:16:7: breaking: server→client event 'order:updated' $.quantity: field 'count' renamed to "
                    + "'quantity'; breaks workers/publishers: workers/publishers on the old catalog send 'count', and "
                    + "`serve --catalog` refuses payloads without 'quantity'; breaks deployed clients: deployed "
                    + "clients require 'count', which is no longer sent"
            ]
        )
    }

    @Test func aNewRequiredFieldBreaksOldWorkersOnly() throws {
        let findings = try Self.compare(
            Self.changed("      count: int\n", "      count: int\n      currency: string\n")
        )
        #expect(
            findings.map(\.description) == [
                "new.yaml:17:7: breaking: server→client event 'order:updated' $.currency: required field 'currency' "
                    + "added; breaks workers/publishers: workers/publishers on the old catalog do not send it, and "
                    + "`serve --catalog` refuses payloads without it"
            ]
        )
    }

    @Test func aNewOptionalFieldIsSafe() throws {
        let findings = try Self.compare(
            Self.changed("      count: int\n", "      count: int\n      currency: string?\n")
        )
        #expect(
            findings.map(\.description) == [
                "new.yaml:17:7: safe: server→client event 'order:updated' $.currency: optional field 'currency' added"
            ]
        )
    }

    @Test func optionalToRequiredBreaksWorkers() throws {
        let findings = try Self.compare(Self.changed("      comment: string?\n", "      comment: string\n"))
        #expect(
            findings.map(\.description) == [
                "new.yaml:17:16: breaking: server→client event 'order:updated' $.comment: 'comment' is now required "
                    + "(string? → string); breaks workers/publishers: workers/publishers on the old catalog may "
                    + "leave it out, and `serve --catalog` refuses payloads without it"
            ]
        )
    }

    @Test func requiredToOptionalBreaksClients() throws {
        let new = Self.changed("      count: int\n", "      count:\n        type: int?\n        summary: Pieces.\n")
        let findings = try Self.compare(new)
        #expect(
            findings.map(\.description) == [
                "new.yaml:17:15: breaking: server→client event 'order:updated' $.count: 'count' is now optional "
                    + "(int → int?); breaks deployed clients: deployed clients require it, and it may now be left out"
            ]
        )
    }

    @Test func aChangedTypeBreaksWhicheverSideCannotReadTheOther() throws {
        let incompatible = try Self.compare(Self.changed("      count: int\n", "      count: string\n"))
        #expect(
            incompatible.map(\.description) == [
                "new.yaml:16:14: breaking: server→client event 'order:updated' $.count: 'count' changed type from "
                    + "int to string; breaks workers/publishers: workers/publishers on the old catalog send int, which "
                    + "`serve --catalog` refuses; breaks deployed clients: deployed clients cannot decode string"
            ]
        )
        // int → double: old workers' integers are valid doubles; old clients cannot read 1.5 as an int.
        let widened = try Self.compare(Self.changed("      count: int\n", "      count: double\n"))
        #expect(widened.map(\.breaks) == [[.deployedClients]])
        // uuid → string: the same, one level of strings; an enum becomes a string the same way.
        let uuid = try Self.compare(
            Self.changed("      order_id: uuid\n      stage", "      order_id: string\n      stage")
        )
        #expect(uuid.map(\.breaks) == [[.deployedClients]])
        let enumToString = try Self.compare(Self.changed("      stage: Stage\n", "      stage: string\n"))
        #expect(enumToString.map(\.breaks) == [[.deployedClients]])
        // string → uuid narrows: old workers may send any string.
        let narrowed = try Self.compare(Self.changed("      sku: string\n", "      sku: uuid\n"))
        #expect(narrowed.map(\.breaks) == [[.publishers]])
        #expect(narrowed.map(\.location) == [SourceLocation(line: 8, column: 12)])
        // A list becomes a single value.
        let list = try Self.compare(Self.changed("      items: [Item]\n", "      items: Item\n"))
        #expect(list.map(\.kind) == [.typeChanged])
        #expect(list.map(\.breaks) == [[.deployedClients, .publishers]])
    }

    @Test func anAddedEnumValueBreaksClientsOfEveryEventThatUsesTheType() throws {
        let findings = try Self.compare(Self.changed("[queued, running, done]", "[queued, running, paused, done]"))
        #expect(
            findings.map(\.description) == [
                "new.yaml:5:29: breaking: server→client event 'order:deleted' $.last_stage (type 'Stage'): enum value "
                    + "'paused' added; breaks deployed clients: deployed clients cannot decode it (generated Swift "
                    + "enums and TypeScript unions are exhaustive)",
                "new.yaml:5:29: breaking: server→client event 'order:updated' $.stage (type 'Stage'): enum value "
                    + "'paused' added; breaks deployed clients: deployed clients cannot decode it (generated Swift "
                    + "enums and TypeScript unions are exhaustive)",
            ]
        )
    }

    @Test func aRemovedEnumValueBreaksWorkers() throws {
        let findings = try Self.compare(Self.changed("[queued, running, done]", "[queued, done]"))
        #expect(findings.map(\.kind) == [.enumValueRemoved, .enumValueRemoved])
        #expect(findings.map(\.breaks) == [[.publishers], [.publishers]])
        #expect(findings.map(\.path) == ["old.yaml", "old.yaml"])
        #expect(findings.map(\.location) == [SourceLocation(line: 5, column: 20), SourceLocation(line: 5, column: 20)])
    }

    @Test func aChangeInsideANamedObjectIsReportedAtTheChangeNamingTheEvent() throws {
        let findings = try Self.compare(Self.changed("      note: string?\n", "      note: string?\n      qty: int\n"))
        #expect(
            findings.map(\.description) == [
                "new.yaml:10:7: breaking: server→client event 'order:updated' $.items[].qty (type 'Item'): required "
                    + "field "
                    + "'qty' added; breaks workers/publishers: workers/publishers on the old catalog do not send it, "
                    + "and `serve --catalog` refuses payloads without it"
            ]
        )
    }

    @Test func aChangeInsideAnInlineObjectIsLocatedInIt() throws {
        let findings = try Self.compare(Self.changed("          city: string\n", "          city: int\n"))
        #expect(findings.map(\.kind) == [.typeChanged])
        #expect(findings.map(\.location) == [SourceLocation(line: 21, column: 17)])
        #expect(findings.first?.message.hasPrefix("server→client event 'order:updated' $.place.city:") == true)
    }

    @Test func anInlineEnumIsComparedLikeANamedOne() throws {
        let old = Self.changed(
            "          city: string\n",
            "          city: string\n          kind:\n            enum: [home, work]\n"
        )
        let new = Self.changed(
            "          city: string\n",
            "          city: string\n          kind:\n            enum: [home]\n"
        )
        let findings = try Self.compare(new, old: old)
        #expect(findings.map(\.kind) == [.enumValueRemoved])
        #expect(findings.map(\.location) == [SourceLocation(line: 23, column: 26)])
    }

    @Test func aNamedTypeReplacedByAnEqualInlineOneIsNoChange() throws {
        let new = Self.changed(
            "      items: [Item]\n",
            "      items:\n        type: '[object]'\n        fields:\n          sku: string\n          note: string?\n"
        )
        #expect(try Self.compare(new).isEmpty)
    }

    @Test func aRecursiveTypeIsComparedOnce() throws {
        let old = """
            version: 1
            name: Tree
            types:
              Node:
                fields:
                  label: string
                  children: [Node]
            events:
              tree:
                summary: A tree.
                payload:
                  root: Node

            """
        let findings = try Self.compare(old.replacingOccurrences(of: "label: string", with: "label: int"), old: old)
        #expect(findings.map(\.kind) == [.typeChanged])
        #expect(findings.first?.message.hasPrefix("server→client event 'tree' $.root.label (type 'Node'):") == true)
    }

    // MARK: Client→server events and acks

    /// An old catalog with an ack in each direction. Line numbers matter.
    static let bothWays = """
        version: 1
        name: Chat
        events:
          message:new:
            summary: A message for the client.
            payload:
              text: string
            ack:
              received: bool
        client_events:
          message:send:
            summary: A client sends a message.
            payload:
              text: string
              mood:
                enum: [happy, sad]
              tag: string?
            ack:
              id: uuid

        """

    static func bothWays(_ original: String, _ replacement: String) throws -> [CompatibilityFinding] {
        try Self.compare(Self.changed(original, replacement, in: Self.bothWays), old: Self.bothWays)
    }

    @Test func aNewRequiredFieldInAClientEventBreaksDeployedClients() throws {
        let findings = try Self.bothWays("      tag: string?\n", "      tag: string?\n      lang: string\n")
        #expect(
            findings.map(\.description) == [
                "new.yaml:18:7: breaking: client→server event 'message:send' $.lang: required field 'lang' added; "
                    + "breaks deployed clients: deployed clients do not send it, and the server refuses payloads "
                    + "without it"
            ]
        )
    }

    @Test func aRemovedClientEventFieldIsSafeBecauseTheServerIgnoresUnknownKeys() throws {
        let findings = try Self.bothWays("      tag: string?\n", "")
        #expect(findings.map(\.kind) == [.fieldRemoved])
        #expect(findings.map(\.severity) == [.safe])
        #expect(findings.map(\.location) == [SourceLocation(line: 17, column: 7)])
        #expect(findings.map(\.direction) == [.clientToServer])
    }

    @Test func clientEventOptionalityFollowsWhoSends() throws {
        let required = try Self.bothWays("      tag: string?\n", "      tag: string\n")
        #expect(required.map(\.kind) == [.fieldBecameRequired])
        #expect(required.map(\.breaks) == [[.deployedClients]])
        let optional = try Self.bothWays("      text: string\n      mood", "      text: string?\n      mood")
        #expect(optional.map(\.kind) == [.fieldBecameOptional])
        #expect(optional.map(\.severity) == [.safe])
    }

    @Test func clientEventEnumValuesMirrorServerEvents() throws {
        let added = try Self.bothWays("[happy, sad]", "[happy, sad, calm]")
        #expect(added.map(\.kind) == [.enumValueAdded])
        #expect(added.map(\.severity) == [.safe])
        let removed = try Self.bothWays("[happy, sad]", "[happy]")
        #expect(
            removed.map(\.description) == [
                "old.yaml:16:23: breaking: client→server event 'message:send' $.mood: enum value 'sad' removed; "
                    + "breaks deployed clients: deployed clients may still send it, and the server refuses it"
            ]
        )
    }

    @Test func removingAClientEventBreaksDeployedClientsAddingOneIsSafe() throws {
        let removed = try Self.compare(
            Self.bothWays.components(separatedBy: "client_events:")[0],
            old: Self.bothWays
        )
        #expect(
            removed.map(\.description) == [
                "old.yaml:11:3: breaking: client→server event 'message:send': event removed; breaks deployed "
                    + "clients: deployed clients still emit it, and the server no longer handles it"
            ]
        )
        let added = try Self.compare(
            Self.bothWays + "  typing:\n    summary: The user is typing.\n",
            old: Self.bothWays
        )
        #expect(added.map(\.kind) == [.eventAdded])
        #expect(added.map(\.severity) == [.safe])
        #expect(added.map(\.direction) == [.clientToServer])
    }

    @Test func aClientEventsNamespaceChangeBreaksDeployedClients() throws {
        let findings = try Self.bothWays(
            "    summary: A client sends a message.\n",
            "    summary: A client sends a message.\n    namespace: /chat\n"
        )
        #expect(findings.map(\.kind) == [.namespaceChanged])
        #expect(findings.map(\.breaks) == [[.deployedClients]])
        #expect(findings.map(\.location) == [SourceLocation(line: 13, column: 16)])
    }

    @Test func aServerEventsAckIsReadByTheServer() throws {
        // Deployed clients answer without the new required field: the server's emitWithAck cannot decode it.
        let added = try Self.bothWays("      received: bool\n", "      received: bool\n      seen_at: datetime\n")
        #expect(
            added.map(\.description) == [
                "new.yaml:10:7: breaking: server→client event 'message:new' ack $.seen_at: required field "
                    + "'seen_at' added; breaks the server: deployed clients do not send it, and the server's "
                    + "emitWithAck refuses payloads without it"
            ]
        )
        // Removing a field from what clients answer: the server ignores the key they still send.
        let removed = try Self.bothWays("    ack:\n      received: bool\n", "    ack:\n      seen: bool?\n")
        #expect(removed.map(\.kind) == [.fieldRemoved, .optionalFieldAdded])
        #expect(removed.allSatisfy { $0.severity == .safe })
    }

    @Test func aClientEventsAckIsReadByDeployedClients() throws {
        let added = try Self.bothWays("      id: uuid\n", "      id: uuid\n      queued: int\n")
        #expect(added.map(\.kind) == [.requiredFieldAdded])
        #expect(added.map(\.severity) == [.safe])
        let removed = try Self.bothWays("      id: uuid\n", "      ref: string\n")
        #expect(removed.map(\.kind) == [.fieldRemoved, .requiredFieldAdded])
        #expect(removed.map(\.breaks) == [[.deployedClients], []])
        #expect(
            removed.first?.description
                == "old.yaml:19:7: breaking: client→server event 'message:send' ack $.id: required field 'id' "
                + "removed; breaks deployed clients: deployed clients require it, and it is no longer sent"
        )
    }

    @Test func addingOrRemovingAnAckFollowsWhoAnswers() throws {
        let withoutAcks = Self.bothWays
            .replacing("    ack:\n      received: bool\n", with: "")
            .replacing("    ack:\n      id: uuid\n", with: "")
        let added = try Self.compare(Self.bothWays, old: withoutAcks)
        #expect(
            added.map(\.description) == [
                "new.yaml:8:5: breaking: server→client event 'message:new' ack: ack added; breaks the server: "
                    + "deployed clients do not answer it, so the server's emitWithAck waits until its timeout",
                "new.yaml:18:5: safe: client→server event 'message:send' ack: ack added",
            ]
        )
        let removed = try Self.compare(withoutAcks, old: Self.bothWays)
        #expect(
            removed.map(\.description) == [
                "old.yaml:8:5: breaking: server→client event 'message:new' ack: ack removed; breaks deployed "
                    + "clients: deployed clients that answer it get no acknowledgement callback",
                "old.yaml:18:5: breaking: client→server event 'message:send' ack: ack removed; breaks deployed "
                    + "clients: deployed clients that ask for it wait for an answer that never comes",
            ]
        )
    }

    @Test func anEventThatChangesDirectionIsRemovedOneWayAndAddedTheOther() throws {
        let new = Self.bothWays.replacing("client_events:\n  message:send:", with: "  message:send:")
        let findings = try Self.compare(new, old: Self.bothWays)
        #expect(findings.map(\.kind) == [.eventAdded, .eventRemoved])
        #expect(findings.map(\.direction) == [.serverToClient, .clientToServer])
    }
}
