import ContainerFilter
import Foundation
import XCTest

/// `bpfbox filter` against the real kernel: maps that bpftool reads back, keys from real cgroups,
/// processes and namespaces.
final class FilterTests: XCTestCase {
    private var directories: [String] = []

    override func setUpWithError() throws { try requireRoot() }

    override func tearDown() {
        for dir in directories { _ = try? runCommand("/bin/rm", ["-rf", dir]) }
    }

    /// A fresh directory on bpffs (not yet created: `filter create` makes it).
    func bpffsDirectory() -> String {
        let dir = "/sys/fs/bpf/" + uniqueMarker("filter")
        directories.append(dir)
        return dir
    }

    func filter(_ arguments: [String], stdin: String? = nil) throws -> Completed {
        guard let stdin else { return try runCommand(bpfboxPath, ["filter"] + arguments) }
        let script = "printf '%s' \"$1\" | \"$0\" filter \"${@:2}\""
        return try runCommand("/bin/bash", ["-c", script, bpfboxPath, stdin] + arguments)
    }

    func assertOneLineFailure(_ result: Completed, status: Int32 = 1, contains text: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, status == 2 ? result.stderrLines.count : 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderrLines.last?.contains(text) == true, "'\(text)' not in: \(result.stderr)", file: file, line: line)
    }

    func testCreateMakesBccLayoutsThatBpftoolConfirms() throws {
        let dir = bpffsDirectory()
        for (type, valueSize) in [("cgroup", 8), ("mntns", 4)] {
            let path = "\(dir)/sub/\(type)"
            let created = try filter(["create", path, "--type", type, "--entries", "64"])
            XCTAssertEqual(created.status, 0, created.stderr)
            XCTAssertTrue(created.stdout.hasPrefix("created \(path)"), created.stdout)
            let shown = try XCTUnwrap(jsonObject(try runCommand(bpftoolPath, ["-j", "map", "show", "pinned", path]).stdout))
            XCTAssertEqual(shown["type"] as? String, "hash")
            XCTAssertEqual(shown["bytes_key"] as? Int, 8)
            XCTAssertEqual(shown["bytes_value"] as? Int, valueSize)
            XCTAssertEqual(shown["max_entries"] as? Int, 64)

            let again = try filter(["create", path, "--type", type])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertTrue(again.stdout.contains("kept it"), again.stdout)
        }
        let other = try filter(["create", "\(dir)/sub/cgroup", "--type", "mntns"])
        assertOneLineFailure(other, contains: "a map of the other layout (cgroup, value 8 bytes) is pinned there")
        XCTAssertEqual(other.stdout, "")
    }

    func testCreateOutsideBPFFSIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("notbpffs")).path
        let result = try filter(["create", path, "--type", "cgroup"])
        assertOneLineFailure(result, contains: "not on a BPF filesystem")
        XCTAssertTrue(result.stderr.contains("pin filter maps under /sys/fs/bpf"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    /// The keys of a pinned map, read by bpftool.
    func dumpedKeys(_ path: String) throws -> [UInt64] {
        let dump = try runCommand(bpftoolPath, ["-j", "map", "dump", "pinned", path])
        let entries = try XCTUnwrap((try? JSONSerialization.jsonObject(with: Data(dump.stdout.utf8))) as? [[String: Any]], dump.stdout)
        return entries.compactMap { entry in
            (entry["key"] as? [String])?.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1.dropFirst(2), radix: 16)! }
        }.sorted()
    }

    func testCgroupMapByDirectoryAndPid() throws {
        let path = bpffsDirectory() + "/cg"
        XCTAssertEqual(try filter(["create", path, "--type", "cgroup"]).status, 0)
        let cgroup = try TestCgroup()
        let mount = try XCTUnwrap(CgroupV2.mountPoint())
        let relative = String(cgroup.path.dropFirst(mount.count))
        let added = try filter(["add", path, "--cgroup", relative])
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertEqual(added.stdout, "added \(cgroup.id) (cgroup \(relative)) to \(path)")
        XCTAssertEqual(try dumpedKeys(path), [cgroup.id])

        let runner = try Runner(setup: cgroup.joinScript)
        let again = try filter(["add", path, "--pid", String(runner.pid)])
        XCTAssertTrue(again.stdout.hasPrefix("\(cgroup.id) (cgroup \(relative) of pid \(runner.pid) (sh)) is already in"), again.stdout)

        let listed = try filter(["list", path, "--json"])
        let row = try XCTUnwrap(jsonObject(listed.stdout), listed.stdout)
        XCTAssertEqual(row["key"] as? UInt64, cgroup.id)
        XCTAssertEqual(row["cgroup"] as? String, relative)
        XCTAssertEqual(row["stale"] as? Bool, false)
        let table = try filter(["list", path])
        XCTAssertEqual(table.stdout.split(separator: "\n").count, 2, table.stdout)
        XCTAssertTrue(table.stdout.contains(relative), table.stdout)

        XCTAssertEqual(try filter(["del", path, "--cgroup", cgroup.path]).status, 0)
        XCTAssertEqual(try dumpedKeys(path), [])
        let absent = try filter(["del", path, "--id", String(cgroup.id)])
        XCTAssertEqual(absent.stdout, "\(cgroup.id) (given as a number) was not in \(path)")
    }

    func testMountNamespaceMapByPid() throws {
        let path = bpffsDirectory() + "/ns"
        XCTAssertEqual(try filter(["create", path, "--type", "mntns"]).status, 0)
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"])
        let namespace = try XCTUnwrap(mountNamespace(of: inside.pid))
        XCTAssertEqual(try filter(["add", path, "--pid", String(inside.pid)]).status, 0)
        XCTAssertEqual(try dumpedKeys(path), [namespace])
        let row = try XCTUnwrap(jsonObject(try filter(["list", path, "--json"]).stdout))
        let processes = try XCTUnwrap(row["processes"] as? [[String: Any]])
        XCTAssertTrue(processes.contains { $0["pid"] as? Int == Int(inside.pid) }, "\(processes)")

        assertOneLineFailure(try filter(["add", path, "--cgroup", "/"]), contains: "this is a mntns map")
        XCTAssertEqual(try filter(["del", path, "--pid", String(inside.pid)]).status, 0)
        XCTAssertEqual(try dumpedKeys(path), [])
        XCTAssertEqual(try filter(["destroy", path]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testBadInputIsOneClearLine() throws {
        let path = bpffsDirectory() + "/cg"
        XCTAssertEqual(try filter(["create", path, "--type", "cgroup"]).status, 0)
        let unknown = try filter(["bogus", path])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.hasPrefix("usage: filter"), unknown.stderr)
        XCTAssertEqual(unknown.stderrLines.last, "filter: error: unknown subcommand 'bogus' (subcommands: create, add, del, list, destroy, oci-hook)")
        XCTAssertEqual(try filter(["add", path, "--bogus", "1"]).stderrLines.last, "filter: error: unrecognized option '--bogus'")
        XCTAssertEqual(try filter(["add", path]).status, 2)
        XCTAssertEqual(try filter(["list", path, "--type", "cgroup"]).stderrLines.last, "filter: error: --type does not apply to 'filter list'")
        assertOneLineFailure(try filter(["add", path, "--container", uniqueMarker("nosuch")]), contains: "no container matches")
        assertOneLineFailure(try filter(["add", path, "--pid", "2147483646"]), contains: "--pid 2147483646: no such process")
        assertOneLineFailure(try filter(["add", bpffsDirectory() + "/none", "--pid", "1"]),
                             contains: "no such map, and its directory")

        XCTAssertEqual(try filter(["list", path]).status, 0)
        let wrong = try PinnedMap(keySize: 4, valueSize: 8)
        assertOneLineFailure(try filter(["list", wrong.path]), contains: "not a filter map")
        assertOneLineFailure(try filter(["destroy", wrong.path]), contains: "not a filter map")
        XCTAssertTrue(FileManager.default.fileExists(atPath: wrong.path), "destroy left a map that is not a filter map")
    }

    func testHookNeverFailsOnBadInputUnlessStrict() throws {
        let path = bpffsDirectory() + "/cg"
        XCTAssertEqual(try filter(["create", path, "--type", "cgroup"]).status, 0)
        let hook = ["oci-hook", "prestart", "--cgroupmap", path]
        for (input, message) in [("{not json", "not valid JSON"), ("{\"id\":\"x\",\"status\":\"created\"}", "has no pid")] {
            let lenient = try filter(hook, stdin: input)
            XCTAssertEqual(lenient.status, 0, lenient.stderr)
            XCTAssertEqual(lenient.stderrLines.count, 1, lenient.stderr)
            XCTAssertTrue(lenient.stderr.contains(message), lenient.stderr)
            XCTAssertEqual(try filter(hook + ["--strict"], stdin: input).status, 1)
        }
        let missing = try filter(["oci-hook", "prestart", "--cgroupmap", path + "-missing"], stdin: "{\"id\":\"x\",\"pid\":1}")
        XCTAssertEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no map is pinned there"), missing.stderr)
        // Arguments the hook cannot use: said, and the container still starts.
        let noMap = try filter(["oci-hook", "prestart"], stdin: "{\"id\":\"x\",\"pid\":1}")
        XCTAssertEqual(noMap.status, 0, noMap.stderr)
        XCTAssertTrue(noMap.stderr.contains("needs --cgroupmap PATH"), noMap.stderr)
        XCTAssertEqual(try filter(["oci-hook", "prestart", "--strict"], stdin: "{}").status, 2)
        XCTAssertEqual(try dumpedKeys(path), [])
    }
}
