import Testing

@Test func placeholder_CaissonStoreTests() { #expect(1 + 1 == 2) }
