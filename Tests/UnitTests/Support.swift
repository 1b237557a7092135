import Applets
import BPFSupport
import Foundation
import XCTest

// MARK: - Locations

/// The folder of this file: Tests/UnitTests.
let unitTestsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

/// The repository root (Package.swift lives there).
let repositoryRoot = unitTestsDirectory.deletingLastPathComponent().deletingLastPathComponent()

let snapshotsDirectory = unitTestsDirectory.appendingPathComponent("Snapshots")

// MARK: - Golden files

/// Compares `text` with Tests/UnitTests/Snapshots/<name>.txt. With RECORD_SNAPSHOTS=1 the file is
/// (re)written instead and the assertion passes.
func assertSnapshot(_ text: String, named name: String, file: StaticString = #filePath, line: UInt = #line) {
    let url = snapshotsDirectory.appendingPathComponent(name + ".txt")
    let expectedContents = text.hasSuffix("\n") ? text : text + "\n"
    if ProcessInfo.processInfo.environment["RECORD_SNAPSHOTS"] == "1" {
        do {
            try FileManager.default.createDirectory(at: snapshotsDirectory, withIntermediateDirectories: true)
            try expectedContents.write(to: url, atomically: true, encoding: .utf8)
        } catch {
            XCTFail("cannot record snapshot \(url.path): \(error)", file: file, line: line)
        }
        return
    }
    guard let data = FileManager.default.contents(atPath: url.path) else {
        XCTFail("""
            missing golden file \(url.path); record it with:
              RECORD_SNAPSHOTS=1 swift test --filter UnitTests
            then review the file before committing it
            """, file: file, line: line)
        return
    }
    let recorded = String(decoding: data, as: UTF8.self)
    if recorded != expectedContents {
        XCTFail("""
            output differs from \(url.path) (re-record with RECORD_SNAPSHOTS=1 if the change is intended)
            \(lineDiff(expected: recorded, actual: expectedContents))
            """, file: file, line: line)
    }
}

/// A short line-by-line difference for failure messages.
private func lineDiff(expected: String, actual: String) -> String {
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
    var out: [String] = []
    for i in 0..<max(e.count, a.count) {
        let left = i < e.count ? String(e[i]) : "<none>"
        let right = i < a.count ? String(a[i]) : "<none>"
        if left != right {
            out.append("line \(i + 1):\n  golden: \(left.debugDescription)\n  actual: \(right.debugDescription)")
        }
    }
    return out.joined(separator: "\n")
}

// MARK: - Option parsing

/// The execsnoop configuration for `arguments` (the applet name excluded).
func execsnoopConfig(_ arguments: [String]) throws -> ExecSnoop.Config {
    let parsed = try ExecSnoop.spec.parse(arguments)
    return try ExecSnoop.Config(parsed)
}

/// The usage error that parsing and configuring `arguments` raises, or nil when they succeed.
func execsnoopUsageError(_ arguments: [String]) -> UsageError? {
    do {
        _ = try execsnoopConfig(arguments)
        return nil
    } catch let error as UsageError {
        return error
    } catch {
        XCTFail("expected a UsageError for \(arguments), got \(type(of: error)): \(error)")
        return nil
    }
}

// MARK: - execsnoop event fixtures

/// Offsets of struct execsnoop_event, as Swift imports it from bpf/execsnoop.h.
enum EventLayout {
    static func offset(_ path: PartialKeyPath<execsnoop_event>) -> Int {
        MemoryLayout<execsnoop_event>.offset(of: path)!
    }
    static var commOffset: Int { offset(\execsnoop_event.task.comm) }
    static var headerSize: Int { offset(\execsnoop_event.args_size) + MemoryLayout<UInt32>.size }
}

/// The bytes of one ring-buffer sample of execsnoop, written field by field.
struct ExecSample {
    var timestampNs: UInt64 = 12_345_678_901_234
    var cgroupID: UInt64 = 4_294_967_297
    var mntnsID: UInt64 = 4_026_531_841
    var pid: UInt32 = 4242
    var tid: UInt32 = 4242
    var ppid: UInt32 = 4200
    var uid: UInt32 = 1000
    var gid: UInt32 = 1000
    var retval: Int32 = 0
    var flags: UInt32 = 0
    /// Raw comm bytes; at most 16 are stored (the rest of the field is NUL).
    var comm: [UInt8] = Array("ls".utf8)
    /// The filename without its NUL.
    var filename: [UInt8] = Array("/usr/bin/ls".utf8)
    var argv: [[UInt8]] = [Array("ls".utf8), Array("-la".utf8), Array("/tmp".utf8)]
    /// Replace the computed sizes (for malformed samples).
    var filenameSizeOverride: UInt32?
    var argsSizeOverride: UInt32?
    /// Drop the NUL after the last argv string.
    var unterminatedLastArg = false
    /// Replace the whole args block (filename and argv) with these bytes.
    var rawArgs: [UInt8]?

    init() {}

    init(comm: String, filename: String, argv: [String], retval: Int32 = 0, flags: UInt32 = 0) {
        self.comm = Array(comm.utf8)
        self.filename = Array(filename.utf8)
        self.argv = argv.map { Array($0.utf8) }
        self.retval = retval
        self.flags = flags
    }

    /// filename NUL argv[0] NUL argv[1] NUL ...
    var args: [UInt8] {
        if let rawArgs { return rawArgs }
        var bytes = filename + [0]
        for arg in argv { bytes += arg + [0] }
        if unterminatedLastArg, !argv.isEmpty { bytes.removeLast() }
        return bytes
    }

    var bytes: [UInt8] {
        let args = self.args
        var out = [UInt8](repeating: 0, count: EventLayout.headerSize + args.count)
        out.withUnsafeMutableBytes { raw in
            func put<T>(_ value: T, _ path: PartialKeyPath<execsnoop_event>) {
                raw.storeBytes(of: value, toByteOffset: EventLayout.offset(path), as: T.self)
            }
            put(timestampNs, \execsnoop_event.task.ts_ns)
            put(cgroupID, \execsnoop_event.task.cgroup_id)
            put(mntnsID, \execsnoop_event.task.mntns_id)
            put(pid, \execsnoop_event.task.pid)
            put(tid, \execsnoop_event.task.tid)
            put(ppid, \execsnoop_event.ppid)
            put(uid, \execsnoop_event.task.uid)
            put(gid, \execsnoop_event.task.gid)
            put(retval, \execsnoop_event.retval)
            put(flags, \execsnoop_event.flags)
            put(filenameSizeOverride ?? UInt32(filename.count + 1), \execsnoop_event.filename_size)
            put(argsSizeOverride ?? UInt32(args.count), \execsnoop_event.args_size)
        }
        for (i, byte) in comm.prefix(Int(BPFBOX_COMM_LEN)).enumerated() {
            out[EventLayout.commOffset + i] = byte
        }
        out.replaceSubrange(EventLayout.headerSize..., with: args)
        return out
    }

    /// The decoded event; fails the test when the sample does not decode.
    func event(file: StaticString = #filePath, line: UInt = #line) -> ExecSnoop.Event? {
        let event = decodeExecEvent(bytes)
        XCTAssertNotNil(event, "a well-formed sample did not decode", file: file, line: line)
        return event
    }
}

/// Decodes `sample` as a ring-buffer callback sees it: a view of exactly the sample's bytes,
/// placed inside a larger allocation whose bytes around it are a marker ("OOB!"), so that any read
/// past either end shows up in the decoded strings.
func decodeExecEvent(_ sample: [UInt8]) -> ExecSnoop.Event? {
    let guardBytes = Array(repeating: Array(outOfBoundsMarker.utf8), count: 64).flatMap { $0 }
    let backing = guardBytes + sample + guardBytes
    return backing.withUnsafeBytes { all in
        let start = guardBytes.count
        let view = UnsafeRawBufferPointer(rebasing: all[start..<(start + sample.count)])
        return ExecSnoop.Event(view)
    }
}

let outOfBoundsMarker = "OOB!"

func text<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 { String(decoding: bytes, as: UTF8.self) }

// MARK: - Tools the tests run

/// Skips a test whose tool (a shell, a validator) is not installed, with the reason; fails it
/// instead when BPFBOX_REQUIRE_TOOLS=1 (.ci/run installs them).
func requireTool(_ name: String, remedy: String, file: StaticString = #filePath, line: UInt = #line) throws -> Never {
    let reason = "\(name) is not installed (\(remedy))"
    if ProcessInfo.processInfo.environment["BPFBOX_REQUIRE_TOOLS"] == "1" {
        XCTFail("BPFBOX_REQUIRE_TOOLS=1 but \(reason)", file: file, line: line)
    }
    throw XCTSkip(reason)
}
