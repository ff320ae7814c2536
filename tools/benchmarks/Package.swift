// swift-tools-version: 6.1
// Benchmarks of SocketGateway, kept out of the main package's dependency graph: the load tool
// (`socket-gateway-load`) and package-benchmark micro-benchmarks. The server under test is the main package's
// `socket-gateway serve`, built from here as a dependency product.
// Run everything with `tools/bench` from the repository root; see the "Performance" section of the top-level README.md.
import PackageDescription

let package = Package(
    name: "SocketGatewayBenchmarks",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "socket-gateway-load", targets: ["socket-gateway-load"]),
        .executable(name: "socket-gateway-mounted", targets: ["socket-gateway-mounted"]),
    ],
    dependencies: [
        .package(name: "SocketGateway", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The load generator: N Socket.IO WebSocket clients plus an emitter through WorkerSocketGateway.
        .executableTarget(
            name: "socket-gateway-load",
            dependencies: [
                .product(name: "SocketGatewayCore", package: "SocketGateway"),
                .product(name: "SocketGatewayWorker", package: "SocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                "CZlibLoad",
            ]
        ),
        // System zlib for the load tool's permessage-deflate (--deflate): it inflates what the server compressed.
        .systemLibrary(name: "CZlibLoad", path: "Sources/CZlibLoad", providers: [.apt(["zlib1g-dev"])]),
        // The server under test mounted on a Hummingbird 2 application (tools/bench --only mounted), configured from
        // the same environment as `socket-gateway serve`.
        .executableTarget(
            name: "socket-gateway-mounted",
            dependencies: [
                .product(name: "SocketGatewayServer", package: "SocketGateway"),
                .product(name: "SocketGatewayHummingbird", package: "SocketGateway"),
                .product(name: "SocketGatewayPrometheus", package: "SocketGateway"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Micro-benchmarks of the hot paths, with allocation counts (`swift package benchmark`).
        .executableTarget(
            name: "SocketGatewayBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SocketGatewayCore", package: "SocketGateway"),
                .product(name: "SocketGatewayServer", package: "SocketGateway"),
                .product(name: "SocketGatewayWorker", package: "SocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/SocketGatewayBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
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
