// swift-tools-version:6.0
// Caisson: offline updater for Docker services on air-gapped edge devices.
// No third-party packages: the toolchain plus three system C libraries (SQLite, libcrypto, zlib).
import PackageDescription

let package = Package(
    name: "Caisson",
    products: [
        .executable(name: "caisson", targets: ["CaissonCLI"]),
        .executable(name: "toml-test-decoder", targets: ["TOMLTestDecoder"]),
        .library(name: "CaissonApp", targets: ["CaissonApp"]),
        .library(name: "CaissonConsole", targets: ["CaissonConsole"]),
    ],
    targets: [
        // System libraries (pkg-config names; Debian: libsqlite3-dev, libssl-dev, zlib1g-dev).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // TOML 1.0 parser and typed decoding. Pure, no dependencies.
        .target(name: "CaissonTOML"),
        // Pure logic: domain types, package validation, tar/image inspection, the update
        // state machine, the ContainerHost protocol. No wall clock, no randomness.
        .target(name: "CaissonCore", dependencies: ["CaissonTOML", "COpenSSL", "CZlib"]),
        // SQLite store: records, journal, audit log.
        .target(name: "CaissonStore", dependencies: ["CaissonCore", "CSQLite", "COpenSSL"]),
        // The in-process deterministic simulator (a ContainerHost).
        .target(name: "CaissonSimulator", dependencies: ["CaissonCore"], path: "Simulator"),
        // HTTP/1.1 over stream sockets (unix and TCP): the wire codec and sockets shared by the
        // Docker client and the console's server, and that server. No dependencies.
        .target(name: "CaissonHTTP"),
        // The real Docker body: Engine API over the unix socket, Compose driver.
        .target(name: "CaissonDocker", dependencies: ["CaissonCore", "CaissonHTTP"]),
        // Application logic shared by the CLI (and a future GUI).
        .target(name: "CaissonApp",
                dependencies: ["CaissonCore", "CaissonStore", "CaissonSimulator", "CaissonDocker"]),
        // The console: a local web page over CaissonApp, served by CaissonHTTP (assets embedded).
        .target(name: "CaissonConsole", dependencies: ["CaissonApp", "CaissonHTTP", "COpenSSL"]),
        .executableTarget(name: "CaissonCLI", dependencies: ["CaissonApp", "CaissonConsole"]),
        .executableTarget(name: "TOMLTestDecoder", dependencies: ["CaissonTOML"]),

        .testTarget(name: "CaissonTOMLTests", dependencies: ["CaissonTOML"]),
        .testTarget(name: "CaissonCoreTests", dependencies: ["CaissonCore", "CaissonTOML"]),
        .testTarget(name: "CaissonStoreTests", dependencies: ["CaissonStore", "CaissonCore"]),
        .testTarget(name: "CaissonEngineTests",
                    dependencies: ["CaissonCore", "CaissonSimulator", "CaissonStore"]),
        .testTarget(name: "CaissonDockerTests",
                    dependencies: ["CaissonDocker", "CaissonHTTP", "CaissonCore", "CaissonSimulator"]),
        .testTarget(name: "CaissonCLITests", dependencies: ["CaissonCore"]),
        .testTarget(name: "CaissonConsoleTests",
                    dependencies: ["CaissonConsole", "CaissonHTTP", "CaissonApp", "CaissonCore", "CaissonStore", "CaissonSimulator"]),
        .testTarget(name: "CaissonAppTests", dependencies: ["CaissonApp", "CaissonCore", "CaissonSimulator"]),
    ],
    swiftLanguageModes: [.v6]
)
