import Foundation
import XCTest

/// skbcount against the real kernel: UDP datagrams between sockets made in test cgroups.
final class SkbCountTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    private static let headers = 28 // IPv4 (20) + UDP (8): skb->len at the IP layer

    /// Sends `count` datagrams of `size` bytes from a socket made in `sender` to one made in
    /// `receiver`.
    private func udp(from sender: TestCgroup, to receiver: TestCgroup, count: Int, size: Int) throws {
        let result = try runCommand(testHelperPath, ["udp", receiver.path, sender.path, String(count), String(size)])
        XCTAssertTrue(result.stdout.contains("result 0"), result.stdout + result.stderr)
    }

    private func relative(_ cgroup: TestCgroup) -> String {
        String(cgroup.path.dropFirst((cgroup.path.range(of: "/bbx-cg-")?.lowerBound).map { cgroup.path.distance(from: cgroup.path.startIndex, to: $0) } ?? 0))
    }

    /// Cumulative JSON rows by cgroup, once `probe` traffic shows the tool is attached.
    private func rows(_ tool: Tool, cgroup: String) -> [String: Any]? {
        tool.stdout.all.compactMap(jsonObject).last { $0["cgroup"] as? String == cgroup }
    }

    private func waitForRow(_ tool: Tool, cgroup: String, where match: @escaping ([String: Any]) -> Bool) -> [String: Any]? {
        var found: [String: Any]?
        _ = tool.stdout.wait(timeout: 20) { line in
            guard let row = jsonObject(line), row["cgroup"] as? String == cgroup, match(row) else { return false }
            found = row
            return true
        }
        if found == nil { tool.reportMiss() }
        return found
    }

    func testCountsExactPacketsAndBytes() throws {
        let sender = try TestCgroup(), receiver = try TestCgroup()
        let tool = try Tool(["skbcount", "--json", "--cumulative", "-c", sender.path, "-c", receiver.path, "0.2"])
        // Attached once a first exchange is counted.
        var probes = 0
        for _ in 0..<100 {
            try udp(from: sender, to: receiver, count: 1, size: 1)
            probes += 1
            if tool.stdout.wait(timeout: 0.5, { $0.contains(self.relative(sender)) }) != nil { break }
        }
        let before = try XCTUnwrap(waitForRow(tool, cgroup: relative(sender)) { _ in true })
        let beforeTx = before["tx_packets"] as? Int ?? 0, beforeBytes = before["tx_bytes"] as? Int ?? 0
        let k = 25, n = 25 * 300
        try udp(from: sender, to: receiver, count: k, size: n / k)
        let sent = try XCTUnwrap(waitForRow(tool, cgroup: relative(sender)) { ($0["tx_packets"] as? Int ?? 0) >= beforeTx + k })
        XCTAssertEqual((sent["tx_packets"] as? Int ?? 0) - beforeTx, k)
        XCTAssertEqual((sent["tx_bytes"] as? Int ?? 0) - beforeBytes, k * (n / k + Self.headers))
        XCTAssertEqual(sent["rx_packets"] as? Int, 0, "the sender's cgroup received nothing")
        let received = try XCTUnwrap(waitForRow(tool, cgroup: relative(receiver)) { ($0["rx_packets"] as? Int ?? 0) >= beforeTx + k })
        XCTAssertEqual(received["rx_packets"] as? Int, sent["tx_packets"] as? Int)
        XCTAssertEqual(received["rx_bytes"] as? Int, sent["tx_bytes"] as? Int)
        XCTAssertEqual(received["tx_packets"] as? Int, 0)
        XCTAssertGreaterThan(probes, 0)
        tool.stop()
    }

    func testCgroupMapCountsOnlyListedCgroups() throws {
        let listed = try TestCgroup(), other = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(listed.id, valueSize: 8)
        let tool = try Tool(["skbcount", "--json", "--cumulative", "--cgroupmap", map.path, "0.2"])
        var probes = 0
        for _ in 0..<100 {
            try udp(from: listed, to: listed, count: 1, size: 1)
            probes += 1
            if tool.stdout.wait(timeout: 0.5, { $0.contains(self.relative(listed)) }) != nil { break }
        }
        let base = rows(tool, cgroup: relative(listed))?["tx_packets"] as? Int ?? 0
        try udp(from: other, to: other, count: 5, size: 100)
        try udp(from: listed, to: listed, count: 3, size: 100)
        // Once the listed cgroup's later packets are printed, the other's earlier ones have been
        // drained too: they would show in the same or an earlier interval.
        let row = waitForRow(tool, cgroup: relative(listed)) { ($0["tx_packets"] as? Int ?? 0) >= base + 3 }
        XCTAssertNotNil(row)
        XCTAssertLessThanOrEqual(row?["tx_packets"] as? Int ?? 0, probes + 3)
        XCTAssertFalse(tool.stdout.all.contains { $0.contains(self.relative(other)) }, "a cgroup outside the map was counted")
        tool.stop()
    }

    func testSubtreeSplitsParentAndChild() throws {
        let parent = try TestCgroup()
        let child = try TestCgroup(under: parent.path)
        defer { rmdir(child.path) }
        let peer = try TestCgroup()
        let together = try Tool(["skbcount", "--json", "--cumulative", "-c", parent.path, "0.2"])
        let split = try Tool(["skbcount", "--json", "--cumulative", "--subtree", "-c", parent.path, "0.2"])
        for _ in 0..<100 {
            try udp(from: parent, to: peer, count: 1, size: 1)
            if together.stdout.wait(timeout: 0.3, { $0.contains(self.relative(parent)) }) != nil,
               split.stdout.wait(timeout: 0.3, { $0.contains(self.relative(parent)) }) != nil { break }
        }
        try udp(from: child, to: peer, count: 4, size: 50)
        let childPath = relative(parent) + String(child.path.dropFirst(parent.path.count))
        let childRow = try XCTUnwrap(waitForRow(split, cgroup: childPath) { _ in true })
        XCTAssertEqual(childRow["tx_packets"] as? Int, 4)
        XCTAssertEqual(childRow["tx_bytes"] as? Int, 4 * (50 + Self.headers))
        let parentRow = try XCTUnwrap(waitForRow(together, cgroup: relative(parent)) { ($0["tx_packets"] as? Int ?? 0) >= 5 })
        XCTAssertFalse(together.stdout.all.contains { $0.contains(childPath + "\"") }, "without --subtree the child has no row")
        XCTAssertGreaterThanOrEqual(parentRow["tx_packets"] as? Int ?? 0, 5)
        together.stop()
        split.stop()
    }

    func testRunCountsTheCommandAndRemovesItsCgroup() throws {
        let receiver = try TestCgroup()
        let mount = URL(fileURLWithPath: receiver.path).deletingLastPathComponent().path
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: mount).filter { $0.hasPrefix("bpfbox-run-") })
        // The command's sending socket is made where it starts: in the run cgroup.
        let result = try runCommand(bpfboxPath, ["skbcount", "--json", "--run", testHelperPath, "udp", receiver.path, "-", "6", "120"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let row = try XCTUnwrap(result.stdout.split(separator: "\n").compactMap { jsonObject(String($0)) }.first)
        XCTAssertEqual(row["tx_packets"] as? Int, 6)
        XCTAssertEqual(row["tx_bytes"] as? Int, 6 * (120 + Self.headers))
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: mount).filter { $0.hasPrefix("bpfbox-run-") })
        XCTAssertEqual(after, before, "--run left its cgroup behind")
    }

    private func attached(_ cgroup: TestCgroup) throws -> [String] {
        let shown = try runCommand(bpftoolPath, ["cgroup", "show", cgroup.path])
        return shown.stdout.split(separator: "\n").filter { $0.contains("skb_ingress") || $0.contains("skb_egress") }.map(String.init)
    }

    func testPinSurvivesTheProcessAndUnpinDetaches() throws {
        let cgroup = try TestCgroup()
        let dir = "/sys/fs/bpf/" + uniqueMarker("pin")
        defer { _ = try? runCommand(bpfboxPath, ["skbcount", "--unpin", dir]) }
        let pinned = try runCommand(bpfboxPath, ["skbcount", "--pin", dir, "-c", cgroup.path])
        XCTAssertEqual(pinned.status, 0, pinned.stderr)
        XCTAssertEqual(try attached(cgroup).count, 2, "pinned programs not attached after bpfbox exited")
        func txPackets() throws -> Int? {
            let text = try String(contentsOfFile: dir + "/stats", encoding: .utf8)
            let line = text.split(separator: "\n").first { $0.hasPrefix(String(cgroup.id) + " ") }
            return line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[3]) }
        }
        try udp(from: cgroup, to: cgroup, count: 3, size: 10)
        XCTAssertEqual(try txPackets(), 3)
        try udp(from: cgroup, to: cgroup, count: 4, size: 10)
        XCTAssertEqual(try txPackets(), 7, "the pinned counters did not grow")

        let again = try runCommand(bpfboxPath, ["skbcount", "--pin", dir, "-c", cgroup.path])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already holds"), again.stderr)

        let unpinned = try runCommand(bpfboxPath, ["skbcount", "--unpin", dir])
        XCTAssertEqual(unpinned.status, 0, unpinned.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
        XCTAssertEqual(try attached(cgroup), [], "--unpin left programs attached")
    }

    func testSigkillLeavesNothingAttached() throws {
        let cgroup = try TestCgroup()
        let tool = try Tool(["skbcount", "-c", cgroup.path])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.hasPrefix("Tracing") })
        XCTAssertEqual(try attached(cgroup).count, 2)
        kill(tool.process.processIdentifier, SIGKILL)
        tool.process.waitUntilExit()
        // Links are released with the process; the kernel detaches them at once.
        XCTAssertEqual(try attached(cgroup), [], "programs stayed attached after SIGKILL")
    }

    func testPinWithoutPrivilegesLeavesNoDirectory() throws {
        let dir = "/sys/fs/bpf/" + uniqueMarker("pin")
        defer { rmdir(dir) }
        let result = try runCommand("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                                                          "--inh-caps=-all", bpfboxPath, "skbcount", "--pin", dir])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("--pin needs root"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "--pin made its directory before the privilege check")
    }

    func testPinOutsideBPFFSIsRefused() throws {
        let result = try runCommand(bpfboxPath, ["skbcount", "--pin", "/tmp/" + uniqueMarker("pin")])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("not on a BPF filesystem"), result.stderr)
    }

    func testBadInput() throws {
        let notCgroup = try runCommand(bpfboxPath, ["skbcount", "-c", "/tmp"])
        XCTAssertEqual(notCgroup.status, 1)
        XCTAssertTrue(notCgroup.stderr.contains("is not on cgroup v2"), notCgroup.stderr)
        let missing = try runCommand(bpfboxPath, ["skbcount", "-c", "/sys/fs/cgroup/" + uniqueMarker("none")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no such cgroup"), missing.stderr)
        let mntns = try runCommand(bpfboxPath, ["skbcount", "--mntnsmap", "/sys/fs/bpf/x"])
        XCTAssertEqual(mntns.status, 2)
        XCTAssertTrue(mntns.stderrLines.last?.contains("--mntnsmap does not apply to packets") ?? false, mntns.stderr)
    }
}
