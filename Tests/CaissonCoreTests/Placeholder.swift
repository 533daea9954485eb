import Testing

@Test func placeholder_CaissonCoreTests() { #expect(1 + 1 == 2) }
