import Applets
import BPFSupport
import Foundation
import XCTest

final class JSONTests: XCTestCase {
    static let stableKeys = ["timestamp", "pid", "tid", "uid", "gid", "comm", "ppid", "ret", "errno", "syscall",
                             "filename", "argv", "argv_truncated", "script", "cgroup_id", "mntns_id"]

    private func jsonLine(_ sample: ExecSample, _ arguments: [String] = []) throws -> String {
        let event = try XCTUnwrap(sample.event())
        return try XCTUnwrap(try renderer(["--json"] + arguments).render(event))
    }

    private func parse(_ line: String, file: StaticString = #filePath, line number: UInt = #line) throws -> [String: Any] {
        XCTAssertFalse(line.contains("\n"), "NDJSON: one line per event", file: file, line: number)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(line)", file: file, line: number)
    }

    /// The top-level keys of a one-line JSON object, in the order they appear.
    private func keyOrder(_ line: String) -> [String] {
        var keys: [String] = []
        var depth = 0
        var inString = false
        var escaped = false
        var current = ""
        var expectKey = false
        for c in line {
            if inString {
                if escaped { escaped = false; current.append(c); continue }
                if c == "\\" { escaped = true; current.append(c); continue }
                if c == "\"" {
                    inString = false
                    if expectKey { keys.append(current); expectKey = false }
                    continue
                }
                current.append(c)
                continue
            }
            switch c {
            case "\"":
                inString = true
                current = ""
            case "{", "[":
                depth += 1
                if depth == 1 && c == "{" { expectKey = true }
            case "}", "]":
                depth -= 1
            case ",":
                if depth == 1 { expectKey = true }
            case ":":
                expectKey = false
            default:
                break
            }
        }
        return keys
    }

    func testStableShape() throws {
        var failed = ExecSample(comm: "bash", filename: "/usr/bin/nosuch", argv: ["nosuch", "--flag", "x y"], retval: -2)
        failed.pid = 5000
        failed.tid = 5001
        failed.ppid = 4242
        failed.uid = 1000
        failed.gid = 100
        let line = try jsonLine(failed)
        XCTAssertEqual(keyOrder(line), JSONTests.stableKeys)
        assertSnapshot(line, named: "execsnoop_json")

        var ok = ExecSample()
        ok.flags = UInt32(EXECSNOOP_F_EXECVEAT.rawValue | EXECSNOOP_F_ARGV_TRUNCATED.rawValue)
        let okLine = try jsonLine(ok)
        XCTAssertEqual(keyOrder(okLine), JSONTests.stableKeys)
        assertSnapshot(okLine, named: "execsnoop_json_execveat")
    }

    func testTypesAndValues() throws {
        var failed = ExecSample(comm: "bash", filename: "/usr/bin/nosuch", argv: ["nosuch", "--flag", "x y"], retval: -2)
        failed.pid = 5000
        failed.tid = 5001
        failed.ppid = 4242
        failed.uid = 0
        failed.gid = 100
        failed.cgroupID = 4_294_967_297
        failed.mntnsID = 4_026_531_841
        failed.timestampNs = 12_345_678_901_234
        let line = try jsonLine(failed)
        let object = try parse(line)
        XCTAssertEqual(Set(object.keys), Set(JSONTests.stableKeys))
        XCTAssertEqual(object["pid"] as? Int, 5000)
        XCTAssertEqual(object["tid"] as? Int, 5001)
        XCTAssertEqual(object["ppid"] as? Int, 4242)
        XCTAssertEqual(object["uid"] as? Int, 0)
        XCTAssertEqual(object["gid"] as? Int, 100)
        XCTAssertEqual(object["ret"] as? Int, -2)
        XCTAssertEqual(object["errno"] as? String, "ENOENT")
        XCTAssertEqual(object["syscall"] as? String, "execve")
        XCTAssertEqual(object["comm"] as? String, "bash")
        XCTAssertEqual(object["filename"] as? String, "/usr/bin/nosuch")
        XCTAssertEqual(object["argv"] as? [String], ["nosuch", "--flag", "x y"], "argv is an array with argv[0]")
        XCTAssertEqual(object["argv_truncated"] as? Bool, false)
        XCTAssertEqual(object["cgroup_id"] as? Int, 4_294_967_297)
        XCTAssertEqual(object["mntns_id"] as? Int, 4_026_531_841)
        XCTAssertEqual(try XCTUnwrap(object["timestamp"] as? Double), 12345.678901, accuracy: 1e-6)
        // Numbers are written as numbers, not strings.
        for key in ["pid", "tid", "ppid", "uid", "gid", "ret", "cgroup_id", "mntns_id"] {
            XCTAssertTrue(line.contains("\"\(key)\":") && !line.contains("\"\(key)\":\""), "\(key) is quoted: \(line)")
        }
        XCTAssertTrue(line.contains("\"ret\":-2,"), line)
        XCTAssertTrue(line.contains("\"argv\":[\"nosuch\","), line)
    }

    func testErrnoIsNullOnSuccess() throws {
        let line = try jsonLine(ExecSample())
        XCTAssertTrue(line.contains("\"errno\":null"), line)
        let object = try parse(line)
        XCTAssertTrue(object["errno"] is NSNull)
        XCTAssertEqual(object["ret"] as? Int, 0)
    }

    func testErrnoNames() throws {
        for (ret, name) in [(-13, "EACCES"), (-8, "ENOEXEC"), (-7, "E2BIG"), (-200, "E200")] as [(Int32, String)] {
            var sample = ExecSample()
            sample.retval = ret
            let object = try parse(try jsonLine(sample))
            XCTAssertEqual(object["errno"] as? String, name, "ret \(ret)")
        }
    }

    func testExecveatAndTruncation() throws {
        var sample = ExecSample()
        sample.flags = UInt32(EXECSNOOP_F_EXECVEAT.rawValue | EXECSNOOP_F_ARGV_TRUNCATED.rawValue)
        let object = try parse(try jsonLine(sample))
        XCTAssertEqual(object["syscall"] as? String, "execveat")
        XCTAssertEqual(object["argv_truncated"] as? Bool, true)
    }

    func testJSONKeepsEveryArgument() throws {
        // --max-args shapes the columns only; JSON has all of argv.
        let sample = ExecSample(comm: "cmd", filename: "/bin/cmd", argv: ["cmd", "a", "b", "c", "d"])
        let object = try parse(try jsonLine(sample, ["--max-args", "1"]))
        XCTAssertEqual(object["argv"] as? [String], ["cmd", "a", "b", "c", "d"])
    }

    func testHostileStringsStayValidJSON() throws {
        var sample = ExecSample()
        sample.comm = [0x65, 0x1B, 0x5B, 0x32, 0x4A, 0xFF] // "e", ESC "[2J", an invalid byte
        sample.filename = Array("/tmp/a\"b\\c".utf8)
        sample.argv = [Array("a\"b\\c".utf8), Array("line\nbreak\ttab\r\u{7f}".utf8), Array("\u{85}\u{9b}".utf8),
                       Array("é 日本".utf8)]
        let line = try jsonLine(sample)
        XCTAssertFalse(line.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) },
                       "raw control characters in the JSON line: \(line.debugDescription)")
        let object = try parse(line)
        XCTAssertEqual(object["filename"] as? String, "/tmp/a\"b\\c")
        XCTAssertEqual(object["argv"] as? [String], ["a\"b\\c", "line\nbreak\ttab\r\u{7f}", "\u{85}\u{9b}", "é 日本"])
        let comm = try XCTUnwrap(object["comm"] as? String)
        XCTAssertTrue(comm.hasPrefix("e\u{1b}[2J"), comm.debugDescription)
    }

    /// Raw bytes in JSON read back as Swift's own UTF-8 decoding reads them (one U+FFFD per
    /// maximal invalid part), for random byte strings rich in edge cases.
    func testRawBytesDecodeLikeSwift() throws {
        var generator = SplitMix64(seed: 0x5EED)
        let interesting: [UInt8] = [0x00, 0x1B, 0x22, 0x5C, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                    0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x41, 0x0A]
        for _ in 0..<5000 {
            let count = Int.random(in: 0...12, using: &generator)
            let bytes = (0..<count).map { _ in Bool.random(using: &generator) ? interesting.randomElement(using: &generator)!
                                                                             : UInt8.random(in: 0...255, using: &generator) }
            var raw = JSONLine(), decoded = JSONLine()
            raw.add("v", bytes: bytes)
            decoded.add("v", String(decoding: bytes, as: UTF8.self))
            XCTAssertEqual(raw.line, decoded.line, "bytes \(bytes)")
            // Foundation's parser drops a U+FEFF inside a string: compare where it has none.
            let expected = String(decoding: bytes, as: UTF8.self)
            if !expected.unicodeScalars.contains("\u{FEFF}") {
                XCTAssertEqual(try parse(raw.line)["v"] as? String, expected, "bytes \(bytes)")
            }
            let escaped = Escape.terminal(bytes)
            XCTAssertFalse(escaped.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) },
                           "a control character reached the terminal text for \(bytes)")
        }
    }

    func testFiltersApplyToJSON() throws {
        let event = try XCTUnwrap(ExecSample().event())
        XCTAssertNil(try renderer(["--json", "-n", "^cat$"]).render(event))
        XCTAssertNotNil(try renderer(["--json", "-n", "^ls$"]).render(event))
    }
}

/// A small seeded generator: the same random cases on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
