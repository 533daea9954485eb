import Testing

@Test func placeholder_CaissonTOMLTests() { #expect(1 + 1 == 2) }
