import Testing

@Test func placeholder_CaissonDockerTests() { #expect(1 + 1 == 2) }
