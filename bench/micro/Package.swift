// swift-tools-version:6.1
import PackageDescription

// In-process micro-benchmarks of bpfbox's event path (decode, JSON, columns, escaping, time),
// with google/swift-benchmark. A package of its own, so that bpfbox's build and tests do not
// carry the benchmark library:
//
//   cd bench/micro && swift run -c release micro [--filter REGEX] [--format json]
let package = Package(
    name: "bpfbox-micro",
    dependencies: [
        .package(name: "bpfbox", path: "../.."),
        .package(url: "https://github.com/google/swift-benchmark.git", from: "0.1.2"),
    ],
    targets: [
        .executableTarget(
            name: "micro",
            dependencies: [
                .product(name: "BPFBoxApplets", package: "bpfbox"),
                .product(name: "Benchmark", package: "swift-benchmark"),
            ],
            path: "Sources/micro"
        ),
    ]
)
