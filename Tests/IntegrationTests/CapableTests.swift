import Foundation
import XCTest

/// capable against the real kernel: capability checks made by the test helper, found by pid.
final class CapableTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
        guard FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events/capability/cap_capable")
            || FileManager.default.fileExists(atPath: "/sys/kernel/debug/tracing/events/capability/cap_capable")
            || !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") else {
            throw XCTSkip("this kernel has no capability/cap_capable tracepoint")
        }
    }

    private static let netRaw = 13, chown = 0

    /// Runs `testhelper ARGS` in `runner`; returns its pid.
    @discardableResult
    private func helper(_ runner: Runner, _ arguments: [String]) -> Int {
        helperPID(runner.run([testHelperPath] + arguments)) ?? -1
    }

    private func isEvent(_ line: String, pid: Int, cap: Int) -> Bool {
        guard line.contains("\"pid\":\(pid),"),
              let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return false }
        return event["pid"] as? Int == pid && event["cap"] as? Int == cap
    }

    /// Raw sockets through `runner` until capable shows one: it is attached.
    private func sync(_ tool: Tool, _ runner: Runner) {
        for _ in 0..<200 {
            let pid = helper(runner, ["rawsock"])
            if tool.stdout.wait(timeout: 0.25, { self.isEvent($0, pid: pid, cap: Self.netRaw) }) != nil { return }
            if !tool.process.isRunning { break }
        }
        XCTFail("capable never showed a synchronization check; stderr: \(tool.stderr.all.joined(separator: " | "))")
    }

    private func events(_ tool: Tool, pid: Int, cap: Int) -> [[String: Any]] {
        tool.stdout.all.filter { isEvent($0, pid: pid, cap: cap) }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    private func waitForEvent(_ tool: Tool, pid: Int, cap: Int) -> [String: Any]? {
        guard let line = tool.stdout.wait(timeout: 20, { self.isEvent($0, pid: pid, cap: cap) }) else {
            tool.reportMiss()
            return nil
        }
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }

    func testRawSocketIsAllowedCapNetRaw() throws {
        let tool = try Tool(["capable", "--json"])
        let runner = try Runner()
        sync(tool, runner)
        let pid = helper(runner, ["rawsock"])
        let event = try XCTUnwrap(waitForEvent(tool, pid: pid, cap: Self.netRaw))
        XCTAssertEqual(event["name"] as? String, "CAP_NET_RAW")
        XCTAssertEqual(event["verdict"] as? String, "allow")
        XCTAssertEqual(event["ret"] as? Int, 0)
        XCTAssertEqual(event["tid"] as? Int, pid)
        XCTAssertEqual(event["comm"] as? String, "testhelper")
        XCTAssertEqual(event["euid"] as? Int, 0)
        tool.stop()
    }

    func testDroppedCapabilityIsDenied() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("chown")).path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        defer { unlink(file) }
        let tool = try Tool(["capable", "--json"])
        let runner = try Runner(), dropped = try Runner(wrapper: ["/usr/bin/setpriv", "--bounding-set=-chown"])
        sync(tool, runner)
        let printed = dropped.run([testHelperPath, "chown", file])
        XCTAssertTrue(printed.contains("result -\(EPERM)"), "chown without CAP_CHOWN did not fail: \(printed)")
        let event = try XCTUnwrap(waitForEvent(tool, pid: helperPID(printed) ?? -1, cap: Self.chown))
        XCTAssertEqual(event["name"] as? String, "CAP_CHOWN")
        XCTAssertEqual(event["verdict"] as? String, "deny")
        XCTAssertEqual(event["ret"] as? Int, -Int(EPERM))

        let allowed = helper(runner, ["chown", file])
        XCTAssertEqual(waitForEvent(tool, pid: allowed, cap: Self.chown)?["verdict"] as? String, "allow")
        tool.stop()
    }

    func testTableRow() throws {
        let tool = try Tool(["capable", "-x"])
        let header = try XCTUnwrap(tool.stdout.wait(timeout: 30) { $0.hasPrefix("TIME") })
        XCTAssertEqual(header, "TIME     UID    PID    TID    COMM              CAP NAME                 VERDICT USERNS")
        let runner = try Runner()
        var row: String?
        for _ in 0..<100 where row == nil {
            let pid = helper(runner, ["rawsock"])
            row = tool.stdout.wait(timeout: 0.5) { $0.contains(" \(pid) ") && $0.contains("CAP_NET_RAW") }
        }
        let fields = try XCTUnwrap(row).split(separator: " ", omittingEmptySubsequences: true)
        XCTAssertEqual(fields.count, 9)
        XCTAssertEqual(fields[1], "0")
        XCTAssertEqual(fields[4], "testhelper")
        XCTAssertEqual(fields[5], "13")
        XCTAssertEqual(fields[7], "allow")
        tool.stop()
    }

    func testUniqueCollapsesRepeats() throws {
        let tool = try Tool(["capable", "--json", "--unique"])
        let runner = try Runner()
        sync(tool, runner)
        let pid = helper(runner, ["rawsock", "5"])
        XCTAssertNotNil(waitForEvent(tool, pid: pid, cap: Self.netRaw))
        let next = helper(runner, ["rawsock", "2"])
        XCTAssertNotNil(waitForEvent(tool, pid: next, cap: Self.netRaw), "another process's first check not shown")
        XCTAssertEqual(events(tool, pid: pid, cap: Self.netRaw).count, 1, "--unique repeated a check of one process")
        tool.stop()

        // Without --unique every check shows.
        let all = try Tool(["capable", "--json"])
        sync(all, runner)
        let again = helper(runner, ["rawsock", "5"])
        let barrierPID = helper(runner, ["rawsock"])
        XCTAssertNotNil(waitForEvent(all, pid: barrierPID, cap: Self.netRaw))
        XCTAssertEqual(events(all, pid: again, cap: Self.netRaw).count, 5)
        all.stop()
    }

    func testUniquePerCgroup() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let first = try Runner(setup: cgroup.joinScript), second = try Runner(setup: cgroup.joinScript)
        let tool = try Tool(["capable", "--json", "--unique=cgroup", "--cgroupmap", map.path])
        var shown: Int?
        for _ in 0..<200 where shown == nil {
            let pid = helper(first, ["rawsock"])
            if tool.stdout.wait(timeout: 0.25, { self.isEvent($0, pid: pid, cap: Self.netRaw) }) != nil { shown = pid }
        }
        XCTAssertNotNil(shown, "no check from the cgroup shown")
        let other = helper(second, ["rawsock"])
        // A check of another capability from the same cgroup proves the tool has caught up.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("chown")).path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        defer { unlink(file) }
        let chowner = helper(second, ["chown", file])
        XCTAssertNotNil(waitForEvent(tool, pid: chowner, cap: Self.chown))
        XCTAssertTrue(events(tool, pid: other, cap: Self.netRaw).isEmpty, "--unique=cgroup repeated a capability of the cgroup")
        tool.stop()
    }

    func testCgroupMapAndPidFilter() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript), outside = try Runner()
        let tool = try Tool(["capable", "--json", "--cgroupmap", map.path])
        sync(tool, inside)
        let out = helper(outside, ["rawsock"])
        let inPID = helper(inside, ["rawsock"])
        XCTAssertEqual(waitForEvent(tool, pid: inPID, cap: Self.netRaw)?["cgroup_id"] as? UInt64, cgroup.id)
        XCTAssertTrue(events(tool, pid: out, cap: Self.netRaw).isEmpty, "a check outside the cgroup was shown")
        tool.stop()

    }

    func testPidFilterSelectsTheProcess() throws {
        // The chosen process is a runner shell; its builtin `kill -0` on another user's process
        // is a CAP_KILL check made by the shell itself.
        let target = Process()
        target.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        target.arguments = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sleep", "600"]
        try target.run()
        defer { target.terminate(); target.waitUntilExit() }
        let chosen = try Runner(), other = try Runner()
        let tool = try Tool(["capable", "--json", "-p", String(chosen.pid)])
        let killCap = 5
        func signalCheck() -> Bool {
            chosen.run(["kill", "-0", String(target.processIdentifier)])
            return tool.stdout.wait(timeout: 0.25) { self.isEvent($0, pid: Int(chosen.pid), cap: killCap) } != nil
        }
        var attached = false
        for _ in 0..<200 where !attached { attached = signalCheck() }
        XCTAssertTrue(attached, "the chosen process's CAP_KILL check not shown")
        let outsider = helper(other, ["rawsock"])
        let before = events(tool, pid: Int(chosen.pid), cap: killCap).count
        chosen.run(["kill", "-0", String(target.processIdentifier)])
        var seen = 0
        XCTAssertNotNil(tool.stdout.wait(timeout: 20) { line in
            if self.isEvent(line, pid: Int(chosen.pid), cap: killCap) { seen += 1 }
            return seen > before
        }, "the barrier check was not shown")
        XCTAssertTrue(events(tool, pid: outsider, cap: Self.netRaw).isEmpty, "-p showed another process")
        tool.stop()
    }

    func testKernelStack() throws {
        let tool = try Tool(["capable", "--json", "-K"])
        let runner = try Runner()
        sync(tool, runner)
        let pid = helper(runner, ["rawsock"])
        let event = try XCTUnwrap(waitForEvent(tool, pid: pid, cap: Self.netRaw))
        let stack = try XCTUnwrap(event["kernel_stack"] as? [String])
        XCTAssertTrue(stack.first?.hasPrefix("cap_capable") ?? false, "\(stack)")
        XCTAssertTrue(stack.contains { $0.contains("sock_create") || $0.contains("inet_create") }, "\(stack)")
        tool.stop()
    }

    func testMountNamespaceMap() throws {
        let map = try PinnedMap.mntnsMap()
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"]), outside = try Runner()
        try map.add(try XCTUnwrap(mountNamespace(of: inside.pid)), valueSize: 4)
        let tool = try Tool(["capable", "--json", "--mntnsmap", map.path])
        sync(tool, inside)
        let out = helper(outside, ["rawsock"])
        let inPID = helper(inside, ["rawsock"])
        XCTAssertNotNil(waitForEvent(tool, pid: inPID, cap: Self.netRaw))
        XCTAssertTrue(events(tool, pid: out, cap: Self.netRaw).isEmpty, "a check outside the namespace was shown")
        tool.stop()
    }

    func testBadUniqueValue() throws {
        let result = try runCommand(bpfboxPath, ["capable", "--unique=thread"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderrLines.last?.contains("--unique") ?? false, result.stderr)
    }
}
