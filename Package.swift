// swift-tools-version:6.1
import PackageDescription

// The BPF objects are compiled by the BPFCompilerPlugin (clang -target bpf) and embedded
// as base64 StaticStrings, so the binary carries everything it loads.
let package = Package(
    name: "bpfbox",
    products: [
        .executable(name: "bpfbox", targets: ["bpfbox"]),
        // For bench/micro, a package of its own that measures the event path in process.
        .library(name: "BPFBoxApplets", targets: ["Applets"]),
    ],
    dependencies: [
        // --metrics: the Prometheus registry and text format (the HTTP side is Sources/MetricsServer).
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Host tool run by the plugin: clang -target bpf -> strip -> base64 Swift source.
        .executableTarget(name: "bpf-compile", path: "Sources/bpf-compile"),
        .plugin(
            name: "BPFCompilerPlugin",
            capability: .buildTool(),
            dependencies: ["bpf-compile"],
            path: "Sources/BPFCompilerPlugin"
        ),
        // Embedded BPF objects. The target's root is bpf/ so that every bpf/*.bpf.c is seen by the
        // plugin; only bpf/swift holds hand-written Swift.
        .target(
            name: "BPFObjects",
            path: "bpf",
            sources: ["swift"],
            plugins: ["BPFCompilerPlugin"]
        ),
        .systemLibrary(name: "CLibbpf", path: "Sources/CLibbpf"),
        .target(
            name: "BPFSupport",
            path: "Sources/BPFSupport",
            linkerSettings: [.linkedLibrary("bpf")]
        ),
        .target(
            name: "BPFKit",
            dependencies: ["CLibbpf", "BPFSupport", "BPFObjects"],
            path: "Sources/BPFKit",
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        .target(
            name: "ContainerFilter",
            dependencies: ["BPFKit"],
            path: "Sources/ContainerFilter"
        ),
        .target(
            name: "MetricsServer",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/MetricsServer"
        ),
        .target(
            name: "Applets",
            dependencies: ["BPFKit", "ContainerFilter", "BPFSupport", "MetricsServer",
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Sources/Applets"
        ),
        .executableTarget(
            name: "bpfbox",
            dependencies: ["Applets"],
            path: "Sources/bpfbox",
            // A release binary carries the Swift runtime: it needs only the system's C and C++ libraries,
            // starts faster and maps less (docs/performance.md).
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "-no-pie", "-Xlinker", "--no-export-dynamic"], .when(configuration: .release))]
        ),
        .testTarget(
            name: "UnitTests",
            dependencies: ["Applets", "ContainerFilter", "BPFKit", "MetricsServer",
                           .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Tests/UnitTests",
            exclude: ["Snapshots"]
        ),
        // bench/render: user-space decode and render cost per event (bench/render/main.swift).
        .executableTarget(name: "render-bench", dependencies: ["Applets", "BPFSupport"], path: "bench/render"),
        // Test helper: drives the system calls the integration tests trace.
        .executableTarget(name: "testhelper", path: "Tests/Helpers/testhelper"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["bpfbox", "testhelper", "ContainerFilter"],
            path: "Tests/IntegrationTests"
        ),
    ]
)

// Nothing in bpfbox uses Swift concurrency: without the implicit import, the runtime does not
// start the concurrency library (its thread pool and dispatch) in every run.
for target in package.targets where target.type != .plugin && target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-Xfrontend", "-disable-implicit-concurrency-module-import"])]
}

