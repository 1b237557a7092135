import ContainerFilter
import Foundation
import XCTest

/// A broken or hostile environment: each case ends in one clear line or a run that goes on,
/// never a hang (every command here runs under timeout(1)).
final class HostileEnvironmentTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// `bpfbox ARGS` under timeout(1), run in a private mount namespace after `setup` (shell).
    private func bpfbox(_ arguments: [String], namespaceSetup setup: String? = nil) throws -> Completed {
        guard let setup else { return try runCommand("/usr/bin/timeout", ["20", bpfboxPath] + arguments) }
        return try runCommand("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
                                                   "\(setup) && exec /usr/bin/timeout 20 \"$0\" \"$@\"", bpfboxPath] + arguments)
    }

    private func assertOneLine(_ result: Completed, _ prefix: String, contains text: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix(prefix + ": ") && result.stderr.contains(text),
                      "'\(text)' not in: \(result.stderr)", file: file, line: line)
    }

    func testFilterMapUnpinnedWhileRunningKeepsFiltering() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript), outside = try Runner()
        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", map.path])
        waitUntilTracing(tool, via: inside)
        XCTAssertEqual(unlink(map.path), 0)
        let outMarker = uniqueMarker("outside"), inMarker = uniqueMarker("inside")
        outside.exec(outMarker)
        inside.exec(inMarker)
        XCTAssertNotNil(tool.waitForEvent(argv: inMarker), "the tracer stopped after its map was unpinned")
        XCTAssertFalse(tool.hasLine(containing: outMarker), "the map's filter no longer applies")
        XCTAssertEqual(tool.stop(), 0)
        XCTAssertEqual(tool.stderr.all, [])
    }

    func testTwoInstancesOnTheSameHook() throws {
        let runner = try Runner()
        let first = try Tool(["execsnoop", "--json"]), second = try Tool(["execsnoop", "--json"])
        waitUntilTracing(first, via: runner)
        waitUntilTracing(second, via: runner)
        let both = uniqueMarker("both")
        runner.exec(both)
        XCTAssertNotNil(first.waitForEvent(argv: both))
        XCTAssertNotNil(second.waitForEvent(argv: both))
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let after = uniqueMarker("after")
        runner.exec(after)
        XCTAssertNotNil(second.waitForEvent(argv: after), "the second instance lost its events when the first went")
        XCTAssertEqual(second.stop(), 0)
    }

    /// Two sockmaps on one cgroup: a socket can be in one of them only; the second one counts it
    /// as refused, and the payload is intact.
    func testTwoSockmapsOnOneCgroup() throws {
        let cgroup = try TestCgroup()
        let tools = try (0..<2).map { _ in try Tool(["sockmap", "--json", "-c", cgroup.path, "0.2"]) }
        for tool in tools { XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.contains("\"sockets\":") }) }
        let result = try runCommand(testHelperPath, ["splice", "4", cgroup.path, cgroup.path, "1", "4096", "100000"])
        XCTAssertTrue(result.stdout.contains("result 0"), result.stdout + result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count, 3, "payload not intact")
        var added = 0, refused = 0
        for tool in tools {
            XCTAssertEqual(tool.stop(), 0)
            let totals = try XCTUnwrap(tool.stdout.all.compactMap(jsonObject).last { $0["totals"] as? Bool == true })
            added += totals["sockets_added"] as? Int ?? 0
            refused += totals["sockets_refused"] as? Int ?? 0
        }
        XCTAssertEqual(added, 2, "both ends are in exactly one of the maps")
        XCTAssertEqual(refused, 2, "and refused by the other")
    }

    /// tracefs not mounted: the tracer mounts it (in its own mount namespace here, so that
    /// nothing else on the machine sees the difference) and traces.
    func testTracefsUnmounted() throws {
        let runner = try Runner()
        for applet in ["execsnoop", "opensnoop"] {
            let script = "umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; "
                + "if grep -q tracefs /proc/self/mountinfo; then echo 'tracefs still mounted' >&2; exit 3; fi; exec \"$0\" \"$@\""
            let tool = try Tool(["-m", "--propagation", "private", "/bin/sh", "-c", script, bpfboxPath, applet, "--json"],
                                executable: "/usr/bin/unshare")
            waitUntilTracing(tool, via: runner)
            XCTAssertEqual(tool.stop(), 0, "\(applet): \(tool.stderr.all)")
        }
    }

    /// The cgroup a counter is attached to is removed: one line says so, the run goes on, and
    /// it ends cleanly.
    func testCgroupRemovedWhileAttached() throws {
        for applet in ["skbcount", "sockmap"] {
            let cgroup = try TestCgroup()
            let tool = try Tool([applet, "-c", cgroup.path, "0.2"])
            XCTAssertNotNil(tool.stdout.wait(timeout: 30) { _ in true }, "\(applet): \(tool.stderr.all)")
            let held = heldBPFObjects(pid: tool.process.processIdentifier)
            XCTAssertEqual(rmdir(cgroup.path), 0)
            let relative = String(cgroup.path.drop { $0 != "/" }.split(separator: "/").last ?? "")
            XCTAssertNotNil(tool.stderr.wait(timeout: 10) { $0.contains("was removed") && $0.contains(relative) },
                            "\(applet): no line about the removed cgroup; stderr: \(tool.stderr.all)")
            let printed = tool.stdout.all.count
            var seen = 0
            XCTAssertNotNil(tool.stdout.wait(timeout: 10) { _ in seen += 1; return seen > printed + 2 }, "\(applet) stopped printing")
            XCTAssertEqual(tool.stop(), 0)
            XCTAssertEqual(tool.stderr.all.count, 1, "\(tool.stderr.all)")
            XCTAssertEqual(try leftBehind(held), [], "\(applet)")
        }
    }

    func testNotRoot() throws {
        let nobody = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all",
                      "/usr/bin/timeout", "20", bpfboxPath]
        for arguments in [["execsnoop"], ["opensnoop"], ["capable"], ["tcpconnect"], ["tcptop"], ["skbcount"],
                          ["sockmap", "-c", try XCTUnwrap(CgroupV2.mountPoint())]] {
            let result = try runCommand(nobody[0], Array(nobody.dropFirst()) + arguments)
            assertOneLine(result, arguments[0], contains: "not root: tracing needs root, or CAP_BPF with CAP_PERFMON")
            XCTAssertEqual(result.stdout, "")
        }
        let map = try PinnedMap.cgroupMap()
        let path = "/sys/fs/bpf/" + uniqueMarker("nobody")
        defer { unlink(path) }
        assertOneLine(try runCommand(nobody[0], Array(nobody.dropFirst()) + ["filter", "create", path, "--type", "cgroup"]),
                      "filter", contains: "run as root")
        for subcommand in [["list", map.path], ["add", map.path, "--pid", "1"]] {
            assertOneLine(try runCommand(nobody[0], Array(nobody.dropFirst()) + ["filter"] + subcommand),
                          "filter", contains: "no permission to open the pinned map (Permission denied); run as root")
        }
    }

    /// A read-only bpffs (mounted over /sys/fs/bpf in a private mount namespace): what must pin
    /// says why it cannot; what only reads goes on.
    func testReadOnlyBPFFS() throws {
        let readOnly = "mount -t bpf -o ro bpf /sys/fs/bpf"
        assertOneLine(try bpfbox(["filter", "create", "/sys/fs/bpf/" + uniqueMarker("ro"), "--type", "cgroup"], namespaceSetup: readOnly),
                      "filter", contains: "Read-only file system")
        assertOneLine(try bpfbox(["skbcount", "--pin", "/sys/fs/bpf/" + uniqueMarker("ro")], namespaceSetup: readOnly),
                      "skbcount", contains: "Read-only file system")
        let runner = try Runner()
        let tool = try Tool(["-m", "--propagation", "private", "/bin/sh", "-c", readOnly + " && exec \"$0\" \"$@\"",
                             bpfboxPath, "execsnoop", "--json"], executable: "/usr/bin/unshare")
        waitUntilTracing(tool, via: runner)
        XCTAssertEqual(tool.stop(), 0)
    }

    /// No bpffs at /sys/fs/bpf: mounted as `mount -t bpf` would, then used.
    func testBPFFSNotMounted() throws {
        let path = "/sys/fs/bpf/" + uniqueMarker("nobpffs")
        let result = try bpfbox(["filter", "create", path, "--type", "cgroup"], namespaceSetup: "umount -l /sys/fs/bpf")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("created \(path)"), result.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "pinned in the namespace's own bpffs only")
    }
}
