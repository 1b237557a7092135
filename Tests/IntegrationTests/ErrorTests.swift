import Foundation
import XCTest

/// Bad input: one clear line, exit 2 for usage and 1 for run-time problems.
final class ErrorTests: XCTestCase {
    private func execsnoop(_ arguments: [String]) throws -> Completed {
        try runCommand(bpfboxPath, ["execsnoop"] + arguments)
    }

    private func assertRuntimeError(_ result: Completed, contains text: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, "expected one line, got: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("execsnoop: "), result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains(text), "'\(text)' not in: \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", file: file, line: line)
    }

    private func assertUsageError(_ result: Completed, contains text: String,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 2, result.stderr, file: file, line: line)
        let last = result.stderrLines.last ?? ""
        XCTAssertTrue(last.hasPrefix("execsnoop: error: "), result.stderr, file: file, line: line)
        XCTAssertTrue(last.contains(text), "'\(text)' not in: \(last)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("usage: execsnoop"), result.stderr, file: file, line: line)
    }

    func testUnknownOption() throws {
        assertUsageError(try execsnoop(["--bogus"]), contains: "unrecognized option '--bogus'")
        assertUsageError(try execsnoop(["-Z"]), contains: "unrecognized option '-Z'")
    }

    func testBadUID() throws {
        assertUsageError(try execsnoop(["-u", "no-such-user-bbx"]), contains: "neither a uid nor a known user name")
    }

    func testBadValues() throws {
        assertUsageError(try execsnoop(["--max-args", "0"]), contains: "--max-args")
        assertUsageError(try execsnoop(["-P", "-3"]), contains: "-P/--ppid")
        assertUsageError(try execsnoop(["-n", "(unclosed"]), contains: "not a valid regular expression")
        assertUsageError(try execsnoop(["stray"]), contains: "unexpected argument 'stray'")
        assertUsageError(try execsnoop(["--cgroupmap"]), contains: "needs a value")
    }

    func testMissingMapPath() throws {
        try requireRoot()
        let path = "/sys/fs/bpf/" + uniqueMarker("missing")
        assertRuntimeError(try execsnoop(["--cgroupmap", path]), contains: "no map is pinned there; create one with: bpftool map create \(path) type hash key 8 value 8")
        assertRuntimeError(try execsnoop(["--mntnsmap", path]), contains: "value 4")
    }

    func testMapNotOnBPFFS() throws {
        try requireRoot()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("notbpffs")).path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        defer { unlink(file) }
        assertRuntimeError(try execsnoop(["--cgroupmap", file]), contains: "not on a BPF filesystem")
    }

    func testWrongMapType() throws {
        try requireRoot()
        let map = try PinnedMap(keySize: 4, valueSize: 8, type: "array")
        assertRuntimeError(try execsnoop(["--cgroupmap", map.path]), contains: "map type is array, expected hash")
    }

    func testWrongKeySize() throws {
        try requireRoot()
        let map = try PinnedMap(keySize: 4, valueSize: 8)
        assertRuntimeError(try execsnoop(["--cgroupmap", map.path]), contains: "key size 4, expected 8")
    }

    func testWrongValueSize() throws {
        try requireRoot()
        let map = try PinnedMap(keySize: 8, valueSize: 8)
        assertRuntimeError(try execsnoop(["--mntnsmap", map.path]), contains: "value size 8, expected 4")
        let small = try PinnedMap(keySize: 8, valueSize: 4)
        assertRuntimeError(try execsnoop(["--cgroupmap", small.path]), contains: "value size 4, expected 8")
    }

    func testNotRoot() throws {
        try requireRoot() // needs root to drop to another user
        let result = try runCommand("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                                                         "--inh-caps=-all", bpfboxPath, "execsnoop"])
        assertRuntimeError(result, contains: "not root")
    }

    func testUnknownApplet() throws {
        let result = try runCommand(bpfboxPath, ["nosuchapplet"])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("unknown applet 'nosuchapplet'"))
        XCTAssertTrue(result.stderr.contains("execsnoop"))
    }

    func testDispatchOnArgv0() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("links"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let link = dir.appendingPathComponent("execsnoop").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bpfboxPath)
        let viaLink = try runCommand(link, ["--help"])
        let viaApplet = try runCommand(bpfboxPath, ["execsnoop", "--help"])
        XCTAssertEqual(viaLink.status, 0)
        XCTAssertEqual(viaLink.stdout, viaApplet.stdout)
        XCTAssertTrue(viaLink.stdout.hasPrefix("usage: execsnoop"))

        let unknown = dir.appendingPathComponent("frobnicate").path
        try FileManager.default.createSymbolicLink(atPath: unknown, withDestinationPath: bpfboxPath)
        let result = try runCommand(unknown, [])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("unknown applet 'frobnicate'"))
    }

    func testListAndVersion() throws {
        let list = try runCommand(bpfboxPath, ["--list"])
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(list.stdout.split(separator: "\n").contains("execsnoop"))
        let version = try runCommand(bpfboxPath, ["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("bpfbox "))
    }

    func testInstall() throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("prefix")).path
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let result = try runCommand(bpfboxPath, ["install", "--prefix", prefix])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: prefix + "/bin/bpfbox"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: prefix + "/bin/execsnoop"), "bpfbox")
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + "/share/man/man8/execsnoop.8"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + "/share/man/man8/bpfbox-completions.8"))
        let bash = prefix + "/share/bash-completion/completions/"
        XCTAssertTrue((try? String(contentsOfFile: bash + "bpfbox", encoding: .utf8))?.contains("complete -F _bpfbox") == true)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: bash + "execsnoop"), "bpfbox")
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + "/share/zsh/site-functions/_bpfbox"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: prefix + "/share/fish/vendor_completions.d/execsnoop.fish"),
                       "bpfbox.fish")
        let help = try runCommand(prefix + "/bin/execsnoop", ["--help"])
        XCTAssertEqual(help.status, 0)
    }

    /// The filter maps are checked by the shared filter for every tracing applet, before load.
    func testEveryTracingAppletChecksItsFilterMaps() throws {
        try requireRoot()
        let wrong = try PinnedMap(keySize: 4, valueSize: 8)
        let missing = "/sys/fs/bpf/" + uniqueMarker("missing")
        for applet in ["execsnoop", "opensnoop", "capable", "tcpconnect", "tcptop"] {
            let keyResult = try runCommand(bpfboxPath, [applet, "--cgroupmap", wrong.path])
            XCTAssertEqual(keyResult.status, 1, "\(applet): \(keyResult.stderr)")
            XCTAssertEqual(keyResult.stderrLines, ["\(applet): --cgroupmap \(wrong.path): map has key size 4, expected 8 (u64 cgroup id); remove it (rm \(wrong.path)) and recreate it with: bpftool map create \(wrong.path) type hash key 8 value 8 entries 1024 name cgroupset"])
            let missingResult = try runCommand(bpfboxPath, [applet, "--mntnsmap", missing])
            XCTAssertEqual(missingResult.status, 1, "\(applet): \(missingResult.stderr)")
            XCTAssertEqual(missingResult.stderrLines.count, 1)
            XCTAssertTrue(missingResult.stderr.contains("no map is pinned there"), missingResult.stderr)
            let usage = try runCommand(bpfboxPath, [applet, "--no-such-option"])
            XCTAssertEqual(usage.status, 2)
            XCTAssertEqual(usage.stderrLines.last, "\(applet): error: unrecognized option '--no-such-option'")
        }
    }
}
