import CaissonCore
import CaissonSimulator
import Testing

/// Issue 15's fault kinds in the swarm: the new release arrives encrypted, intact or damaged on
/// the stick (a flipped bit in a chunk, cut short at a chunk boundary, encrypted to another
/// device, changed after validation). A damaged one is refused with its code before the update
/// begins and never leaves an image; an intact one loads and updates.
@Suite("Simulator: encrypted packages in the swarm")
struct SimulatorEncryptedSwarmTests {
    static let config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "healthy")

    @Test func anIntactEncryptedPackageLoadsAndTheUpdateRuns() throws {
        let s = UpdateScenario(UpdateScenario.World(Self.config, encrypted: true))
        #expect(s.host.image(s.newImageID) == nil)
        let a = try #require(s.run(encrypted: EncryptedImportPlan(damage: .none)))
        #expect(a.status == .succeeded)
        #expect(s.encryptedLoaded && s.refusal == nil)
        #expect(s.host.image(s.newImageID) != nil && s.host.callCount(of: .loadImage) == 1)
        #expect(s.violations().isEmpty, "\(s.violations())")
    }

    @Test(arguments: [EncryptedImportPlan.Damage.flippedChunk, .truncated, .wrongKey, .changedAfterValidation, .swapped],
          0..<EncryptedStick.chunks)
    func aDamagedEncryptedPackageIsRefusedAndNothingChanges(damage: EncryptedImportPlan.Damage, chunk: Int) throws {
        let s = UpdateScenario(UpdateScenario.World(Self.config, encrypted: true))
        let before = s.host.snapshot.containers
        let plan = EncryptedImportPlan(damage: damage, chunk: chunk)
        #expect(s.run(encrypted: plan) == nil)
        #expect(s.refusal?.code == plan.expectedRefusal, "\(plan): \(String(describing: s.refusal))")
        // Only a package changed after validation reaches the host, whose own decryption refuses it.
        #expect(s.host.callCount(of: .loadImage) == (damage == .changedAfterValidation ? 1 : 0))
        #expect(s.host.image(s.newImageID) == nil && !s.encryptedLoaded)
        #expect(s.host.snapshot.containers == before && s.journal.attempts.isEmpty)
        #expect(s.violations().isEmpty, "\(s.violations())")
    }

    @Test func aSwappedAgeFileIsCaughtOnlyByTheAgeFilesOwnBinding() throws {
        // It decrypts with the device's key to the signed plaintext: the ciphertext binding (the
        // validator's check, one code path) is what refuses it.
        let stick = EncryptedStick.shared
        #expect(stick.forDeviceAgain != stick.forDevice)
        #expect(SHA256.hash(stick.forDeviceAgain).hex != stick.ciphertextSHA256)
        let issues = PackageValidator.checkAgeFileBinding(size: Int64(stick.forDeviceAgain.count), sha256: SHA256.hash(stick.forDeviceAgain).hex,
                                                          declaredSize: stick.ciphertextSize, declaredSHA256: stick.ciphertextSHA256)
        #expect(issues.map(\.code) == ["encryption.checksum_mismatch"])
        #expect(PackageValidator.checkAgeFileBinding(size: stick.ciphertextSize, sha256: stick.ciphertextSHA256,
                                                     declaredSize: stick.ciphertextSize, declaredSHA256: stick.ciphertextSHA256).isEmpty)
        let s = UpdateScenario(UpdateScenario.World(Self.config, encrypted: true))
        #expect(s.run(encrypted: EncryptedImportPlan(damage: .swapped)) == nil)
        #expect(s.refusal?.code == "encryption.checksum_mismatch")
    }

    @Test func theInvariantsCatchADamagedPackageThatLeftAnImage() throws {
        // An updater that loaded what did not authenticate: the checker objects.
        let s = UpdateScenario(UpdateScenario.World(Self.config, encrypted: true))
        _ = s.run(encrypted: EncryptedImportPlan(damage: .flippedChunk, chunk: 1))
        try s.host.addImage(id: s.newImageID, tags: [UpdateScenario.newReference])
        #expect(s.violations().contains { $0.contains("left an image behind") })
    }

    @Test func theSwarmDrawsEncryptedPackagesAndTheirDamageWithoutViolations() {
        let summary = Swarm.run(runs: 600, seed: 15)
        #expect(summary.violations == 0, "first violation: \(String(describing: summary.firstViolation))")
        #expect(summary.encryptedPackages > 25 && summary.encryptedRefused > 15)
    }
}
