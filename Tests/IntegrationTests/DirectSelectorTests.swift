import Foundation
import XCTest

/// --cgroup, --mntns-of and --containers without any pinned map: the selectors resolve when the
/// tool starts and are checked in the kernel.
final class DirectSelectorTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    func testCgroupSelectsTheSubtreeNotTheRest() throws {
        let parent = try TestCgroup()
        let child = try TestCgroup(under: parent.path)
        defer { rmdir(child.path) }
        let sibling = try TestCgroup()
        let nested = try Runner(setup: child.joinScript)
        let direct = try Runner(setup: parent.joinScript)
        let outside = try Runner(setup: sibling.joinScript)
        let tool = try Tool(["execsnoop", "--json", "--cgroup", parent.path])
        waitUntilTracing(tool, via: nested)

        let outMarker = uniqueMarker("sibling"), childMarker = uniqueMarker("child"), parentMarker = uniqueMarker("parent")
        outside.exec(outMarker)
        direct.exec(parentMarker)
        nested.exec(childMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: childMarker), "exec in a nested child not shown")
        XCTAssertEqual(event["cgroup_id"] as? UInt64, child.id)
        XCTAssertNotNil(tool.waitForEvent(argv: parentMarker, timeout: 1), "exec in the selected cgroup itself not shown")
        XCTAssertFalse(tool.hasLine(containing: outMarker), "exec in a sibling cgroup was shown")
        tool.stop()
    }

    func testCgroupAndCgroupMapMustBothMatch() throws {
        // bcc's exact-map semantics stay: the map lists only the parent, so the child's execs
        // fail the map even though --cgroup selects them.
        let parent = try TestCgroup()
        let child = try TestCgroup(under: parent.path)
        defer { rmdir(child.path) }
        let map = try PinnedMap.cgroupMap()
        try map.add(parent.id, valueSize: 8)
        let inParent = try Runner(setup: parent.joinScript)
        let inChild = try Runner(setup: child.joinScript)
        let tool = try Tool(["execsnoop", "--json", "--cgroup", parent.path, "--cgroupmap", map.path])
        waitUntilTracing(tool, via: inParent)
        let childMarker = uniqueMarker("child")
        inChild.exec(childMarker)
        barrier(tool, via: inParent)
        XCTAssertFalse(tool.hasLine(containing: childMarker), "the exact map let a child cgroup through")
        tool.stop()
    }

    func testMountNamespaceOfAProcess() throws {
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"])
        let outside = try Runner()
        let tool = try Tool(["opensnoop", "--json", "--mntns-of", String(inside.pid)])
        waitUntilTracing(tool, via: inside)
        let outMarker = uniqueMarker("outside"), inMarker = uniqueMarker("inside")
        outside.exec("/nonexistent/" + outMarker, program: "/bin/cat")
        inside.exec("/nonexistent/" + inMarker, program: "/bin/cat")
        let event = tool.waitForEventLine { ($0["path"] as? String ?? "").contains(inMarker) }
        XCTAssertEqual(event?["mntns_id"] as? UInt64, mountNamespace(of: inside.pid))
        XCTAssertFalse(tool.hasLine(containing: outMarker), "an open in another mount namespace was shown")
        tool.stop()
    }

    func testContainersColumnOnTheHost() throws {
        let runner = try Runner()
        let tool = try Tool(["execsnoop", "--containers"])
        waitUntilAttached(tool) { runner.exec($0) }
        XCTAssertTrue(tool.stdout.all.first?.hasPrefix("CONTAINER    PCOMM") ?? false, "\(tool.stdout.all.first ?? "")")
        let marker = uniqueMarker("host")
        runner.exec(marker)
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains(marker) })
        XCTAssertTrue(line.hasPrefix("-  "), "a host process has no container: \(line)")
        tool.stop()
    }

    func testBadSelectors() throws {
        for (arguments, message, status) in [
            (["--cgroup", "/tmp"], "--cgroup /tmp is not on cgroup v2", Int32(1)),
            (["--cgroup", "/sys/fs/cgroup/" + uniqueMarker("none")], "no such cgroup", 1),
            (["--container", uniqueMarker("none")], "--container: no container matches", 1),
            (["--mntns-of", "999999999"], "--mntns-of 999999999: no such process", 1),
            (["--mntns-of", "abc"], "--mntns-of", 2),
            (Array(repeating: ["--cgroup", "/sys/fs/cgroup"], count: 9).flatMap { $0 }, "at most 8", 2),
        ] {
            let result = try runCommand(bpfboxPath, ["execsnoop"] + arguments)
            XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderrLines.last?.contains(message) ?? false, "\(arguments): \(result.stderr)")
        }
    }
}
