import Testing

@Test func placeholder_CaissonCLITests() { #expect(1 + 1 == 2) }
