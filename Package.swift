// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SocketGateway",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SocketGatewayCore", targets: ["SocketGatewayCore"]),
        .library(name: "SocketGatewayServer", targets: ["SocketGatewayServer"]),
        .executable(name: "socket-gateway-conformance", targets: ["socket-gateway-conformance"]),
        .library(name: "SocketGatewayWorker", targets: ["SocketGatewayWorker"]),
        .executable(name: "socket-gateway-codegen", targets: ["socket-gateway-codegen"]),
        .plugin(name: "SocketGatewayEventsPlugin", targets: ["SocketGatewayEventsPlugin"]),
        .executable(name: "socket-gateway", targets: ["socket-gateway"]),
        .library(name: "SocketGatewayPrometheus", targets: ["SocketGatewayPrometheus"]),
        .library(name: "SocketGatewayHummingbird", targets: ["SocketGatewayHummingbird"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        // Pure codecs and value types: Engine.IO, Socket.IO, JSON, the emit protocol. No I/O.
        .target(
            name: "SocketGatewayCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP/1.1 + WebSocket server and Engine.IO v4 sessions (polling, WebSocket, upgrade, heartbeat).
        // Not a product: `package` API for the server, the conformance tool and tests; SocketGatewayServer
        // re-exports the few public types a server user passes in (CORSPolicy, HTTPFallbackResponder/Response).
        .target(
            name: "SocketGatewayEngineIO",
            dependencies: [
                "SocketGatewayCore",
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // zlib's raw DEFLATE for WebSocket permessage-deflate (RFC 7692); only WebSocketDeflate.swift touches it.
        // No pkgConfig: zlib.pc's cflags carry -D_FILE_OFFSET_BITS=64, which SwiftPM refuses with a warning; the
        // header is in /usr/include and the modulemap links libz.
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // The Socket.IO server on SwiftNIO: transports, sessions, namespaces, rooms, acks, auth.
        .target(
            name: "SocketGatewayServer",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayEngineIO",
                "SocketGatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // `/metrics` in Prometheus text format (swift-prometheus): a responder for the server's listener and a
        // listener of its own. A separate product, so a server user who does not want Prometheus does not build it.
        .target(
            name: "SocketGatewayPrometheus",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayServer",
                "SocketGatewayEngineIO",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SocketGatewayPrometheusTests",
            dependencies: [
                "SocketGatewayPrometheus",
                "SocketGatewayServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Socket.IO mounted on a Hummingbird 2 application: same port, the app's router for everything else.
        // A product of its own: only users who depend on it build Hummingbird.
        .target(
            name: "SocketGatewayHummingbird",
            dependencies: [
                "SocketGatewayServer",
                "SocketGatewayEngineIO",
                "SocketGatewayCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // hiredis (Debian libhiredis-dev): only its RESP reply reader is used.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Redis over SwiftNIO: URL parsing, pipelined publisher, subscriber with reconnect and liveness check, TLS.
        // Not a product: the server and the worker use it; the worker re-exports RedisPublisherStatus.
        .target(
            name: "SocketGatewayRedis",
            dependencies: [
                "SocketGatewayCore",
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // The write-only worker gateway: emits through Redis, lazy connect, bounded outbox. Never links the server.
        .target(
            name: "SocketGatewayWorker",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Test kit: a real redis-server process on a free loopback port, stoppable and restartable mid-test.
        .target(
            name: "SocketGatewayRedisTestKit",
            dependencies: [
                "SocketGatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SocketGatewayRedisTestKit"
        ),
        .testTarget(
            name: "SocketGatewayRedisTests",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayRedis",
                "SocketGatewayRedisTestKit",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SocketGatewayWorkerTests",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayWorker",
                "SocketGatewayRedis",
                "SocketGatewayRedisTestKit",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The server configured exactly as the official Engine.IO / Socket.IO protocol test suites expect.
        .executableTarget(
            name: "socket-gateway-conformance",
            dependencies: [
                "SocketGatewayServer",
                "SocketGatewayEngineIO",
                "SocketGatewayHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // A real SocketServer with handlers that the Python interop tests (Tests/Interop) drive. Not a product.
        // Its events.yaml (typed client events and acks) is compiled by SocketGatewayEventsPlugin.
        .executableTarget(
            name: "socket-gateway-interop-server",
            dependencies: [
                "SocketGatewayServer",
                "SocketGatewayCore",
                "SocketGatewayHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Tests/InteropServer",
            plugins: ["SocketGatewayEventsPlugin"]
        ),
        // libyaml (Debian libyaml-dev): the event catalog parser.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // The event catalog code generator: events.yaml -> Swift, TypeScript, AsyncAPI. No NIO.
        .target(
            name: "_EventCodegenCore",
            dependencies: ["CYAML"]
        ),
        // The version every executable prints with --version: one constant, no dependencies.
        .target(name: "SocketGatewayVersion"),
        // The tool the build plugin runs: paths in, files out, diagnostics on stderr.
        .executableTarget(
            name: "socket-gateway-codegen",
            dependencies: ["_EventCodegenCore", "SocketGatewayVersion"]
        ),
        // The `socket-gateway` command: serve, emit (worker), tail, check, export.
        .executableTarget(
            name: "socket-gateway",
            dependencies: [
                "SocketGatewayCore",
                "SocketGatewayServer",
                "SocketGatewayRedis",
                "SocketGatewayWorker",
                "SocketGatewayVersion",
                "SocketGatewayPrometheus",
                "_EventCodegenCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Build-tool plugin: finds a target's events.yaml and generates its typed events.
        .plugin(
            name: "SocketGatewayEventsPlugin",
            capability: .buildTool(),
            dependencies: ["socket-gateway-codegen"]
        ),
        // A target that applies the plugin to a fixture catalog, so tests can call the generated code.
        .target(
            name: "GeneratedEventsFixture",
            dependencies: ["SocketGatewayCore"],
            path: "Tests/GeneratedEventsFixture",
            plugins: ["SocketGatewayEventsPlugin"]
        ),
        // The same for the both-ways catalog (client events and acks), so tests call its client event types too.
        .target(
            name: "GeneratedBothWaysFixture",
            dependencies: ["SocketGatewayCore"],
            path: "Tests/GeneratedBothWaysFixture",
            plugins: ["SocketGatewayEventsPlugin"]
        ),
        // The demo's event catalog: the top-level events.yaml (symlinked), compiled by SocketGatewayEventsPlugin.
        .target(
            name: "SheetSyncEvents",
            dependencies: ["SocketGatewayCore"],
            plugins: ["SocketGatewayEventsPlugin"]
        ),
        // The main-job demo run by tools/demo: `server` (page, token + job API, Socket.IO) and `worker` (sheet syncs).
        .executableTarget(
            name: "sheet-sync-demo",
            dependencies: [
                "SheetSyncEvents",
                "SocketGatewayServer",
                "SocketGatewayWorker",
                "SocketGatewayRedis",
                "SocketGatewayVersion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Public")]
        ),
        .testTarget(
            name: "EventCodegenTests",
            dependencies: [
                "_EventCodegenCore", "GeneratedEventsFixture", "GeneratedBothWaysFixture", "SocketGatewayCore",
                // ChildProcess: runs tsc without holding a thread of the cooperative pool.
                "SocketGatewayRedisTestKit",
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SocketGatewayCoreTests",
            dependencies: ["SocketGatewayCore"]
        ),
        .testTarget(
            name: "SocketGatewayEngineIOTests",
            dependencies: [
                "SocketGatewayEngineIO",
                "SocketGatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SocketGatewayServerTests",
            dependencies: [
                "SocketGatewayServer",
                "SocketGatewayEngineIO",
                "SheetSyncEvents",
                "GeneratedBothWaysFixture",
                "SocketGatewayRedis",
                "SocketGatewayRedisTestKit",
                "SocketGatewayWorker",
                "SocketGatewayHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
    ]
)

for target in package.targets where target.type != .system && target.type != .plugin {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
