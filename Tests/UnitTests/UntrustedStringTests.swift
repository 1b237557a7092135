import Applets
import BPFSupport
import Foundation
import XCTest

/// Every string an applet prints that comes from the traced system (comm, argv, paths, cgroup
/// names), made hostile: terminal escapes, newlines, C1 controls, bytes that are not UTF-8, and
/// values longer than their field. Columns must carry none of it raw; JSON must stay valid.
final class UntrustedStringTests: XCTestCase {
    /// ESC sequences (erase screen, set title), BEL, a newline, C1 CSI, invalid UTF-8, DEL.
    static let hostile: [UInt8] = Array("\u{1B}[2J\u{1B}]0;owned\u{07}\nx".utf8) + [0xC2, 0x9B, 0xFF, 0xFE, 0x7F] + Array("end".utf8)
    static let comm: [UInt8] = Array(hostile.prefix(15))

    private let task = TaskInfo(timestampNs: 1, cgroupID: 1, mntnsID: 1, pid: 7, tid: 7, uid: 0, gid: 0, comm: comm)

    /// A line a terminal can show safely: no C0/C1 control, no DEL, and no replacement character
    /// (which would hide what the bytes were) unless `replaced`: JSON strings are UTF-8, so a
    /// byte that is not becomes U+FFFD there (documented in the man pages).
    private func assertSafe(_ line: String, replaced: Bool = false, file: StaticString = #filePath, line number: UInt = #line) {
        let bad = line.unicodeScalars.filter { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) || (!replaced && $0 == "\u{FFFD}") }
        XCTAssertEqual(bad.map(\.value), [], "raw control or replaced bytes in: \(line.debugDescription)", file: file, line: number)
    }

    private func assertJSON(_ line: String, _ key: String, equals expected: [UInt8]?,
                            file: StaticString = #filePath, line number: UInt = #line) {
        assertSafe(line, replaced: true, file: file, line: number)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            return XCTFail("not JSON: \(line)", file: file, line: number)
        }
        if let expected {
            XCTAssertEqual(object[key] as? String, String(decoding: expected, as: UTF8.self), file: file, line: number)
        }
    }

    func testExecSnoop() throws {
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: 3000)
        let event = ExecSnoop.Event(task: task, ppid: 1, retval: 0, flags: UInt32(EXECSNOOP_F_ARGV_TRUNCATED.rawValue),
                                    filename: Self.hostile, argv: [Self.hostile, Self.hostile, long])
        let columns = ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse([])), clock: nil)
        let row = try XCTUnwrap(columns.render(event))
        assertSafe(row)
        XCTAssertTrue(row.contains("\\x1b[2J\\x1b]0;owned\\x07\\nx\\u{9b}\\xff\\xfe\\x7fend"), row)
        XCTAssertTrue(row.hasSuffix(" ..."), "a truncated argv is not marked: \(row.suffix(20))")
        let json = ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse(["--json"])), clock: nil)
        let line = try XCTUnwrap(json.render(event))
        assertJSON(line, "filename", equals: Self.hostile)
        assertJSON(line, "comm", equals: Self.comm)
        XCTAssertTrue(line.contains("\"argv_truncated\":true"))
    }

    func testOpenSnoop() throws {
        let event = OpenSnoop.Event(task: task, ret: -2, path: Self.hostile)
        let tooLong = OpenSnoop.Event(task: task, ret: -Int64(ENAMETOOLONG),
                                      path: [UInt8](repeating: UInt8(ascii: "b"), count: Int(OPENSNOOP_PATH_MAX) - 1))
        let legal = OpenSnoop.Event(task: task, ret: 3, path: [UInt8](repeating: UInt8(ascii: "b"), count: Int(OPENSNOOP_PATH_MAX) - 1))
        let columns = OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse([])), clock: nil)
        for e in [event, tooLong, legal] { assertSafe(try XCTUnwrap(columns.render(e))) }
        XCTAssertTrue(try XCTUnwrap(columns.render(tooLong)).hasSuffix("b ..."), "a cut path is not marked")
        XCTAssertFalse(try XCTUnwrap(columns.render(legal)).hasSuffix(" ..."), "a path of the longest legal size is whole")
        let json = OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse(["--json"])), clock: nil)
        assertJSON(try XCTUnwrap(json.render(event)), "path", equals: Self.hostile)
        XCTAssertTrue(try XCTUnwrap(json.render(tooLong)).contains("\"path_truncated\":true"))
        XCTAssertFalse(try XCTUnwrap(json.render(legal)).contains("path_truncated"))
    }

    func testCapable() throws {
        let event = Capable.Event(task: task, cap: 21, ret: 0)
        let columns = Capable.Renderer(config: try Capable.Config(Capable.spec.parse([])), clock: nil)
        for line in columns.render(event) { assertSafe(line) }
        let json = Capable.Renderer(config: try Capable.Config(Capable.spec.parse(["--json"])), clock: nil)
        assertJSON(json.render(event)[0], "comm", equals: Self.comm)
    }

    func testTcpConnect() throws {
        let v4 = [127, 0, 0, 1] + [UInt8](repeating: 0, count: 12)
        let event = TcpConnect.Event(task: task, family: 2, saddr: v4, daddr: v4, sport: 1, dport: 2)
        let columns = TcpConnect.Renderer(config: try TcpConnect.Config(TcpConnect.spec.parse([])), clock: nil)
        assertSafe(columns.table.row(event))
        let json = TcpConnect.Renderer(config: try TcpConnect.Config(TcpConnect.spec.parse(["--json"])), clock: nil)
        assertJSON(json.json(event), "comm", equals: Self.comm)
    }

    func testTcpTop() throws {
        let v4 = [127, 0, 0, 1] + [UInt8](repeating: 0, count: 12)
        let row = TcpTop.Row(pid: 7, comm: Self.comm, family: 2, laddr: v4, lport: 1, raddr: v4, rport: 2, sent: 10, received: 20)
        for arguments in [[], ["--json"]] {
            let renderer = TcpTop.Renderer(config: try TcpTop.Config(TcpTop.spec.parse(arguments)), clock: nil)
            let lines = renderer.render([row], clear: false, now: 0)
            for line in lines { assertSafe(line) }
            if arguments == ["--json"] {
                let rowLine = try XCTUnwrap(lines.first { $0.contains("\"comm\"") })
                assertJSON(rowLine, "comm", equals: Self.comm)
            }
        }
    }

    /// cgroup directory names are chosen by whoever may create cgroups (a container's own
    /// delegated subtree, for one).
    func testSkbCountAndSockmapCgroupNames() throws {
        // Read from the file system as Swift strings: bytes that are not UTF-8 are U+FFFD already.
        let name = "/pod/\u{1B}[2J\u{1B}]0;owned\u{07}\nx\u{9B}\u{7F}end"
        let row = SkbCount.Row(cgroup: name, rxPackets: 1, rxBytes: 2)
        for arguments in [[], ["--json"]] {
            let renderer = SkbCount.Renderer(config: try SkbCount.Config(SkbCount.spec.parse(arguments)))
            let lines = renderer.render([row], clear: false, now: 0)
            for line in lines { assertSafe(line) }
            if arguments == ["--json"] {
                assertJSON(try XCTUnwrap(lines.first { $0.contains("\"cgroup\"") }), "cgroup", equals: Array(name.utf8))
            }
        }
        let v4 = [127, 0, 0, 1] + [UInt8](repeating: 0, count: 12)
        let end = Sockmap.Endpoint(family: 2, address: v4, port: 80)
        let event = Sockmap.Event(kind: .peerMissing, local: end, remote: end, timestampNs: 0, cgroupID: 9)
        for json in [false, true] {
            let line = Sockmap.Renderer(json: json).render(event, wallNs: 0, cgroup: name, peerIsLocal: true)
            if json { assertJSON(line, "cgroup", equals: Array(name.utf8)) } else { assertSafe(line) }
        }
    }
}
