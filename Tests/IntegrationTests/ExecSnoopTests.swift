import Foundation
import XCTest

/// execsnoop against the real kernel: real BPF programs, real execs with unique markers.
final class ExecSnoopTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    func testExecShowsIdentityAndFullArgv() throws {
        let tool = try Tool(["execsnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)

        let marker = uniqueMarker("argv")
        let child = try runCommand("/bin/sh", ["-c", "exec /bin/true \(marker) 'two words' last"])
        XCTAssertEqual(child.status, 0)
        let event = try XCTUnwrap(tool.waitForEvent(argv: marker), "exec of the marker not shown")
        XCTAssertEqual(event["comm"] as? String, "true")
        XCTAssertEqual(event["filename"] as? String, "/bin/true")
        XCTAssertEqual(event["argv"] as? [String], ["/bin/true", marker, "two words", "last"])
        XCTAssertEqual(event["ret"] as? Int, 0)
        XCTAssertEqual(event["uid"] as? Int, 0)
        XCTAssertEqual(event["ppid"] as? Int, Int(getpid()), "the shell exec'd in place: its parent is this test")
        XCTAssertEqual(event["syscall"] as? String, "execve")
        XCTAssertEqual(event["argv_truncated"] as? Bool, false)
        XCTAssertNotNil(event["cgroup_id"] as? Int)
        XCTAssertNotNil(event["mntns_id"] as? Int)
        XCTAssertEqual(tool.stop(), 0)
    }

    func testPidMatchesTheProcess() throws {
        let tool = try Tool(["execsnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let marker = uniqueMarker("pid")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        process.arguments = [marker]
        try process.run()
        process.waitUntilExit()
        let event = try XCTUnwrap(tool.waitForEvent(argv: marker))
        XCTAssertEqual(event["pid"] as? Int, Int(process.processIdentifier))
        XCTAssertEqual(event["tid"] as? Int, Int(process.processIdentifier))
        XCTAssertEqual(event["ppid"] as? Int, Int(getpid()))
        tool.stop()
    }

    func testCgroupMapSelectsTheCgroup() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript)
        let outside = try Runner()
        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", map.path])
        waitUntilTracing(tool, via: inside)

        let outMarker = uniqueMarker("outside"), inMarker = uniqueMarker("inside")
        outside.exec(outMarker)
        inside.exec(inMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: inMarker), "exec inside the cgroup not shown")
        XCTAssertEqual(event["cgroup_id"] as? UInt64, cgroup.id)
        XCTAssertFalse(tool.hasLine(containing: outMarker), "exec outside the cgroup was shown")
        tool.stop()
    }

    func testMountNamespaceMapSelectsTheNamespace() throws {
        let map = try PinnedMap.mntnsMap()
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"])
        let namespace = try XCTUnwrap(mountNamespace(of: inside.pid))
        XCTAssertNotEqual(namespace, mountNamespace(of: getpid()))
        try map.add(namespace, valueSize: 4)
        let outside = try Runner()
        let tool = try Tool(["execsnoop", "--json", "--mntnsmap", map.path])
        waitUntilTracing(tool, via: inside)

        let outMarker = uniqueMarker("outside"), inMarker = uniqueMarker("inside")
        outside.exec(outMarker)
        inside.exec(inMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: inMarker), "exec inside the namespace not shown")
        XCTAssertEqual(event["mntns_id"] as? UInt64, namespace)
        XCTAssertFalse(tool.hasLine(containing: outMarker), "exec outside the namespace was shown")
        tool.stop()
    }

    func testBothMapsMustMatch() throws {
        let cgroup = try TestCgroup()
        let cgroupMap = try PinnedMap.cgroupMap(), mntnsMap = try PinnedMap.mntnsMap()
        let both = try Runner(setup: cgroup.joinScript, wrapper: ["/usr/bin/unshare", "-m"])
        let namespace = try XCTUnwrap(mountNamespace(of: both.pid))
        let cgroupOnly = try Runner(setup: cgroup.joinScript)
        let namespaceOnly = try Runner(wrapper: ["/usr/bin/nsenter", "-t", String(both.pid), "-m"])
        XCTAssertEqual(mountNamespace(of: namespaceOnly.pid), namespace)
        try cgroupMap.add(cgroup.id, valueSize: 8)
        try mntnsMap.add(namespace, valueSize: 4)
        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", cgroupMap.path, "--mntnsmap", mntnsMap.path])
        waitUntilTracing(tool, via: both)

        let cgroupMarker = uniqueMarker("cgonly"), nsMarker = uniqueMarker("nsonly"), bothMarker = uniqueMarker("both")
        cgroupOnly.exec(cgroupMarker)
        namespaceOnly.exec(nsMarker)
        both.exec(bothMarker)
        XCTAssertNotNil(tool.waitForEvent(argv: bothMarker), "exec matching both maps not shown")
        XCTAssertFalse(tool.hasLine(containing: cgroupMarker), "exec matching only the cgroup map was shown")
        XCTAssertFalse(tool.hasLine(containing: nsMarker), "exec matching only the mount namespace map was shown")
        tool.stop()
    }

    func testMapUpdatesApplyWhileRunning() throws {
        let first = try TestCgroup(), second = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(first.id, valueSize: 8)
        let runnerA = try Runner(setup: first.joinScript)
        let runnerB = try Runner(setup: second.joinScript)
        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", map.path])
        waitUntilTracing(tool, via: runnerA)

        let before = uniqueMarker("before")
        runnerB.exec(before)
        barrier(tool, via: runnerA)
        XCTAssertFalse(tool.hasLine(containing: before), "cgroup not yet in the map was shown")

        try map.add(second.id, valueSize: 8)
        let after = uniqueMarker("after")
        runnerB.exec(after)
        XCTAssertNotNil(tool.waitForEvent(argv: after), "cgroup added while running not shown")

        try map.remove(first.id)
        let removed = uniqueMarker("removed")
        runnerA.exec(removed)
        barrier(tool, via: runnerB)
        XCTAssertFalse(tool.hasLine(containing: removed), "cgroup removed while running still shown")
        tool.stop()
    }

    func testFailedExecWithFails() throws {
        let tool = try Tool(["execsnoop", "--json", "-x"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let missing = "/nonexistent/" + uniqueMarker("fail")
        runner.exec("arg", program: missing)
        let event = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains(missing) }.flatMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }, "failed exec not shown with -x")
        XCTAssertEqual(event["ret"] as? Int, -Int(ENOENT))
        XCTAssertEqual(event["errno"] as? String, "ENOENT")
        XCTAssertEqual(event["filename"] as? String, missing)
        XCTAssertEqual(event["argv"] as? [String], [missing, "arg"])
        tool.stop()
    }

    func testFailedExecHiddenWithoutFails() throws {
        let tool = try Tool(["execsnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let missing = "/nonexistent/" + uniqueMarker("fail")
        runner.exec("arg", program: missing)
        barrier(tool, via: runner)
        XCTAssertFalse(tool.hasLine(containing: missing))
        tool.stop()
    }

    func testUidZeroSelectsRoot() throws {
        let tool = try Tool(["execsnoop", "--json", "-u", "0"])
        let root = try Runner()
        let nobody = try Runner(wrapper: ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"])
        waitUntilTracing(tool, via: root)
        let nobodyMarker = uniqueMarker("nobody"), rootMarker = uniqueMarker("root")
        nobody.exec(nobodyMarker)
        root.exec(rootMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: rootMarker), "root's exec not shown with -u 0")
        XCTAssertEqual(event["uid"] as? Int, 0)
        XCTAssertFalse(tool.hasLine(containing: nobodyMarker), "uid 65534's exec shown with -u 0")
        tool.stop()
    }

    func testUidByName() throws {
        let tool = try Tool(["execsnoop", "--json", "--uid=nobody"])
        let root = try Runner()
        let nobody = try Runner(wrapper: ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"])
        waitUntilTracing(tool, via: nobody)
        let nobodyMarker = uniqueMarker("nobody"), rootMarker = uniqueMarker("root")
        root.exec(rootMarker)
        nobody.exec(nobodyMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: nobodyMarker))
        XCTAssertEqual(event["uid"] as? Int, 65534)
        XCTAssertFalse(tool.hasLine(containing: rootMarker))
        tool.stop()
    }

    func testNameRegexMatchesComm() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("bin"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let selected = dir.appendingPathComponent("bbxselected").path
        try FileManager.default.createSymbolicLink(atPath: selected, withDestinationPath: "/bin/true")
        let tool = try Tool(["execsnoop", "--json", "-n", "^bbxsel"])
        let runner = try Runner()
        for attempt in 0..<200 {
            let marker = uniqueMarker("sync\(attempt)")
            runner.exec(marker, program: selected)
            if tool.stdout.wait(timeout: 0.25, { $0.contains(marker) }) != nil { break }
        }
        let other = uniqueMarker("other"), match = uniqueMarker("match")
        runner.exec(other)
        runner.exec(match, program: selected)
        let event = try XCTUnwrap(tool.waitForEvent(argv: match))
        XCTAssertEqual(event["comm"] as? String, "bbxselected")
        XCTAssertFalse(tool.hasLine(containing: other), "-n let a non-matching comm through")
        tool.stop()
    }

    func testLineRegexMatchesArguments() throws {
        let tool = try Tool(["execsnoop", "--json", "-l", "bbx-(sync|want)"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let skipped = "skip-" + uniqueMarker("x"), wanted = uniqueMarker("want")
        runner.exec(skipped)
        runner.exec(wanted)
        XCTAssertNotNil(tool.waitForEvent(argv: wanted))
        XCTAssertFalse(tool.hasLine(containing: skipped), "-l let non-matching arguments through")
        tool.stop()
    }

    func testParentPidFilter() throws {
        let parent = try Runner()
        let other = try Runner()
        let tool = try Tool(["execsnoop", "--json", "-P", String(parent.pid)])
        waitUntilTracing(tool, via: parent)
        let otherMarker = uniqueMarker("other"), childMarker = uniqueMarker("child")
        other.exec(otherMarker)
        parent.exec(childMarker)
        let event = try XCTUnwrap(tool.waitForEvent(argv: childMarker))
        XCTAssertEqual(event["ppid"] as? Int, Int(parent.pid))
        XCTAssertFalse(tool.hasLine(containing: otherMarker), "-P let another parent's child through")
        tool.stop()
    }

    func testMaxArgsAndQuote() throws {
        let tool = try Tool(["execsnoop", "-q", "--max-args", "2"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.hasPrefix("PCOMM") }, "no header")
        let marker = uniqueMarker("args")
        try runCommand("/bin/true", [marker, "say \"hi\"", "third", "fourth"])
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains(marker) })
        XCTAssertTrue(line.hasSuffix("\"/bin/true\" \"\(marker)\" \"say \\\"hi\\\"\" ..."), line)
        XCTAssertFalse(line.contains("third"))
        tool.stop()
    }

    func testTableColumns() throws {
        let tool = try Tool(["execsnoop", "-T", "-t", "-U"])
        let header = try XCTUnwrap(tool.stdout.wait(timeout: 30) { $0.contains("PCOMM") })
        XCTAssertEqual(header, "TIME     TIME(s)  UID    PCOMM            PID     PPID    RET ARGS")
        let marker = uniqueMarker("cols")
        try runCommand("/bin/true", [marker])
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains(marker) })
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        XCTAssertEqual(fields.count, 9, line)
        XCTAssertEqual(fields[2], "0")
        XCTAssertEqual(fields[3], "true")
        XCTAssertEqual(fields[6], "0")
        XCTAssertEqual(String(fields[7]), "/bin/true")
        tool.stop()
    }

    func testExecveatIsTraced() throws {
        let tool = try Tool(["execsnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let marker = uniqueMarker("at")
        let result = try runCommand(testHelperPath, ["execveat", "/bin/true", marker])
        XCTAssertEqual(result.status, 0, result.stderr)
        let event = try XCTUnwrap(tool.waitForEvent(argv: marker) { $0["syscall"] as? String == "execveat" },
                                  "execveat not shown")
        XCTAssertEqual(event["syscall"] as? String, "execveat")
        XCTAssertEqual((event["argv"] as? [String])?.last, marker)
        XCTAssertEqual(event["comm"] as? String, "true")
        tool.stop()
    }

    func testControlCharactersAreEscaped() throws {
        let tool = try Tool(["execsnoop"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.hasPrefix("PCOMM") })
        let marker = uniqueMarker("esc")
        try runCommand("/bin/true", [marker + "\u{1B}[31mred\nnext"])
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains(marker) })
        XCTAssertTrue(line.contains(marker + "\\x1b[31mred\\nnext"), line)
        XCTAssertFalse(line.contains("\u{1B}"))
        tool.stop()
    }

    func testSigtermEndsCleanly() throws {
        let tool = try Tool(["execsnoop"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.hasPrefix("PCOMM") })
        kill(tool.process.processIdentifier, SIGTERM)
        tool.process.waitUntilExit()
        XCTAssertEqual(tool.process.terminationStatus, 0)
        XCTAssertEqual(tool.process.terminationReason, .exit)
    }

    func testLostEventsAreReported() throws {
        // A 4 KiB ring and a stopped reader: execs overflow the ring while the tool cannot read.
        let tool = try Tool(["execsnoop", "--json", "--ringbuf-kb", "4"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        kill(tool.process.processIdentifier, SIGSTOP)
        for i in 0..<100 { runner.exec(uniqueMarker("flood\(i)")) }
        kill(tool.process.processIdentifier, SIGCONT)
        let warning = tool.stderr.wait(timeout: 20) { $0.contains("events lost") }
        XCTAssertNotNil(warning, "lost events not reported on stderr")
        let record = tool.stdout.wait(timeout: 20) { $0.hasPrefix("{\"lost_events\":") }
        let parsed = record.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertGreaterThan(parsed?["lost_events"] as? Int ?? 0, 0, "no JSON lost-events record")
        tool.stop()
    }

    func testScriptShowsTheCallersArguments() throws {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("script")).path
        XCTAssertTrue(FileManager.default.createFile(atPath: script, contents: Data("#!/bin/sh\ntrue\n".utf8),
                                                     attributes: [.posixPermissions: 0o755]))
        defer { unlink(script) }
        let tool = try Tool(["execsnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let marker = uniqueMarker("arg")
        runner.exec(marker, program: script)
        let event = try XCTUnwrap(tool.waitForEvent(argv: marker))
        XCTAssertEqual(event["script"] as? Bool, true)
        XCTAssertEqual(event["filename"] as? String, script)
        XCTAssertEqual(event["argv"] as? [String], ["/bin/sh", script, marker])
        tool.stop()

        let table = try Tool(["execsnoop"])
        XCTAssertNotNil(table.stdout.wait(timeout: 30) { $0.hasPrefix("PCOMM") })
        let second = uniqueMarker("arg")
        runner.exec(second, program: script)
        let line = try XCTUnwrap(table.stdout.wait(timeout: 20) { $0.contains(second) })
        XCTAssertTrue(line.hasSuffix(" \(script) \(second)"), line)
        XCTAssertFalse(line.contains("\(script) \(script)"), line)
        table.stop()
    }
}
