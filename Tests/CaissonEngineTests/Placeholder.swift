import Testing

@Test func placeholder_CaissonEngineTests() { #expect(1 + 1 == 2) }
