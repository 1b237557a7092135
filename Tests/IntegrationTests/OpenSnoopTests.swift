import Foundation
import XCTest

/// opensnoop against the real kernel, with unique paths as markers.
final class OpenSnoopTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    private var scratch: URL!

    override func setUp() {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("open"))
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: scratch) }

    private func file(_ tag: String, contents: String? = "x") -> String {
        let path = scratch.appendingPathComponent(uniqueMarker(tag)).path
        if let contents { _ = FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)) }
        return path
    }

    private func event(_ tool: Tool, path: String, timeout: TimeInterval = 20) -> [String: Any]? {
        var found: [String: Any]?
        _ = tool.stdout.wait(timeout: timeout) { line in
            guard line.contains(path),
                  let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  event["path"] as? String == path || event["full_path"] as? String == path else { return false }
            found = event
            return true
        }
        return found
    }

    func testOpenShowsPidCommAndFD() throws {
        let tool = try Tool(["opensnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let path = file("hit")
        let printed = runner.run([testHelperPath, "openat", "/", String(path.dropFirst())])
        let opened = try XCTUnwrap(tool.waitForEventLine { $0["path"] as? String == String(path.dropFirst()) })
        XCTAssertEqual(opened["pid"] as? Int, helperPID(printed))
        XCTAssertEqual(opened["comm"] as? String, "testhelper")
        XCTAssertEqual(opened["syscall"] as? String, "openat")
        XCTAssertEqual(opened["ret"] as? Int, opened["fd"] as? Int)
        XCTAssertGreaterThanOrEqual(opened["fd"] as? Int ?? -1, 3)
        XCTAssertEqual(opened["errno"] as? NSNull, NSNull())

        runner.exec(path, program: "/bin/cat")
        let cat = try XCTUnwrap(event(tool, path: path))
        XCTAssertEqual(cat["comm"] as? String, "cat")
        XCTAssertEqual(cat["flag_names"] as? [String], ["O_RDONLY"])
        tool.stop()
    }

    func testFailedOpenAndFailedOnly() throws {
        let tool = try Tool(["opensnoop", "--json", "-x"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let present = file("present"), missing = file("missing", contents: nil)
        runner.exec(present, program: "/bin/cat")
        runner.exec(missing, program: "/bin/cat")
        let failed = try XCTUnwrap(event(tool, path: missing))
        XCTAssertEqual(failed["fd"] as? Int, -1)
        XCTAssertEqual(failed["ret"] as? Int, -Int(ENOENT))
        XCTAssertEqual(failed["errno"] as? String, "ENOENT")
        XCTAssertFalse(tool.hasLine(containing: present), "-x showed a successful open")
        tool.stop()
    }

    func testTableShowsErrAndFD() throws {
        let tool = try Tool(["opensnoop", "-e"])
        XCTAssertEqual(tool.stdout.wait(timeout: 30) { $0.contains("PATH") }, "PID    COMM               FD ERR FLAGS    MODE PATH")
        let missing = file("missing", contents: nil)
        try runCommand("/bin/cat", [missing])
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.hasSuffix(missing) })
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        XCTAssertEqual(fields[1], "cat")
        XCTAssertEqual(fields[2], "-1")
        XCTAssertEqual(fields[3], "2")
        XCTAssertEqual(fields[5], "-")
        tool.stop()
    }

    func testOpenat2IsTraced() throws {
        let tool = try Tool(["opensnoop", "--json"])
        let runner = try Runner()
        waitUntilTracing(tool, via: runner)
        let path = file("at2")
        let printed = runner.run([testHelperPath, "openat2", path])
        XCTAssertTrue(printed.contains { $0.hasPrefix("result ") && !$0.hasPrefix("result -") }, "\(printed)")
        let opened = try XCTUnwrap(event(tool, path: path))
        XCTAssertEqual(opened["syscall"] as? String, "openat2")
        XCTAssertEqual(opened["pid"] as? Int, helperPID(printed))
        tool.stop()
    }

    func testFullPathForRelativeNames() throws {
        let tool = try Tool(["opensnoop", "--json", "-F"])
        let runner = try Runner(setup: "cd '\(scratch.path)'")
        waitUntilTracing(tool, via: runner)
        let path = file("rel")
        let name = URL(fileURLWithPath: path).lastPathComponent
        runner.exec(name, program: "/bin/cat")
        let fromCwd = try XCTUnwrap(tool.waitForEventLine { $0["path"] as? String == name }, "relative open not shown")
        XCTAssertEqual(fromCwd["full_path"] as? String, path, "the cwd was not resolved")

        // Relative to a directory fd (openat with a dirfd), not the cwd.
        let other = file("dirfd")
        let otherName = URL(fileURLWithPath: other).lastPathComponent
        runner.run(["cd", "/"])
        runner.run([testHelperPath, "openat", scratch.path, otherName])
        let fromDirfd = try XCTUnwrap(tool.waitForEventLine { $0["path"] as? String == otherName })
        XCTAssertEqual(fromDirfd["full_path"] as? String, other, "the dirfd was not resolved")
        tool.stop()
    }

    func testFlagFilter() throws {
        let tool = try Tool(["opensnoop", "--json", "-f", "O_CREAT", "-e"])
        let runner = try Runner()
        let created = file("created", contents: nil), read = file("read")
        waitUntilAttached(tool, trigger: { marker in
            runner.exec(self.scratch.appendingPathComponent(marker).path, program: "/usr/bin/touch")
        })
        runner.exec(read, program: "/bin/cat")
        runner.exec(created, program: "/usr/bin/touch")
        let event = try XCTUnwrap(event(tool, path: created))
        XCTAssertTrue((event["flag_names"] as? [String] ?? []).contains("O_CREAT"))
        XCTAssertEqual(event["mode"] as? Int, 0o666)
        XCTAssertFalse(tool.hasLine(containing: read), "-f O_CREAT showed a read-only open")
        tool.stop()
    }

    func testExecTracesOnlyTheCommand() throws {
        let inside = file("inside"), outside = file("outside")
        let tool = try Tool(["opensnoop", "--json", "--exec", "/bin/sh", "-c",
                             "cat '\(inside)' > /dev/null; sh -c \"cat '\(inside)-child'\" 2>/dev/null; true"])
        // The tool ends when the command ends; an open made meanwhile by another process is absent.
        try runCommand("/bin/cat", [outside])
        XCTAssertTrue(tool.process.isRunning || tool.process.terminationStatus == 0)
        tool.process.waitUntilExit()
        XCTAssertEqual(tool.process.terminationStatus, 0, tool.stderr.all.joined(separator: "\n"))
        _ = tool.stdout.waitForEnd(timeout: 10)
        XCTAssertNotNil(event(tool, path: inside, timeout: 1), "the command's open not shown")
        XCTAssertNotNil(event(tool, path: inside + "-child", timeout: 1), "the grandchild's open not shown")
        XCTAssertFalse(tool.hasLine(containing: outside), "--exec showed another process")
    }

    func testCgroupMapSelectsTheCgroup() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript), outside = try Runner()
        let tool = try Tool(["opensnoop", "--json", "--cgroupmap", map.path])
        waitUntilTracing(tool, via: inside)
        let outPath = file("outside"), inPath = file("inside")
        outside.exec(outPath, program: "/bin/cat")
        inside.exec(inPath, program: "/bin/cat")
        let event = try XCTUnwrap(event(tool, path: inPath))
        XCTAssertEqual(event["cgroup_id"] as? UInt64, cgroup.id)
        XCTAssertFalse(tool.hasLine(containing: outPath))
        tool.stop()
    }

    func testMountNamespaceMapSelectsTheNamespace() throws {
        let map = try PinnedMap.mntnsMap()
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"]), outside = try Runner()
        try map.add(try XCTUnwrap(mountNamespace(of: inside.pid)), valueSize: 4)
        let tool = try Tool(["opensnoop", "--json", "--mntnsmap", map.path])
        waitUntilTracing(tool, via: inside)
        let outPath = file("outside"), inPath = file("inside")
        outside.exec(outPath, program: "/bin/cat")
        inside.exec(inPath, program: "/bin/cat")
        XCTAssertNotNil(event(tool, path: inPath))
        XCTAssertFalse(tool.hasLine(containing: outPath))
        tool.stop()
    }

    func testPidAndNameFilters() throws {
        let chosen = try Runner(), other = try Runner()
        let tool = try Tool(["opensnoop", "--json", "-n", "sh", "-p", String(chosen.pid)])
        // The shell's own opens (redirections) are the ones -p selects.
        waitUntilAttached(tool, trigger: { marker in chosen.run(["eval", "true < /nonexistent/\(marker)"]) })
        let otherPath = file("other"), chosenPath = file("chosen")
        other.run(["eval", "true < '\(otherPath)'"])
        chosen.run(["eval", "true < '\(chosenPath)'"])
        let event = try XCTUnwrap(event(tool, path: chosenPath))
        XCTAssertEqual(event["pid"] as? Int, Int(chosen.pid))
        XCTAssertFalse(tool.hasLine(containing: otherPath))
        tool.stop()
    }

    func testBadFlagName() throws {
        let result = try runCommand(bpfboxPath, ["opensnoop", "-f", "O_BOGUS"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderrLines.last?.contains("unknown flag 'O_BOGUS'") ?? false, result.stderr)
    }

    func testNegativePid() throws {
        let result = try runCommand(bpfboxPath, ["opensnoop", "-p", "-5"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderrLines.last?.hasPrefix("opensnoop: error: -p/--pid") ?? false, result.stderr)
    }

    func testMissingMap() throws {
        let result = try runCommand(bpfboxPath, ["opensnoop", "--cgroupmap", "/sys/fs/bpf/" + uniqueMarker("none")])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderrLines.count, 1)
        XCTAssertTrue(result.stderr.contains("no map is pinned there"))
    }
}
