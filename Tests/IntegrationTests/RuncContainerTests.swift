import ContainerFilter
import Foundation
import XCTest

/// Real runc containers (a busybox-static rootfs): `filter add --container` and the OCI hook,
/// checked with execsnoop.
final class RuncContainerTests: XCTestCase {
    private var containers: [String] = []
    private var cleanup: [String] = []
    private var bundle = ""

    static let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) }

    override func setUpWithError() throws {
        try requireRoot()
        guard let runc = Self.runc, Self.busybox != nil else {
            let reason = "needs runc and busybox-static (apt-get install -y runc busybox-static)"
            if ProcessInfo.processInfo.environment["BPFBOX_REQUIRE_PRIVILEGED"] == "1" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        _ = runc
        bundle = try makeBundle()
        cleanup.append(bundle)
    }

    override func tearDown() {
        for id in containers { _ = try? runCommand(Self.runc!, ["delete", "-f", id]) }
        for path in cleanup { _ = try? runCommand("/bin/rm", ["-rf", path]) }
    }

    /// A bundle: rootfs/bin with busybox and its links, and runc's default spec.
    func makeBundle() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("bundle")).path
        let bin = dir + "/rootfs/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.busybox!, toPath: bin + "/busybox")
        for name in ["sh", "sleep", "true", "echo", "cat"] {
            try FileManager.default.createSymbolicLink(atPath: "\(bin)/\(name)", withDestinationPath: "busybox")
        }
        let spec = try runCommand(Self.runc!, ["spec", "--bundle", dir])
        guard spec.status == 0 else { throw TestError("runc spec failed: \(spec.stderr)") }
        return dir
    }

    /// Edits the bundle's config.json: the process's arguments, no terminal, and optional hooks.
    func configure(args: [String], hooks: [String: Any]? = nil) throws {
        let url = URL(fileURLWithPath: bundle + "/config.json")
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var process = try XCTUnwrap(config["process"] as? [String: Any])
        process["args"] = args
        process["terminal"] = false
        config["process"] = process
        if let hooks { config["hooks"] = hooks }
        try JSONSerialization.data(withJSONObject: config).write(to: url)
    }

    /// Starts the bundle's container in the background. The container's process inherits the
    /// output of `runc run -d`: it goes to a file, not to a pipe that would stay open.
    func startContainer() throws -> String {
        let id = uniqueMarker("ctr")
        containers.append(id)
        let log = bundle + "/run.log"
        guard FileManager.default.createFile(atPath: log, contents: nil) else { throw TestError("cannot create \(log)") }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.runc!)
        process.arguments = ["run", "-d", "--bundle", bundle, id]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestError("runc run failed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        return id
    }

    func filter(_ arguments: [String]) throws -> Completed {
        let result = try runCommand(bpfboxPath, ["filter"] + arguments)
        XCTAssertEqual(result.status, 0, "filter \(arguments): \(result.stderr)")
        return result
    }

    func mapDirectory() -> String {
        let dir = "/sys/fs/bpf/" + uniqueMarker("runc")
        cleanup.append(dir)
        return dir
    }

    func keyCount(_ path: String) throws -> Int {
        let dump = try runCommand(bpftoolPath, ["-j", "map", "dump", "pinned", path])
        return ((try? JSONSerialization.jsonObject(with: Data(dump.stdout.utf8))) as? [Any])?.count ?? -1
    }

    func testAddByContainerSelectsItsExecs() throws {
        try configure(args: ["sleep", "1000"])
        let id = try startContainer()
        let map = mapDirectory() + "/cg"
        _ = try filter(["create", map, "--type", "cgroup"])
        let added = try filter(["add", map, "--container", id])
        XCTAssertTrue(added.stdout.contains("cgroup /\(id) of container \(id) (runc)"), added.stdout)
        let listed = try filter(["list", map, "--json"])
        let row = try XCTUnwrap(jsonObject(listed.stdout))
        XCTAssertEqual((row["container"] as? [String: Any])?["id"] as? String, id)

        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", map])
        waitUntilAttached(tool) { marker in
            _ = try? runCommand(Self.runc!, ["exec", id, "/bin/echo", marker])
        }
        let host = uniqueMarker("host"), inside = uniqueMarker("inside")
        _ = try runCommand("/bin/echo", [host])
        _ = try runCommand(Self.runc!, ["exec", id, "/bin/echo", inside])
        XCTAssertNotNil(tool.waitForEvent(argv: inside), "the container's exec not shown")
        XCTAssertFalse(tool.hasLine(containing: host), "a host exec was shown")
        tool.stop()
    }

    func testContainerSelectorAndContainersColumn() throws {
        try configure(args: ["sleep", "1000"])
        let id = try startContainer()
        let tool = try Tool(["execsnoop", "--json", "--containers", "--container", id])
        waitUntilAttached(tool) { marker in
            _ = try? runCommand(Self.runc!, ["exec", id, "/bin/echo", marker])
        }
        let host = uniqueMarker("host"), inside = uniqueMarker("inside")
        _ = try runCommand("/bin/echo", [host])
        _ = try runCommand(Self.runc!, ["exec", id, "/bin/echo", inside])
        let event = try XCTUnwrap(tool.waitForEvent(argv: inside), "the container's exec not shown")
        let container = try XCTUnwrap(event["container"] as? [String: Any], "no container object: \(event)")
        XCTAssertEqual(container["id"] as? String, id)
        XCTAssertEqual(container["runtime"] as? String, "runc")
        XCTAssertFalse(tool.hasLine(containing: host), "a host exec was shown")
        tool.stop()

        let table = try Tool(["execsnoop", "--containers", "--container", id])
        waitUntilAttached(table) { marker in
            _ = try? runCommand(Self.runc!, ["exec", id, "/bin/echo", marker])
        }
        let again = uniqueMarker("table")
        _ = try runCommand(Self.runc!, ["exec", id, "/bin/echo", again])
        let line = try XCTUnwrap(table.stdout.wait(timeout: 20) { $0.contains(again) })
        XCTAssertTrue(line.hasPrefix(String(id.prefix(12))), "CONTAINER column: \(line)")
        table.stop()
    }

    func testOCIHookCatchesTheFirstExecAndCleansUp() throws {
        let dir = mapDirectory()
        let cgroupMap = dir + "/cg", mntnsMap = dir + "/ns"
        let stateDir = "/run/" + uniqueMarker("oci")
        cleanup.append(stateDir)
        _ = try filter(["create", cgroupMap, "--type", "cgroup"])
        _ = try filter(["create", mntnsMap, "--type", "mntns"])
        func hook(_ stage: String) -> [[String: Any]] {
            [["path": bpfboxPath, "args": ["bpfbox", "filter", "oci-hook", stage, "--cgroupmap", cgroupMap,
                                           "--mntnsmap", mntnsMap, "--state-dir", stateDir, "--strict"]]]
        }
        let first = uniqueMarker("first")
        try configure(args: ["/bin/echo", first], hooks: ["prestart": hook("prestart"), "poststop": hook("poststop")])

        // A cgroup of the test's own, in the map, tells when execsnoop is attached.
        let sync = try TestCgroup()
        _ = try filter(["add", cgroupMap, "--cgroup", sync.path])
        let runner = try Runner(setup: sync.joinScript)
        let tool = try Tool(["execsnoop", "--json", "--cgroupmap", cgroupMap])
        waitUntilTracing(tool, via: runner)

        let id = try startContainer()
        let event = try XCTUnwrap(tool.waitForEvent(argv: first), "the container's first exec not shown")
        XCTAssertEqual(event["filename"] as? String, "/bin/echo")
        tool.stop()
        XCTAssertEqual(try keyCount(cgroupMap), 2, "the test's cgroup and the container's")
        XCTAssertEqual(try keyCount(mntnsMap), 1)
        XCTAssertEqual(FileManager.default.subpaths(atPath: stateDir)?.count, 1, "prestart noted what it added")

        let deleted = try runCommand(Self.runc!, ["delete", "-f", id])
        XCTAssertEqual(deleted.status, 0, deleted.stderr)
        XCTAssertEqual(try keyCount(cgroupMap), 1, "poststop left the container's cgroup id")
        XCTAssertEqual(try keyCount(mntnsMap), 0, "poststop left the container's mount namespace id")
        XCTAssertEqual(FileManager.default.subpaths(atPath: stateDir)?.count, 0)
    }
}
