// Micro-benchmarks of SocketGateway's hot paths, with allocation counts:
//   cd tools/benchmarks && swift package --scratch-path .build benchmark
// (tools/bench --micro runs them). The fan-out benchmarks start a real SocketServer in this process with 1000
// WebSocket clients whose bytes a single thread drains with poll()/read() into a fixed buffer, so every
// allocation counted there is the server's. The worker-publish benchmark needs REDIS_URL.

import Benchmark
import Foundation
import Logging
import NIOCore
@_spi(Benchmarks) import SocketGatewayCore
@_spi(Benchmarks) import SocketGatewayEngineIO
import SocketGatewayServer
import SocketGatewayWorker

/// A payload like the load tool's: a send stamp, a sequence number, 64 bytes of padding.
let samplePayload: JSONValue = .object([
    ("t", .int(1_234_567_890_123)), ("seq", .int(42)), ("pad", .string(String(repeating: "x", count: 64))),
])

nonisolated(unsafe) var fanOut: FanOutFixture?
nonisolated(unsafe) var worker: WorkerSocketGateway?

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .cpuTotal],
        scalingFactor: .one,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    Benchmark("Socket.IO EVENT encode + WebSocket frame (encode once per emit)") { benchmark in
        for _ in benchmark.scaledIterations {
            let (text, attachments) = CoreBenchmarkSupport.encodeEvent("tick", [samplePayload])
            blackHole(EngineIOBenchmarkSupport.webSocketFrames(textPayload: text, attachments: attachments))
        }
    }

    let eventText = ByteBuffer(
        string: #"2["tick",{"t":1234567890123,"seq":42,"pad":"\#(String(repeating: "x", count: 64))"}]"#
    )
    Benchmark("Socket.IO EVENT decode") { benchmark in
        var decoder = CoreBenchmarkSupport.EventDecoder()
        for _ in benchmark.scaledIterations {
            blackHole(try decoder.decode(text: eventText))
        }
    }

    let pubSubBytes = CoreBenchmarkSupport.encodePubSubEmit(
        "tick",
        arguments: [samplePayload],
        to: .user("u17"),
        hostID: "0123456789abcdef0123456789abcdef"
    )
    Benchmark("pub/sub message decode (python-socketio emit)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try CoreBenchmarkSupport.decodePubSub(pubSubBytes))
        }
    }

    Benchmark("pub/sub message read, target only (what a server with no member of the room pays)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try CoreBenchmarkSupport.readPubSubTarget(pubSubBytes))
        }
    }

    Benchmark("pub/sub message encode (python-socketio emit)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(
                CoreBenchmarkSupport.encodePubSubEmit(
                    "tick",
                    arguments: [samplePayload],
                    to: .user("u17"),
                    hostID: "0123456789abcdef0123456789abcdef"
                )
            )
        }
    }

    Benchmark(
        "room fan-out: broadcast to 1000 WebSocket clients (per emit)",
        configuration: .init(maxDuration: .seconds(3), maxIterations: 5_000),
        closure: { benchmark in
            guard let fixture = fanOut else { return }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(
                    await fixture.server.gateway.emit(
                        "tick",
                        arguments: [samplePayload],
                        to: .broadcast,
                        options: EmitOptions()
                    )
                )
            }
            benchmark.stopMeasurement()
            fixture.waitForDrain()
        },
        setup: { fanOut = try await FanOutFixture.start(clients: 1000) },
        teardown: {
            try await fanOut?.stop()
            fanOut = nil
        }
    )

    Benchmark(
        "room fan-out: one room of 1 among 1000 clients (per emit)",
        configuration: .init(maxDuration: .seconds(3), maxIterations: 200_000),
        closure: { benchmark in
            guard let fixture = fanOut else { return }
            var index = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                index = (index + 1) % fixture.rooms.count
                blackHole(
                    await fixture.server.gateway.emit(
                        "tick",
                        arguments: [samplePayload],
                        to: .room(fixture.rooms[index]),
                        options: EmitOptions()
                    )
                )
            }
            benchmark.stopMeasurement()
            fixture.waitForDrain()
        },
        setup: { fanOut = try await FanOutFixture.start(clients: 1000) },
        teardown: {
            try await fanOut?.stop()
            fanOut = nil
        }
    )

    // permessage-deflate's CPU cost on a broadcast, side by side: the same 2 KiB event to 1000 clients that offered
    // the extension, with compression off and on (threshold 1024). With it on the server compresses each event
    // once (server_no_context_takeover) and writes the smaller frame 1000 times. Measured until the clients have
    // drained everything, so the compression and the writes are inside cpuTotal.
    let largePayload: JSONValue = .array(
        (0..<32).map { index in
            .object([
                ("cell", .string("R\(index)C\(index % 7)")), ("value", .int(index * 1_000)),
                ("text", .string("row \(index) of the sheet, unchanged since the last sync")),
            ])
        }
    )
    for compression in [nil, SocketWebSocketCompression(threshold: 1024)] {
        Benchmark(
            "room fan-out: 2 KiB broadcast to 1000 clients, permessage-deflate \(compression == nil ? "off" : "on")"
                + " (per 100 emits, drained)",
            // 100 emits per iteration, then one drain: the drain's idle wait is spread over 100 emits.
            configuration: .init(maxDuration: .seconds(8), maxIterations: 100),
            closure: { benchmark in
                guard let fixture = fanOut else { return }
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    for _ in 0..<100 {
                        blackHole(
                            await fixture.server.gateway.emit(
                                "rows",
                                arguments: [largePayload],
                                to: .broadcast,
                                options: EmitOptions()
                            )
                        )
                    }
                }
                fixture.waitForDrain()
                benchmark.stopMeasurement()
            },
            setup: { fanOut = try await FanOutFixture.start(clients: 1000, compression: compression) },
            teardown: {
                try await fanOut?.stop()
                fanOut = nil
            }
        )
    }

    if let redisURL = ProcessInfo.processInfo.environment["REDIS_URL"] {
        Benchmark(
            "worker publish (WorkerSocketGateway.emit, awaited, one at a time)",
            configuration: .init(maxDuration: .seconds(2), maxIterations: 100_000),
            closure: { benchmark in
                guard let worker else { return }
                for _ in benchmark.scaledIterations {
                    blackHole(
                        await worker.emit(
                            "tick",
                            arguments: [samplePayload],
                            to: .room("bench-nobody"),
                            options: EmitOptions()
                        )
                    )
                }
            },
            setup: {
                var logger = Logger(label: "bench")
                logger.logLevel = .warning
                let created = WorkerSocketGateway(redisURL: redisURL, logger: logger)
                _ = await created.emit("warmup", arguments: [], to: .room("bench-nobody"), options: EmitOptions())
                worker = created
            },
            teardown: {
                _ = await worker?.shutdown()
                worker = nil
            }
        )
    } else {
        print("note: set REDIS_URL to also run the worker-publish benchmark")
    }
}
