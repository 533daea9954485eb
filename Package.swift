// swift-tools-version:6.0
// Caisson: offline updater for Docker services on air-gapped edge devices.
// No third-party packages: the toolchain plus two system C libraries (SQLite, libcrypto).
import PackageDescription

let package = Package(
    name: "Caisson",
    products: [
        .executable(name: "caisson", targets: ["CaissonCLI"]),
        .executable(name: "toml-test-decoder", targets: ["TOMLTestDecoder"]),
        .library(name: "CaissonApp", targets: ["CaissonApp"]),
    ],
    targets: [
        // System libraries (pkg-config names; Debian: libsqlite3-dev, libssl-dev).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),

        // TOML 1.0 parser and typed decoding. Pure, no dependencies.
        .target(name: "CaissonTOML"),
        // Pure logic: domain types, package validation, tar/image inspection, the update
        // state machine, the ContainerHost protocol. No wall clock, no randomness.
        .target(name: "CaissonCore", dependencies: ["CaissonTOML", "COpenSSL"]),
        // SQLite store: records, journal, audit log.
        .target(name: "CaissonStore", dependencies: ["CaissonCore", "CSQLite", "COpenSSL"]),
        // The in-process deterministic simulator (a ContainerHost).
        .target(name: "CaissonSimulator", dependencies: ["CaissonCore"], path: "Simulator"),
        // The real Docker body: Engine API over the unix socket, Compose driver.
        .target(name: "CaissonDocker", dependencies: ["CaissonCore"]),
        // Application logic shared by the CLI (and a future GUI).
        .target(name: "CaissonApp",
                dependencies: ["CaissonCore", "CaissonStore", "CaissonSimulator", "CaissonDocker"]),
        .executableTarget(name: "CaissonCLI", dependencies: ["CaissonApp"]),
        .executableTarget(name: "TOMLTestDecoder", dependencies: ["CaissonTOML"]),

        .testTarget(name: "CaissonTOMLTests", dependencies: ["CaissonTOML"]),
        .testTarget(name: "CaissonCoreTests", dependencies: ["CaissonCore", "CaissonTOML"]),
        .testTarget(name: "CaissonStoreTests", dependencies: ["CaissonStore", "CaissonCore"]),
        .testTarget(name: "CaissonEngineTests",
                    dependencies: ["CaissonCore", "CaissonSimulator", "CaissonStore"]),
        .testTarget(name: "CaissonDockerTests",
                    dependencies: ["CaissonDocker", "CaissonCore", "CaissonSimulator"]),
        .testTarget(name: "CaissonCLITests", dependencies: ["CaissonCore"]),
        .testTarget(name: "CaissonAppTests", dependencies: ["CaissonApp", "CaissonCore", "CaissonSimulator"]),
    ],
    swiftLanguageModes: [.v6]
)
