import Foundation
import Testing

@testable import _EventCodegenCore

/// The AsyncAPI export is a connected document: every `$ref` resolves, each operation's messages and reply messages
/// belong to its channel (AsyncAPI 3.0 requires it of both), server events are `send` and client events `receive`,
/// and exactly the events with an ack have a reply.
@Suite struct AsyncAPIReferenceTests {
    @Test(arguments: GoldenTests.catalogs)
    func everyReferenceResolvesAndRepliesBelongToTheirChannel(catalog name: String) throws {
        let input = InputFile(path: "events.yaml", contents: try readFixture("golden/\(name)/events.yaml"))
        let catalog = try GeneratorPipeline.parseCatalog(input)
        let json = GeneratorPipeline.render(catalog, as: .asyncapiJSON)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])

        var references: [String] = []
        Self.collectReferences(document, into: &references)
        #expect(!references.isEmpty)
        for reference in references {
            #expect(Self.resolve(reference, in: document) != nil, "\(reference) does not resolve")
        }

        let operations = try #require(document["operations"] as? [String: [String: Any]])
        var expected: [String: (action: String, hasReply: Bool)] = [:]
        for event in catalog.events { expected["emit\(event.typeName)"] = ("send", event.ack != nil) }
        for event in catalog.clientEvents { expected["receive\(event.typeName)"] = ("receive", event.ack != nil) }
        #expect(Set(operations.keys) == Set(expected.keys))
        for (id, operation) in operations {
            #expect(operation["action"] as? String == expected[id]?.action, "\(id)")
            let channel = try #require((operation["channel"] as? [String: String])?["$ref"])
            for message in Self.messageReferences(operation["messages"]) {
                #expect(message.hasPrefix(channel + "/messages/"), "\(id): \(message) is not in \(channel)")
            }
            let reply = operation["reply"] as? [String: Any]
            #expect((reply != nil) == expected[id]?.hasReply, "\(id)")
            guard let reply else { continue }
            let replyChannel = try #require((reply["channel"] as? [String: String])?["$ref"])
            let replyMessages = Self.messageReferences(reply["messages"])
            #expect(replyMessages.count == 1, "\(id)")
            for message in replyMessages {
                #expect(message.hasPrefix(replyChannel + "/messages/"), "\(id): \(message) is not in \(replyChannel)")
                #expect(message.hasSuffix("Ack"), "\(id): \(message)")
            }
        }
    }

    private static func messageReferences(_ value: Any?) -> [String] {
        (value as? [[String: String]] ?? []).compactMap { $0["$ref"] }
    }

    private static func collectReferences(_ value: Any, into references: inout [String]) {
        if let object = value as? [String: Any] {
            if let reference = object["$ref"] as? String { references.append(reference) }
            for member in object.values { Self.collectReferences(member, into: &references) }
        } else if let array = value as? [Any] {
            for item in array { Self.collectReferences(item, into: &references) }
        }
    }

    /// Follows a local JSON pointer (`#/a/b`), as the document's `$ref`s are written.
    private static func resolve(_ reference: String, in document: [String: Any]) -> Any? {
        guard reference.hasPrefix("#/") else { return nil }
        var current: Any = document
        for component in reference.dropFirst(2).split(separator: "/") {
            let key = component.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let object = current as? [String: Any], let next = object[key] else { return nil }
            current = next
        }
        return current
    }
}
