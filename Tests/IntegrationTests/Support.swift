import BPFKit
import ContainerFilter
import Foundation
import XCTest

/// Privileged tests skip with their reason when not root, and fail instead when
/// BPFBOX_REQUIRE_PRIVILEGED=1 (CI).
func requireRoot(file: StaticString = #filePath, line: UInt = #line) throws {
    guard geteuid() != 0 else { return }
    let reason = "needs root to load BPF programs (run the tests as root)"
    if ProcessInfo.processInfo.environment["BPFBOX_REQUIRE_PRIVILEGED"] == "1" {
        XCTFail("BPFBOX_REQUIRE_PRIVILEGED=1 but \(reason)", file: file, line: line)
        throw XCTSkip("failed: \(reason)")
    }
    throw XCTSkip(reason)
}

/// Where the test binaries are (.build/<config>/).
let productsDirectory: URL = {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
}()

let bpfboxPath: String = {
    if let path = ProcessInfo.processInfo.environment["BPFBOX_BIN"], !path.isEmpty { return path }
    return productsDirectory.appendingPathComponent("bpfbox").path
}()

let testHelperPath = productsDirectory.appendingPathComponent("testhelper").path

func uniqueMarker(_ tag: String) -> String {
    "bbx-\(tag)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// A line-oriented reader of a pipe, on its own thread.
final class LineCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var finished = false

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    condition.lock(); lines.append(line); condition.broadcast(); condition.unlock()
                }
            }
            condition.lock()
            if !pending.isEmpty { lines.append(String(decoding: pending, as: UTF8.self)) }
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }

    var all: [String] {
        condition.lock(); defer { condition.unlock() }
        return lines
    }

    /// Waits until a line satisfies `match` (or the stream ends, or `timeout` passes).
    func wait(timeout: TimeInterval, _ match: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock(); defer { condition.unlock() }
        var checked = 0
        while true {
            while checked < lines.count {
                if match(lines[checked]) { return lines[checked] }
                checked += 1
            }
            if finished || !condition.wait(until: deadline) { return nil }
        }
    }

    func waitForEnd(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock(); defer { condition.unlock() }
        while !finished { if !condition.wait(until: deadline) { return false } }
        return true
    }
}

/// A running bpfbox applet with its stdout and stderr collected line by line.
final class Tool {
    let process = Process()
    let stdout: LineCollector
    let stderr: LineCollector

    init(_ arguments: [String], executable: String = bpfboxPath) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        stdout = LineCollector(out.fileHandleForReading)
        stderr = LineCollector(err.fileHandleForReading)
    }

    /// Parsed JSON events seen so far.
    var events: [[String: Any]] {
        stdout.all.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    /// Waits for a JSON event that has `marker` as one of its argv strings (and satisfies `extra`).
    func waitForEvent(argv marker: String, timeout: TimeInterval = 20,
                      where extra: @escaping ([String: Any]) -> Bool = { _ in true }) -> [String: Any]? {
        var found: [String: Any]?
        _ = stdout.wait(timeout: timeout) { line in
            guard line.contains(marker),
                  let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let argv = event["argv"] as? [String], argv.contains(marker), extra(event) else { return false }
            found = event
            return true
        }
        if found == nil { reportMiss() }
        return found
    }

    /// Waits for a JSON event that satisfies `match`.
    func waitForEventLine(timeout: TimeInterval = 20, _ match: @escaping ([String: Any]) -> Bool) -> [String: Any]? {
        var found: [String: Any]?
        _ = stdout.wait(timeout: timeout) { line in
            guard let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  match(event) else { return false }
            found = event
            return true
        }
        if found == nil { reportMiss() }
        return found
    }

    /// Prints what the tool said on stderr, for a failure's log.
    func reportMiss() {
        print("event not found; the tool is \(process.isRunning ? "running" : "gone"); stderr: \(stderr.all.joined(separator: " | ")); \(stdout.all.count) lines of output")
    }

    func hasLine(containing marker: String) -> Bool { stdout.all.contains { $0.contains(marker) } }

    /// SIGINT, then the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
        process.waitUntilExit()
        _ = stdout.waitForEnd(timeout: 10)
        _ = stderr.waitForEnd(timeout: 10)
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The result of a command run to completion.
struct Completed {
    let status: Int32
    let stdout: String
    let stderr: String
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

@discardableResult
func runCommand(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60,
                environment: [String: String] = [:]) throws -> Completed {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outCollector = LineCollector(out.fileHandleForReading)
    let errCollector = LineCollector(err.fileHandleForReading)
    process.waitUntilExit()
    _ = outCollector.waitForEnd(timeout: timeout)
    _ = errCollector.waitForEnd(timeout: timeout)
    return Completed(status: process.terminationStatus,
                     stdout: outCollector.all.joined(separator: "\n"),
                     stderr: errCollector.all.joined(separator: "\n"))
}

/// A shell that runs each command it reads and answers "done" after it, so the test knows the
/// command finished. `setup` runs first (joins a cgroup, ...); `wrapper` runs the shell under
/// unshare, setpriv, nsenter ...
final class Runner {
    let process = Process()
    private let input = Pipe()
    private let output: LineCollector
    private var consumed = 0

    init(setup: String = "", wrapper: [String] = []) throws {
        // The command's output may lack a final newline: "done" goes on a line of its own.
        let script = "\(setup)\necho ready\nwhile IFS= read -r line; do eval \"$line\"; printf '\\n%s\\n' \(Runner.done); done"
        let command = wrapper + ["/bin/sh", "-c", script]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let out = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        output = LineCollector(out.fileHandleForReading)
        guard output.wait(timeout: 20, { $0 == "ready" }) != nil else {
            throw TestError("the runner shell did not start (\(command.joined(separator: " ")))")
        }
        consumed = 1
    }

    static let done = "bbx-runner-done"

    var pid: Int32 { process.processIdentifier }

    /// Runs `command` (words, quoted for the shell) and waits until it has exited; returns what it
    /// printed.
    @discardableResult
    func run(_ command: [String]) -> [String] {
        let line = command.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        var index = -1
        let first = consumed
        _ = output.wait(timeout: 20) { line in
            index += 1
            return index >= first && line == Runner.done
        }
        let lines = output.all
        let end = lines[consumed...].firstIndex(of: Runner.done) ?? lines.count
        let printed = lines[consumed..<end].filter { !$0.isEmpty }
        consumed = min(end + 1, lines.count)
        return printed
    }

    /// Runs `program arg` and waits until it has exited.
    func exec(_ arg: String, program: String = "/bin/true") {
        run([program, arg])
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The pid a testhelper run reported ("pid N").
func helperPID(_ lines: [String]) -> Int? {
    lines.first { $0.hasPrefix("pid ") }.flatMap { Int($0.dropFirst(4)) }
}

/// A cgroup-v2 directory made for one test, removed after.
final class TestCgroup {
    let path: String
    let id: UInt64

    init(under parent: String? = nil) throws {
        guard let root = CgroupV2.mountPoint() else { throw XCTSkip("no cgroup2 mount on this machine") }
        path = (parent ?? root) + "/" + uniqueMarker("cg")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        id = try CgroupV2.id(ofDirectory: path)
    }

    /// Shell code that moves the shell into this cgroup.
    var joinScript: String { "echo $$ > \(path)/cgroup.procs" }

    deinit { rmdir(path) }
}

/// A BPF hash map pinned on bpffs, made with bpftool as bcc's documentation does.
final class PinnedMap {
    let path: String

    init(keySize: Int = 8, valueSize: Int, type: String = "hash", entries: Int = 64) throws {
        if !isOnBPFFS("/sys/fs/bpf") {
            _ = try runCommand("/bin/mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"])
        }
        path = "/sys/fs/bpf/" + uniqueMarker("map")
        let result = try runCommand(bpftoolPath, ["map", "create", path, "type", type, "key", String(keySize),
                                                 "value", String(valueSize), "entries", String(entries), "name", "bbxtest"])
        guard result.status == 0 else { throw TestError("bpftool map create failed: \(result.stderr)") }
    }

    static func cgroupMap() throws -> PinnedMap { try PinnedMap(valueSize: 8) }
    static func mntnsMap() throws -> PinnedMap { try PinnedMap(valueSize: 4) }

    func add(_ key: UInt64, valueSize: Int) throws {
        let result = try runCommand(bpftoolPath, ["map", "update", "pinned", path, "key", "hex"] + hexBytes(key, 8)
                                    + ["value", "hex"] + hexBytes(1, valueSize))
        guard result.status == 0 else { throw TestError("bpftool map update failed: \(result.stderr)") }
    }

    func remove(_ key: UInt64) throws {
        let result = try runCommand(bpftoolPath, ["map", "delete", "pinned", path, "key", "hex"] + hexBytes(key, 8))
        guard result.status == 0 else { throw TestError("bpftool map delete failed: \(result.stderr)") }
    }

    private func hexBytes(_ value: UInt64, _ size: Int) -> [String] {
        (0..<size).map { i in
            let byte = i < 8 ? (value >> (8 * UInt64(i))) & 0xFF : 0
            let text = String(byte, radix: 16)
            return text.count == 1 ? "0" + text : text
        }
    }

    deinit { unlink(path) }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let bpftoolPath: String = {
    for candidate in ["/usr/sbin/bpftool", "/usr/bin/bpftool", "/usr/local/sbin/bpftool"]
    where FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    return "/usr/sbin/bpftool"
}()

func isOnBPFFS(_ path: String) -> Bool { Mounts.isOnBPFFS(path) }

func mountNamespace(of pid: Int32) -> UInt64? {
    var st = stat()
    guard stat("/proc/\(pid)/ns/mnt", &st) == 0 else { return nil }
    return UInt64(st.st_ino)
}

/// Repeats `trigger` (given a fresh marker) until the tool prints a line that `seen` accepts
/// for it: from then on the tool is attached.
func waitUntilAttached(_ tool: Tool, file: StaticString = #filePath, line: UInt = #line,
                       trigger: (String) -> Void, seen: @escaping (String, String) -> Bool = { $0.contains($1) }) {
    for attempt in 0..<200 {
        let marker = uniqueMarker("sync\(attempt)")
        trigger(marker)
        if tool.stdout.wait(timeout: 0.25, { seen($0, marker) }) != nil { return }
        if !tool.process.isRunning { break }
    }
    XCTFail("the tool never showed a synchronization event; stderr: \(tool.stderr.all.joined(separator: " | "))",
            file: file, line: line)
}

/// Runs `cat /nonexistent/<marker>` through `runner` until the tool shows the marker: an exec
/// with the marker in its arguments, and an open of a path with the marker.
func waitUntilTracing(_ tool: Tool, via runner: Runner, file: StaticString = #filePath, line: UInt = #line) {
    waitUntilAttached(tool, file: file, line: line) { marker in
        runner.exec("/nonexistent/" + marker, program: "/bin/cat")
    }
}

/// Runs a final marker through `runner` and waits for it. Events arrive in the order they
/// happened, so once this returns every earlier event that passed the filters has been printed,
/// and one that is missing was filtered out.
func barrier(_ tool: Tool, via runner: Runner, file: StaticString = #filePath, line: UInt = #line) {
    let marker = uniqueMarker("barrier")
    runner.exec("/nonexistent/" + marker, program: "/bin/cat")
    XCTAssertNotNil(tool.stdout.wait(timeout: 20, { $0.contains(marker) }), "barrier event not shown", file: file, line: line)
}

/// A TCP listener of the test process (the kernel completes handshakes into its backlog).
final class Listener {
    let fd: Int32
    let port: UInt16

    init(_ address: String, listen: Bool = true) throws {
        let v6 = address.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var storage = sockaddr_storage()
        var length: socklen_t
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            inet_pton(AF_INET6, address, &a.sin6_addr)
            withUnsafeBytes(of: a) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, address, &a.sin_addr)
            withUnsafeBytes(of: a) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, !listen || Glibc.listen(fd, 128) == 0 else {
            close(fd)
            throw TestError("cannot listen on \(address)")
        }
        var actual = sockaddr_storage()
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        }
        port = withUnsafeBytes(of: actual) { raw in UInt16(raw[2]) << 8 | UInt16(raw[3]) }
    }

    deinit { close(fd) }
}

/// Parses one JSON line.
func jsonObject(_ line: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
}

/// "lport N" and similar lines printed by testhelper.
func helperValue(_ lines: [String], _ name: String) -> Int? {
    lines.first { $0.hasPrefix(name + " ") }.flatMap { Int($0.dropFirst(name.count + 1)) }
}
