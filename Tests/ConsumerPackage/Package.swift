// swift-tools-version: 6.1
// A package that uses SocketGateway the way an application does: it depends on the package by path, applies
// SocketGatewayEventsPlugin to its own events target, and calls the generated typed emitters.
// Built and run by tools/test-consumer; never by the main package.
import PackageDescription

let package = Package(
    name: "ConsumerPackage",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "SocketGateway", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        // The application's events module: its events.yaml plus the plugin; depends on the core only.
        .target(
            name: "ConsumerEvents",
            dependencies: [.product(name: "SocketGatewayCore", package: "SocketGateway")],
            plugins: [.plugin(name: "SocketGatewayEventsPlugin", package: "SocketGateway")]
        ),
        // Calls the generated emitters against a recording SocketEmitter and checks the JSON sent.
        .executableTarget(
            name: "consumer-check",
            dependencies: [
                "ConsumerEvents",
                .product(name: "SocketGatewayCore", package: "SocketGateway"),
            ]
        ),
        // A server and a worker as an application writes them, against the public API only (see its main.swift).
        .executableTarget(
            name: "consumer-server-check",
            dependencies: [
                "ConsumerEvents",
                .product(name: "SocketGatewayServer", package: "SocketGateway"),
                .product(name: "SocketGatewayWorker", package: "SocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        ),
    ]
)
