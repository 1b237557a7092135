import Foundation
import XCTest

/// sockmap against the real kernel: TCP connections made by the test helper inside test cgroups,
/// their payload checked byte for byte both ways.
final class SockmapTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// Sizes for one connection: 1 byte to 1 MiB, odd sizes between.
    private static let sizes = [1, 100, 4096, 65_537, 1_048_576]

    private struct Transfer {
        let lines: [String]
        var ok: [String] { lines.filter { $0.hasPrefix("ok ") } }
        var tcpBytesSent: Int? { helperValue(lines, "tcp_bytes_sent") }
        var succeeded: Bool { lines.contains("result 0") }
        var clientPort: Int? { helperValue(lines, "lport") }
        var serverPort: Int? { helperValue(lines, "rport") }
    }

    /// One connection between a listener made in `server` and a client made in `client` (nil:
    /// the test's own cgroup), moving every size both ways.
    private func transfer(_ mode: String, server: TestCgroup?, client: TestCgroup?, sizes: [Int] = sizes) throws -> Transfer {
        let result = try runCommand(testHelperPath, ["splice", mode, server?.path ?? "-", client?.path ?? "-"] + sizes.map(String.init))
        let transfer = Transfer(lines: result.stdout.split(separator: "\n").map(String.init))
        XCTAssertTrue(transfer.succeeded, "transfer failed: \(result.stdout) \(result.stderr)")
        XCTAssertEqual(transfer.ok.count, sizes.count, "payload not intact: \(result.stdout)")
        return transfer
    }

    /// Starts sockmap with JSON output on `arguments` and waits for its first sample (it is
    /// attached by then).
    private func start(_ arguments: [String]) throws -> Tool {
        let tool = try Tool(["sockmap", "--json"] + arguments + ["0.2"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.contains("\"sockets\":") }, "no first sample; stderr: \(tool.stderr.all)")
        return tool
    }

    /// Stops the tool with SIGINT (exit 0) and returns its totals.
    private func totals(_ tool: Tool, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(tool.stop(), 0, "sockmap did not exit 0 on SIGINT", file: file, line: line)
        return try XCTUnwrap(tool.stdout.all.compactMap(jsonObject).last { $0["totals"] as? Bool == true },
                             "no totals line", file: file, line: line)
    }

    func testSplicesLocalConnectionsWithPayloadIntact() throws {
        let cgroup = try TestCgroup()
        let tool = try start(["-c", cgroup.path])
        let spliced = try transfer("4", server: cgroup, client: cgroup)
        XCTAssertEqual(spliced.tcpBytesSent, 0, "payload went through TCP (and so over lo) instead of the splice")
        let moved = 2 * Self.sizes.reduce(0, +)
        let sum = try totals(tool)
        XCTAssertEqual(sum["sockets_added"] as? Int, 2)
        XCTAssertEqual(sum["spliced_bytes"] as? Int, moved, "every byte both ways was spliced, and only those")
        XCTAssertGreaterThanOrEqual(sum["spliced_msgs"] as? Int ?? 0, 2 * Self.sizes.count)
        XCTAssertEqual(sum["passed_msgs"] as? Int, 0)
        let samples = tool.stdout.all.compactMap(jsonObject).filter { $0["sockets"] != nil }
        XCTAssertEqual(samples.reduce(0) { $0 + ($1["spliced_bytes"] as? Int ?? 0) }, moved, "the samples add up to the totals")
    }

    func testIPv6AndV4MappedConnections() throws {
        let cgroup = try TestCgroup()
        let tool = try start(["-c", cgroup.path])
        let v6 = try transfer("6", server: cgroup, client: cgroup, sizes: [1, 70_000])
        XCTAssertEqual(v6.tcpBytesSent, 0, "IPv6 connection not spliced")
        // A dual-stack listener: the server end is an IPv6 socket with v4-mapped addresses.
        let mapped = try transfer("mapped", server: cgroup, client: cgroup, sizes: [1, 70_000])
        XCTAssertEqual(mapped.tcpBytesSent, 0, "v4-mapped connection not spliced")
        let sum = try totals(tool)
        XCTAssertEqual(sum["sockets_added"] as? Int, 4)
        XCTAssertEqual(sum["spliced_bytes"] as? Int, 4 * 70_001)
        XCTAssertEqual(sum["passed_msgs"] as? Int, 0)
    }

    func testConnectionWithOneEndOutsideTheCgroupPasses() throws {
        let cgroup = try TestCgroup()
        let tool = try Tool(["sockmap", "--json", "-v", "-c", cgroup.path, "0.2"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.contains("\"sockets\":") })
        let passed = try transfer("4", server: cgroup, client: nil, sizes: [1, 4096, 200_000])
        XCTAssertEqual(passed.tcpBytesSent, 1 + 4096 + 200_000, "the client's bytes took TCP")
        let server = try XCTUnwrap(passed.serverPort)
        // --verbose: the server end was tracked, and its replies found no peer.
        let missing = tool.waitForEventLine { $0["event"] as? String == "not_accelerated" }
        XCTAssertEqual(missing?["local"] as? String, "127.0.0.1:\(server)")
        XCTAssertTrue((missing?["reason"] as? String ?? "").contains("outside the cgroup"), "\(missing ?? [:])")
        let tracked = tool.stdout.all.compactMap(jsonObject).filter { $0["event"] as? String == "tracked" }
        XCTAssertEqual(tracked.map { $0["local"] as? String }, ["127.0.0.1:\(server)"], "only the end inside the cgroup is tracked")
        let sum = try totals(tool)
        XCTAssertEqual(sum["sockets_added"] as? Int, 1)
        XCTAssertEqual(sum["spliced_msgs"] as? Int, 0)
        XCTAssertEqual(sum["passed_bytes"] as? Int, 1 + 4096 + 200_000, "the server's replies passed to TCP")
    }

    func testVerboseNamesConnectionsOpenedBeforeStart() throws {
        let cgroup = try TestCgroup()
        // A connection of the cgroup that stays open: the helper waits on its stdin.
        let session = Process()
        session.executableURL = URL(fileURLWithPath: "/bin/sh")
        session.arguments = ["-c", "\(cgroup.joinScript) && exec \(testHelperPath) tcpsession 127.0.0.1"]
        let input = Pipe(), output = Pipe()
        session.standardInput = input
        session.standardOutput = output
        try session.run()
        defer {
            try? input.fileHandleForWriting.close()
            session.waitUntilExit()
        }
        let lines = LineCollector(output.fileHandleForReading)
        XCTAssertNotNil(lines.wait(timeout: 20) { $0.hasPrefix("rport ") })
        let client = try XCTUnwrap(helperValue(lines.all, "lport"), "\(lines.all)")
        let tool = try Tool(["sockmap", "-v", "-c", cgroup.path, "0.2"])
        let line = tool.stdout.wait(timeout: 30) { $0.contains("established before sockmap started") && $0.contains("127.0.0.1:\(client) ") }
        XCTAssertNotNil(line, "the open connection was not named; output: \(tool.stdout.all)")
        XCTAssertEqual(tool.stop(), 0)
    }

    func testCgroupMapSplicesOnlyListedCgroups() throws {
        let listed = try TestCgroup(), other = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(listed.id, valueSize: 8)
        let tool = try start(["-v", "--cgroupmap", map.path])
        XCTAssertEqual(try transfer("4", server: listed, client: listed, sizes: [1, 5000]).tcpBytesSent, 0)
        XCTAssertEqual(try transfer("4", server: other, client: other, sizes: [1, 5000]).tcpBytesSent, 5001)
        let sum = try totals(tool)
        XCTAssertEqual(sum["sockets_added"] as? Int, 2, "only the listed cgroup's sockets are tracked")
        XCTAssertEqual(sum["spliced_bytes"] as? Int, 2 * 5001)
    }

    /// The ids of sockmap's programs, links and socket maps loaded now ("prog 12", "map 7" ...).
    private func sockmapObjects() throws -> Set<String> {
        var ids: Set<String> = []
        for kind in ["prog", "link", "map"] {
            let shown = try runCommand(bpftoolPath, ["-j", kind, "show"])
            let list = (try? JSONSerialization.jsonObject(with: Data(shown.stdout.utf8))) as? [[String: Any]] ?? []
            for object in list {
                guard let id = object["id"] as? Int else { continue }
                let name = object["name"] as? String ?? ""
                let ours = switch kind {
                case "prog": name.hasPrefix("sockmap_")
                case "map": object["type"] as? String == "sockhash" && name == "sockets"
                default: (object["attach_type"] as? String ?? "").hasSuffix("sock_ops")
                }
                if ours { ids.insert("\(kind) \(id)") }
            }
        }
        return ids
    }

    private func stillLoaded(_ ids: Set<String>) throws -> [String] {
        try ids.filter { id in
            let parts = id.split(separator: " ").map(String.init)
            return try runCommand(bpftoolPath, [parts[0], "show", "id", parts[1]]).status == 0
        }.sorted()
    }

    private func attached(_ cgroup: TestCgroup) throws -> String {
        try runCommand(bpftoolPath, ["cgroup", "show", cgroup.path]).stdout
    }

    func testNothingStaysAttachedAfterSigintOrSigkill() throws {
        let cgroup = try TestCgroup()
        for signal in [SIGINT, SIGTERM, SIGKILL] {
            let before = try sockmapObjects()
            let tool = try start(["-c", cgroup.path])
            XCTAssertTrue(try attached(cgroup).contains("sockmap_track"), "sock_ops program not attached")
            let held = try sockmapObjects().subtracting(before)
            for kind in ["prog", "link", "map"] {
                XCTAssertTrue(held.contains { $0.hasPrefix(kind) }, "no \(kind) of sockmap found: \(held)")
            }
            kill(tool.process.processIdentifier, signal)
            tool.process.waitUntilExit()
            if signal != SIGKILL {
                XCTAssertEqual(tool.process.terminationStatus, 0, "exit status after signal \(signal)")
                XCTAssertTrue(tool.stdout.waitForEnd(timeout: 10))
                XCTAssertNotNil(tool.stdout.all.compactMap(jsonObject).last { $0["totals"] as? Bool == true }, "no totals after signal \(signal)")
            }
            // Programs and links go with the last reference; the kernel frees them asynchronously.
            var left: [String] = []
            for _ in 0..<100 {
                left = try stillLoaded(held)
                let detached = try !attached(cgroup).contains("sockmap_track")
                if left.isEmpty && detached { break }
                usleep(50_000)
            }
            XCTAssertEqual(left, [], "still loaded after signal \(signal)")
            XCTAssertFalse(try attached(cgroup).contains("sockmap_track"), "still attached after signal \(signal)")
            // A connection made now is plain TCP.
            XCTAssertEqual(try transfer("4", server: cgroup, client: cgroup, sizes: [1000]).tcpBytesSent, 1000)
        }
    }

    func testBadInput() throws {
        let notCgroup = try runCommand(bpfboxPath, ["sockmap", "-c", "/tmp"])
        XCTAssertEqual(notCgroup.status, 1)
        XCTAssertTrue(notCgroup.stderr.contains("is not on cgroup v2"), notCgroup.stderr)
        let missing = try runCommand(bpfboxPath, ["sockmap", "-c", "/sys/fs/cgroup/" + uniqueMarker("none")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no such cgroup"), missing.stderr)
        for (arguments, message) in [
            ([String](), "say which cgroup to accelerate"),
            (["--mntnsmap", "/sys/fs/bpf/x"], "--mntnsmap does not apply to sockets"),
            (["-c", "/sys/fs/cgroup", "--cgroupmap", "/sys/fs/bpf/x"], "-c/--container and --cgroupmap exclude each other"),
            (["-c", "/sys/fs/cgroup", "--apply-bytes", "lots"], "--apply-bytes: 'lots' is not a byte count"),
        ] {
            let result = try runCommand(bpfboxPath, ["sockmap"] + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments)")
            XCTAssertTrue(result.stderr.hasPrefix("usage: sockmap"), result.stderr)
            XCTAssertTrue(result.stderrLines.last?.contains(message) ?? false, result.stderr)
        }
        let map = try PinnedMap.mntnsMap()
        let wrongMap = try runCommand(bpfboxPath, ["sockmap", "--cgroupmap", map.path])
        XCTAssertEqual(wrongMap.status, 1)
        XCTAssertTrue(wrongMap.stderr.contains("value size 4"), wrongMap.stderr)
    }
}
