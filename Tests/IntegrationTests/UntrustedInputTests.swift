import Foundation
import XCTest

/// Real events from a program whose name (hence comm), arguments and paths carry terminal
/// escapes, a newline, bytes that are not UTF-8, and more than the event can hold: every applet
/// that prints them escapes them in columns, keeps JSON valid, and marks what it cut.
final class UntrustedInputTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// The program's name: ESC [2J (erase the screen), a newline, 0xFF, then "bbx".
    private static let nameScript = "$(printf '\\033[2J\\n\\377bbx')"
    private static let comm = "\u{1B}[2J\n\u{FFFD}bbx"      // as JSON decodes it
    private static let escapedComm = "\\x1b[2J\\n\\xffbbx"  // as columns show it

    /// A path with an OSC title sequence, BEL, a newline and 0xFE, longer than PATH_MAX.
    private static let pathScript = "/nonexistent/$(printf '\\033]0;t\\a\\nq\\376')$(head -c 5000 /dev/zero | tr '\\0' b)"

    private func assertSafe(_ line: String, json: Bool, file: StaticString = #filePath, line number: UInt = #line) {
        let bad = line.unicodeScalars.filter { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) || (!json && $0 == "\u{FFFD}") }
        XCTAssertEqual(bad.map(\.value), [], line.debugDescription, file: file, line: number)
        if json { XCTAssertNotNil(jsonObject(line), "not JSON: \(line)", file: file, line: number) }
    }

    func testHostileNamesArgumentsAndPaths() throws {
        let cgroup = try TestCgroup()
        let runner = try Runner(setup: cgroup.joinScript)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("hostile")).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let program = "\"\(dir)/\(Self.nameScript)\"" // quoted: the newline would split the word
        runner.run(["/bin/sh", "-c", "ln -s '\(testHelperPath)' \(program) && touch '\(dir)/file'"])
        let listener = try Listener("127.0.0.1")
        let cases: [(applet: String, command: String, check: (_ lines: [String], _ json: Bool) -> Void)] = [
            ("execsnoop", "\(program) openat2 \"\(Self.pathScript)\"", { lines, json in
                if json {
                    let event = lines.compactMap(jsonObject).first { $0["comm"] as? String == Self.comm }
                    XCTAssertEqual(event?["argv_truncated"] as? Bool, true, "argv longer than the event holds")
                    XCTAssertTrue((event?["filename"] as? String ?? "").hasSuffix("/\(Self.comm)"), "\(event ?? [:])")
                } else {
                    let row = lines.first { $0.contains("openat2 /nonexistent/") }
                    XCTAssertTrue(row?.contains("/\(Self.escapedComm) openat2 /nonexistent/\\x1b]0;t\\x07\\nq\\xfebbbb") ?? false, row ?? "no row")
                    XCTAssertTrue(row?.hasSuffix("bbb ...") ?? false, "a cut argv is marked")
                }
            }),
            ("opensnoop", "\(program) openat2 \"\(Self.pathScript)\"", { lines, json in
                if json {
                    let event = lines.compactMap(jsonObject).first { ($0["path"] as? String ?? "").hasPrefix("/nonexistent/") }
                    XCTAssertEqual(event?["path_truncated"] as? Bool, true)
                    XCTAssertEqual(event?["errno"] as? String, "ENAMETOOLONG")
                    XCTAssertEqual((event?["path"] as? String)?.utf8.count, 4095 + 2, "4095 bytes; 0xFE is U+FFFD (3 bytes)")
                } else {
                    let row = lines.first { $0.contains("/nonexistent/") }
                    XCTAssertTrue(row?.contains("/nonexistent/\\x1b]0;t\\x07\\nq\\xfebbb") ?? false, row ?? "no row")
                    XCTAssertTrue(row?.hasSuffix("bbb ...") ?? false, "a cut path is marked")
                }
            }),
            ("capable", "\(program) chown '\(dir)/file'", { _, _ in }),
            ("tcpconnect", "\(program) connect 127.0.0.1 \(listener.port)", { _, _ in }),
            ("tcptop", "\(program) tcpio 127.0.0.1 1000 1000", { _, _ in }),
        ]
        for (applet, command, check) in cases {
            for json in [false, true] {
                let extra = applet == "tcptop" ? ["-C", "0.2"] : []
                let tool = try Tool([applet, "--cgroup", cgroup.path] + extra + (json ? ["--json"] : []))
                waitUntilAttached(tool, trigger: { _ in runner.run(["/bin/sh", "-c", command]) }) { line, _ in
                    json ? (jsonObject(line)?["comm"] as? String == Self.comm) : line.contains(Self.escapedComm.prefix(12))
                }
                XCTAssertEqual(tool.stop(), 0)
                let lines = tool.stdout.all
                for line in lines where !line.isEmpty { assertSafe(line, json: json) }
                check(lines, json)
            }
        }
    }
}
