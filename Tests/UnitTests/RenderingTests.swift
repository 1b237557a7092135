import Applets
import BPFSupport
import Foundation
import XCTest

/// A handful of execs that exercise the columns: a plain one, a failed one, one whose argv[0]
/// differs from the file run, one with control characters, and one with a 7-digit pid.
func sampleEvents() -> [ExecSnoop.Event] {
    var ls = ExecSample(comm: "ls", filename: "/usr/bin/ls", argv: ["ls", "-la", "/tmp"])
    ls.timestampNs = 1_000_000_000
    ls.pid = 4242
    ls.ppid = 4200
    ls.uid = 1000

    var failed = ExecSample(comm: "bash", filename: "/usr/bin/nosuch", argv: ["nosuch", "--flag"], retval: -2)
    failed.timestampNs = 1_250_000_000
    failed.pid = 5000
    failed.ppid = 4242
    failed.uid = 0

    var busybox = ExecSample(comm: "sh", filename: "/bin/busybox", argv: ["sh", "-c", "true"])
    busybox.timestampNs = 2_000_500_000
    busybox.pid = 5001
    busybox.ppid = 5000
    busybox.uid = 65534

    var hostile = ExecSample(comm: "evil\u{1b}[2J", filename: "/tmp/x", argv: ["x", "line1\nline2", "tab\there", "\u{7f}"])
    hostile.timestampNs = 3_141_592_653
    hostile.pid = 6000
    hostile.ppid = 1
    hostile.uid = 1000

    var bigPID = ExecSample(comm: "kworker-helper", filename: "/usr/lib/systemd/systemd-helper", argv: ["systemd-helper"])
    bigPID.timestampNs = 10_000_000_000
    bigPID.pid = 4_194_304
    bigPID.ppid = 1
    bigPID.uid = 0

    return [ls, failed, busybox, hostile, bigPID].map { decodeExecEvent($0.bytes)! }
}

func renderer(_ arguments: [String]) throws -> ExecSnoop.Renderer {
    ExecSnoop.Renderer(config: try execsnoopConfig(arguments), clock: nil)
}

/// The header and the rows of `events`, as execsnoop prints them.
func renderTable(_ arguments: [String], _ events: [ExecSnoop.Event]) throws -> String {
    let r = try renderer(arguments)
    var lines = [r.table.header]
    for event in events {
        if let line = r.render(event) { lines.append(line) }
    }
    return lines.joined(separator: "\n")
}

final class RenderingTests: XCTestCase {
    func testDefaultColumns() throws {
        let r = try renderer([])
        XCTAssertEqual(r.table.header.split(separator: " ", omittingEmptySubsequences: true),
                       ["PCOMM", "PID", "PPID", "RET", "ARGS"])
        assertSnapshot(try renderTable([], sampleEvents()), named: "execsnoop_default")
    }

    func testTimeColumn() throws {
        let r = try renderer(["-T"])
        XCTAssertTrue(r.table.header.hasPrefix("TIME     PCOMM"), r.table.header)
        assertSnapshot(try renderTable(["-T"], sampleEvents()), named: "execsnoop_T")
    }

    func testTimestampColumn() throws {
        let r = try renderer(["-t"])
        XCTAssertTrue(r.table.header.hasPrefix("TIME(s)  PCOMM"), r.table.header)
        assertSnapshot(try renderTable(["-t"], sampleEvents()), named: "execsnoop_t")
    }

    func testUIDColumn() throws {
        let r = try renderer(["-U"])
        XCTAssertTrue(r.table.header.hasPrefix("UID    PCOMM"), r.table.header)
        assertSnapshot(try renderTable(["-U"], sampleEvents()), named: "execsnoop_U")
    }

    func testAllOptionalColumns() throws {
        let r = try renderer(["-TtU"])
        XCTAssertEqual(r.table.header.split(separator: " ", omittingEmptySubsequences: true),
                       ["TIME", "TIME(s)", "UID", "PCOMM", "PID", "PPID", "RET", "ARGS"])
        assertSnapshot(try renderTable(["-TtU"], sampleEvents()), named: "execsnoop_TtU")
    }

    func testHeaderAndRowsLineUp() throws {
        // Every column starts at the same place in the header and in every row, and holds its
        // value there; ARGS, the last column, runs to the end of the line.
        let r = try renderer(["-TtU"])
        let header = Array(r.table.header)
        var starts: [Int] = []
        for (i, c) in header.enumerated() where c != " " && (i == 0 || header[i - 1] == " ") { starts.append(i) }
        XCTAssertEqual(starts.count, 8, r.table.header)
        for event in sampleEvents() {
            let row = Array(try XCTUnwrap(r.render(event)))
            var cells: [String] = []
            for (n, start) in starts.enumerated() {
                let end = n + 1 < starts.count ? starts[n + 1] - 1 : row.count
                XCTAssertTrue(start == 0 || row[start - 1] == " ", "no gap before column \(n): \(String(row))")
                cells.append(String(row[start..<end]).trimmingCharacters(in: .whitespaces))
            }
            let expected = ["00:00:00", formatFixed(Double(event.task.timestampNs) / 1e9, decimals: 3), String(event.task.uid),
                            Escape.terminal(event.task.comm), String(event.task.pid), String(event.ppid), String(event.retval),
                            ExecSnoop.Renderer.argsText(event, quote: false, maxArgs: 20, escape: true)]
            XCTAssertEqual(cells, expected, String(row))
        }
    }

    func testArgsAreFilenameThenArgvFromOne() throws {
        let events = sampleEvents()
        func args(_ e: ExecSnoop.Event) -> String {
            ExecSnoop.Renderer.argsText(e, quote: false, maxArgs: 20, escape: true)
        }
        XCTAssertEqual(args(events[0]), "/usr/bin/ls -la /tmp", "argv[0] must not be repeated")
        XCTAssertEqual(args(events[2]), "/bin/busybox -c true", "the file run, not argv[0], comes first")
        let row = try XCTUnwrap(try renderer([]).render(events[0]))
        XCTAssertTrue(row.hasSuffix(" /usr/bin/ls -la /tmp"), row)
        XCTAssertFalse(row.contains("ls ls"), row)
    }

    func testRowsEscapeControlCharacters() throws {
        let row = try XCTUnwrap(try renderer([]).render(sampleEvents()[3]))
        XCTAssertFalse(row.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, row.debugDescription)
        XCTAssertTrue(row.hasPrefix("evil\\x1b[2J"), row)
        XCTAssertTrue(row.hasSuffix("/tmp/x line1\\nline2 tab\\there \\x7f"), row)
    }

    func testQuote() throws {
        var sample = ExecSample(comm: "sh", filename: "/bin/sh", argv: ["sh", "-c", "echo \"hi there\""])
        sample.pid = 7000
        sample.ppid = 6999
        let event = try XCTUnwrap(sample.event())
        let row = try XCTUnwrap(try renderer(["-q"]).render(event))
        XCTAssertTrue(row.hasSuffix(#" "/bin/sh" "-c" "echo \"hi there\"""#), row)
        let plain = try XCTUnwrap(try renderer([]).render(event))
        XCTAssertTrue(plain.hasSuffix(#" /bin/sh -c echo "hi there""#), plain)
        assertSnapshot(try renderTable(["-q"], [event] + sampleEvents()), named: "execsnoop_quote")
    }

    func testMaxArgsCut() throws {
        let sample = ExecSample(comm: "cmd", filename: "/bin/cmd", argv: ["cmd", "a", "b", "c", "d"])
        let event = try XCTUnwrap(sample.event())
        let cut = try XCTUnwrap(try renderer(["--max-args", "2"]).render(event))
        XCTAssertTrue(cut.hasSuffix(" /bin/cmd a b ..."), cut)
        let exact = try XCTUnwrap(try renderer(["--max-args", "4"]).render(event))
        XCTAssertTrue(exact.hasSuffix(" /bin/cmd a b c d"), "no ellipsis when nothing is cut: \(exact)")
        let quoted = try XCTUnwrap(try renderer(["-q", "--max-args=1"]).render(event))
        XCTAssertTrue(quoted.hasSuffix(#" "/bin/cmd" "a" ..."#), quoted)

        var truncated = sample
        truncated.flags = UInt32(EXECSNOOP_F_ARGV_TRUNCATED.rawValue)
        let truncatedEvent = try XCTUnwrap(truncated.event())
        let flagged = try XCTUnwrap(try renderer([]).render(truncatedEvent))
        XCTAssertTrue(flagged.hasSuffix(" /bin/cmd a b c d ..."), "argv_truncated shows ...: \(flagged)")
        let both = try XCTUnwrap(try renderer(["--max-args", "2"]).render(truncatedEvent))
        XCTAssertTrue(both.hasSuffix(" /bin/cmd a b ..."), "one ellipsis only: \(both)")

        let table = try renderTable(["--max-args", "2"], [event, truncatedEvent] + sampleEvents())
        assertSnapshot(table, named: "execsnoop_max_args")
    }

    func testNameAndLineFilters() throws {
        let events = sampleEvents()
        let byName = try renderer(["-n", "^(ls|sh)$"])
        XCTAssertNotNil(byName.render(events[0]))
        XCTAssertNil(byName.render(events[1]), "bash does not match ^(ls|sh)$")
        XCTAssertNotNil(byName.render(events[2]))

        let byLine = try renderer(["-l", "busybox -c"])
        XCTAssertNil(byLine.render(events[0]))
        XCTAssertNotNil(byLine.render(events[2]), "-l matches the ARGS text")
        // -l sees the raw arguments, not their escaped form.
        XCTAssertNotNil(try renderer(["-l", "line1\nline2"]).render(events[3]))
    }
}

final class ScriptArgumentsTests: XCTestCase {
    /// A #! script's argv, as the kernel rebuilds it, is shown as the caller wrote it.
    func testScriptShowsTheCallersArguments() {
        var sample = ExecSample(comm: "hello.sh", filename: "/tmp/hello.sh", argv: ["/bin/sh", "/tmp/hello.sh", "one", "two"])
        sample.flags = UInt32(EXECSNOOP_F_SCRIPT.rawValue)
        let event = sample.event()!
        XCTAssertEqual(ExecSnoop.Renderer.argsText(event, quote: false, maxArgs: 20, escape: true), "/tmp/hello.sh one two")

        var withArgument = ExecSample(comm: "x", filename: "/tmp/x", argv: ["/usr/bin/env", "-S sh -e", "/tmp/x", "a"])
        withArgument.flags = UInt32(EXECSNOOP_F_SCRIPT.rawValue)
        XCTAssertEqual(ExecSnoop.Renderer.argsText(withArgument.event()!, quote: false, maxArgs: 20, escape: true), "/tmp/x a")

        // Not a script: argv[1] equal to the filename is a real argument.
        let binary = ExecSample(comm: "cat", filename: "/bin/cat", argv: ["cat", "/bin/cat"])
        XCTAssertEqual(ExecSnoop.Renderer.argsText(binary.event()!, quote: false, maxArgs: 20, escape: true), "/bin/cat /bin/cat")
    }
}
