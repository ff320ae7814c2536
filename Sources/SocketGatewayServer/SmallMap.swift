/// A map for a handful of entries (the namespaces one client is in): an array searched linearly.
///
/// Every client holds two such maps for its whole life. A one-entry `Dictionary` costs 120–170 bytes of storage;
/// this costs the array header and the entries. Lookups are linear, which is faster than hashing for the few
/// namespaces a client joins.
struct SmallMap<Key: Equatable, Value>: Sequence, ExpressibleByDictionaryLiteral {
    private var entries: [(key: Key, value: Value)] = []

    init(dictionaryLiteral elements: (Key, Value)...) {
        for (key, value) in elements { self[key] = value }
    }

    var isEmpty: Bool { self.entries.isEmpty }
    var count: Int { self.entries.count }
    var keys: [Key] { self.entries.map(\.key) }

    subscript(key: Key) -> Value? {
        get {
            for entry in self.entries where entry.key == key { return entry.value }
            return nil
        }
        set {
            if let index = self.entries.firstIndex(where: { $0.key == key }) {
                if let newValue {
                    self.entries[index].value = newValue
                } else {
                    self.entries.remove(at: index)
                }
            } else if let newValue {
                self.entries.append((key, newValue))
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard let index = self.entries.firstIndex(where: { $0.key == key }) else { return nil }
        return self.entries.remove(at: index).value
    }

    func makeIterator() -> IndexingIterator<[(key: Key, value: Value)]> {
        self.entries.makeIterator()
    }
}
