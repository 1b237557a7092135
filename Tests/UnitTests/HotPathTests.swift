@preconcurrency import Glibc
@testable import Applets
import BPFSupport
import XCTest

/// The byte-level writers of the event path give exactly what the String-based formatting gave,
/// and decoding into a previous event's storage gives exactly a fresh decode.
final class HotPathTests: XCTestCase {
    private func written(_ body: (ByteBuffer) -> Void) -> String {
        let out = ByteBuffer(capacity: 1) // grows on the way
        body(out)
        return out.string()
    }

    func testIntegers() {
        let signed: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, 101, 999, 1000, 12_345, -987_654_321, Int64.max, Int64.min]
        for value in signed { XCTAssertEqual(written { $0.append(decimal: value) }, String(value)) }
        let unsigned: [UInt64] = [0, 7, 42, 1_000_000, UInt64(UInt32.max), UInt64.max, 10_000_000_000_000_000_000]
        for value in unsigned { XCTAssertEqual(written { $0.append(decimal: value) }, String(value)) }
        XCTAssertEqual(written { $0.append(decimal: Int32.min) }, String(Int32.min))
        XCTAssertEqual(written { $0.append(decimal: UInt8(255)) }, "255")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let value = Int64.random(in: .min ... .max, using: &generator) >> Int64.random(in: 0...62, using: &generator)
            XCTAssertEqual(written { $0.append(decimal: value) }, String(value))
        }
    }

    func testOctalAndPadding() {
        XCTAssertEqual(written { $0.append(octal: 0, width: 8) }, "00000000")
        XCTAssertEqual(written { $0.append(octal: 0o2000101, width: 8) }, "02000101")
        XCTAssertEqual(written { $0.append(octal: UInt64.max, width: 4) }, String(UInt64.max, radix: 8))
        XCTAssertEqual(written { $0.append(octal: 0o755, width: 0) }, "755")
        XCTAssertEqual(written { $0.append(zeroPadded: 42, width: 6) }, "000042")
        XCTAssertEqual(written { $0.append(zeroPadded: 1_234_567, width: 6) }, "1234567")
    }

    func testFixed() {
        XCTAssertEqual(written { $0.append(fixed: 0, decimals: 3) }, "0.000")
        XCTAssertEqual(written { $0.append(fixed: 1.5, decimals: 6) }, "1.500000")
        XCTAssertEqual(written { $0.append(fixed: -2.25, decimals: 1) }, "-2.3")
        XCTAssertEqual(written { $0.append(fixed: 12_345.678_901_234, decimals: 9) }, "12345.678901234")
        XCTAssertEqual(written { $0.append(fixed: 7.0, decimals: 0) }, "7")
    }

    func testCopiesOfEveryShortLength() {
        // The short-copy paths (1-3, 4-7, 8-16 bytes) and memcpy beyond.
        for length in 0...40 {
            let bytes = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            let out = ByteBuffer(capacity: 1)
            out.append(UInt8(ascii: "<"))
            bytes.withUnsafeBytes { out.append($0) }
            out.append(UInt8(ascii: ">"))
            XCTAssertEqual(out.string(), "<" + String(decoding: bytes, as: UTF8.self) + ">")
        }
    }

    func testInsertAndTruncate() {
        let out = ByteBuffer(capacity: 1)
        out.append("abc" as StaticString)
        out.insert(repeating: UInt8(ascii: " "), count: 3, at: 1)
        XCTAssertEqual(out.string(), "a   bc")
        out.truncate(to: 2)
        XCTAssertEqual(out.string(), "a ")
        XCTAssertEqual(out.string(from: 1), " ")
    }

    /// The ISO 8601 time is computed without gmtime: it agrees with gmtime_r to the second and
    /// carries the microseconds, over a wide span of dates (and before 1970).
    func testISO8601AgreesWithGmtime() {
        func reference(_ ns: Int64) -> String {
            let floorSeconds = ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000
            var seconds = time_t(floorSeconds)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let micros = (ns - floorSeconds * 1_000_000_000) / 1000
            func pad(_ v: Int64, _ width: Int) -> String {
                let s = String(v)
                return String(repeating: "0", count: max(0, width - s.count)) + s
            }
            return "\(pad(Int64(parts.tm_year) + 1900, 4))-\(pad(Int64(parts.tm_mon) + 1, 2))-\(pad(Int64(parts.tm_mday), 2))T"
                + "\(pad(Int64(parts.tm_hour), 2)):\(pad(Int64(parts.tm_min), 2)):\(pad(Int64(parts.tm_sec), 2)).\(pad(micros, 6))Z"
        }
        var cases: [Int64] = [0, 1, 999_999_999, 1_000_000_000, 951_782_400_000_000_000 /* 2000-02-29 */,
                              4_107_542_399_999_999_000 /* 2100-02-28T23:59:59.999999 */, -1, -1_000_000_000, -86_400_000_000_000]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            cases.append(Int64.random(in: -2_208_988_800_000_000_000 ... 7_258_118_400_000_000_000, using: &generator))
        }
        for ns in cases {
            XCTAssertEqual(TimeText.iso8601(wallNs: ns), reference(ns), "wall clock \(ns) ns")
        }
    }

    /// A sample decoded into the storage of the one before is the sample decoded afresh, whatever
    /// the one before held (more arguments, fewer, longer or shorter strings).
    func testExecDecodingReusesWithoutLeakingThePreviousEvent() throws {
        let samples = [
            ExecSample(comm: "make", filename: "/usr/bin/make", argv: ["make", "-j8", "all", "install", "DESTDIR=/tmp/x"]),
            ExecSample(comm: "ls", filename: "/bin/ls", argv: ["ls"]),
            ExecSample(comm: "true", filename: "/bin/true", argv: []),
            ExecSample(comm: "sh", filename: "/bin/sh", argv: ["sh", "-c", "echo a very long argument that is longer than before"]),
            ExecSample(comm: "x", filename: "", argv: ["", ""]),
        ]
        var previous: ExecSnoop.Event?
        for round in 0..<3 {
            for sample in (round == 1 ? samples.reversed() : samples) {
                let bytes = sample.bytes
                let fresh = bytes.withUnsafeBytes { ExecSnoop.Event($0) }
                let reused = bytes.withUnsafeBytes { ExecSnoop.Event($0, reusing: &previous) }
                XCTAssertNil(previous, "the previous event's storage is taken")
                XCTAssertEqual(reused, fresh)
                XCTAssertEqual(reused?.argv.map(text), sample.argv.map(text))
                previous = reused
            }
        }
    }

    func testOpenDecodingReusesWithoutLeakingThePreviousEvent() throws {
        let paths = ["/etc/ld.so.cache", "/a", "/usr/share/nginx/html/assets/app.3f9a2c.js", "", "x"]
        var previous: OpenSnoop.Event?
        for path in paths + paths.reversed() {
            var e = opensnoop_event()
            e.ret = 3
            let data = Array(path.utf8) + [0]
            e.path_size = UInt32(data.count)
            let sample = withUnsafeBytes(of: &e) { Array($0.prefix(OpenSnoop.Event.headerSize)) } + data
            let fresh = sample.withUnsafeBytes { OpenSnoop.Event($0) }
            let reused = sample.withUnsafeBytes { OpenSnoop.Event($0, reusing: &previous) }
            XCTAssertNil(previous)
            XCTAssertEqual(reused, fresh)
            XCTAssertEqual(reused.map { text($0.path) }, path)
            previous = reused
        }
    }

    /// What the tracer writes into its output buffer is what `render` returns, for both applets
    /// and both formats, and a dropped event leaves nothing behind.
    func testWritingIntoTheOutputBufferMatchesRender() throws {
        let event = try XCTUnwrap(ExecSample().event())
        for arguments in [[], ["--json"], ["-T", "-U", "-q"], ["-n", "^nomatch$"]] {
            let renderer = ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse(arguments)), clock: nil)
            let out = ByteBuffer()
            out.append("before|" as StaticString)
            let kept = renderer.write(event, to: out)
            XCTAssertEqual(kept, renderer.render(event) != nil)
            XCTAssertEqual(out.string(), "before|" + (renderer.render(event) ?? ""), "\(arguments)")
        }
    }

    func testCommIsInlineAndComparesByContent() {
        let a = Comm(Array("nginx".utf8)), b = Comm("nginx".utf8)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(text(a), "nginx")
        XCTAssertNotEqual(a, Comm("nginx2".utf8))
        let full = Comm(Array(repeating: UInt8(ascii: "c"), count: 20))
        XCTAssertEqual(full.count, 16, "a comm keeps at most BPFBOX_COMM_LEN bytes")
        XCTAssertEqual(Int(BPFBOX_COMM_LEN), 16)
    }
}
