/// A value behind a reference that is copied only when written while shared. The update
/// machine's attempt record rides along in every journal write (and in every snapshot of the
/// machine); sharing it makes those copies one retain instead of one per string, and the record
/// is copied only when the machine actually changes it.
struct CopyOnWrite<Value> {
    final class Storage {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    private var storage: Storage

    init(_ value: Value) { storage = Storage(value) }

    var value: Value {
        _read { yield storage.value }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.value) }
            yield &storage.value
        }
    }
}

// The storage is only ever mutated through `value`'s `_modify`, which first makes it unique:
// a shared storage is immutable, so sharing it across threads is as safe as sharing the value.
extension CopyOnWrite: @unchecked Sendable where Value: Sendable {}

extension CopyOnWrite: Equatable where Value: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage === rhs.storage || lhs.value == rhs.value }
}

/// Encodes exactly as the value does.
extension CopyOnWrite: Codable where Value: Codable {
    init(from decoder: any Decoder) throws { self.init(try Value(from: decoder)) }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
