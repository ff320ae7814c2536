// swift-tools-version: 6.1
// libFuzzer targets for SocketGateway's decoders, kept out of the main package's dependency graph (like
// tools/benchmarks). Each executable is one `LLVMFuzzerTestOneInput`; they only build with the fuzzer sanitizer:
//
//   swift build -c release -Xswiftc -sanitize=fuzzer,address
//
// Run them with `tools/fuzz/run` from the repository root; see the "Fuzzing" section of the top-level README.md.
import PackageDescription

let package = Package(
    name: "SocketGatewayFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // The main package's SocketGatewayCore compiled from its own sources (a symbolic link): the decoders under
        // test are `package` there, out of reach of another package's products.
        .target(
            name: "SocketGatewayCoreForFuzzing",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer's driver entry point (declared for Swift; defined by -sanitize=fuzzer's runtime).
        .target(name: "CFuzzerDriver"),
        // The libFuzzer driver call and the properties shared by the targets.
        .target(
            name: "FuzzSupport",
            dependencies: [
                "CFuzzerDriver",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Engine.IO packets from WebSocket frames; the first byte chooses a text or a binary frame.
        .executableTarget(
            name: "fuzz-engineio-packet",
            dependencies: [
                "FuzzSupport",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Engine.IO long-polling payloads (records separated by 0x1e, `b<base64>` binary records).
        .executableTarget(
            name: "fuzz-polling-payload",
            dependencies: [
                "FuzzSupport",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The Socket.IO decoder's state machine: a sequence of text and binary messages on one connection.
        .executableTarget(
            name: "fuzz-socketio-packet",
            dependencies: [
                "FuzzSupport",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The JSON parser, and the round trip through both writers (JavaScript's and Python's forms).
        .executableTarget(
            name: "fuzz-json",
            dependencies: [
                "FuzzSupport",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // python-socketio pub/sub messages: decode, encode, decode again.
        .executableTarget(
            name: "fuzz-pubsub",
            dependencies: [
                "FuzzSupport",
                "SocketGatewayCoreForFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // libyaml (Debian libyaml-dev), as the main package declares it: the catalog parser's C dependency.
        .systemLibrary(
            name: "CYAMLForFuzzing",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // The main package's _EventCodegenCore compiled from its own sources (a symbolic link): it is not a product
        // of the main package, so it cannot be a dependency of this one.
        .target(
            name: "EventCodegenCoreForFuzzing",
            dependencies: ["CYAMLForFuzzing"]
        ),
        // The events.yaml pipeline of socket-gateway-codegen: libyaml, catalog parser and validator, renderers.
        .executableTarget(
            name: "fuzz-catalog",
            dependencies: ["FuzzSupport", "EventCodegenCoreForFuzzing"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
