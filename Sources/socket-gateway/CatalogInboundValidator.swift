import SocketGatewayCore
import SocketGatewayServer
import _EventCodegenCore

/// `serve --catalog`: checks other hosts' events against an events.yaml loaded at start, with the payload
/// validator `emit --catalog` uses (unknown keys are refused too).
struct CatalogInboundValidator: InboundEventValidator {
    let catalog: Catalog
    private let namespaces: [String: String]

    init(catalog: Catalog) {
        self.catalog = catalog
        self.namespaces = Dictionary(
            catalog.events.map { ($0.name, $0.namespace) },
            uniquingKeysWith: { first, _ in first }
        )
    }

    func rejection(event: String, namespace: String, arguments: [JSONValue]) -> InboundEventRejection? {
        guard let expected = self.namespaces[event] else {
            return InboundEventRejection(
                reason: .unknownEvent,
                message: "\(event): not an event of the \(self.catalog.name) catalog"
            )
        }
        guard expected == namespace else {
            return InboundEventRejection(
                reason: .wrongNamespace,
                message: "\(event): belongs to namespace \(expected), not \(namespace)"
            )
        }
        guard arguments.count == 1 else {
            return InboundEventRejection(
                reason: .invalidPayload,
                message: "\(event): expected exactly one argument (the payload), found \(arguments.count)"
            )
        }
        do {
            try self.catalog.validate(event: event, payload: PayloadValue(arguments[0]), namespace: namespace)
            return nil
        } catch {
            return InboundEventRejection(reason: .invalidPayload, message: error.description)
        }
    }
}
