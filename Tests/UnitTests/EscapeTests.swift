import Applets
import Foundation
import XCTest

final class EscapeTests: XCTestCase {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testPrintableASCIIIsUnchanged() {
        let s = "ls -la /tmp/some_file.txt ~!@#$%^&*()[]{}\"'\\"
        XCTAssertEqual(Escape.terminal(s), s)
        XCTAssertEqual(Escape.terminal(bytes(s)), s)
        XCTAssertEqual(Escape.terminal(""), "")
    }

    func testC0Controls() {
        XCTAssertEqual(Escape.terminal("\u{1b}[31mred"), "\\x1b[31mred")
        XCTAssertEqual(Escape.terminal("a\nb"), "a\\nb")
        XCTAssertEqual(Escape.terminal("a\tb"), "a\\tb")
        XCTAssertEqual(Escape.terminal("a\rb"), "a\\rb")
        XCTAssertEqual(Escape.terminal("\u{0}"), "\\x00")
        XCTAssertEqual(Escape.terminal("\u{7}\u{8}\u{1f}"), "\\x07\\x08\\x1f")
    }

    func testDEL() {
        XCTAssertEqual(Escape.terminal("a\u{7f}b"), "a\\x7fb")
    }

    func testC1Controls() {
        // U+0085 (NEL) and U+009B (CSI) encoded as UTF-8; a terminal may act on either.
        XCTAssertEqual(Escape.terminal("a\u{85}b"), "a\\u{85}b")
        XCTAssertEqual(Escape.terminal("\u{9b}2J"), "\\u{9b}2J")
        XCTAssertEqual(Escape.terminal(bytes("\u{80}\u{9f}")), "\\u{80}\\u{9f}")
        // The same values as lone bytes are not UTF-8: escaped byte by byte.
        XCTAssertEqual(Escape.terminal([0x9B, 0x32, 0x4A] as [UInt8]), "\\x9b2J")
        XCTAssertEqual(Escape.terminal([0x85] as [UInt8]), "\\x85")
    }

    func testInvalidUTF8() {
        XCTAssertEqual(Escape.terminal([0x66, 0xFF, 0x6F] as [UInt8]), "f\\xffo")
        XCTAssertEqual(Escape.terminal([0xFE] as [UInt8]), "\\xfe")
        // A truncated sequence, at the end and in the middle.
        XCTAssertEqual(Escape.terminal([0xE6, 0x97] as [UInt8]), "\\xe6\\x97")
        XCTAssertEqual(Escape.terminal([0xE6, 0x41, 0x42] as [UInt8]), "\\xe6AB")
        // Overlong encodings and UTF-16 surrogates are not UTF-8.
        XCTAssertEqual(Escape.terminal([0xC0, 0xAF] as [UInt8]), "\\xc0\\xaf")
        XCTAssertEqual(Escape.terminal([0xE0, 0x80, 0xAF] as [UInt8]), "\\xe0\\x80\\xaf")
        XCTAssertEqual(Escape.terminal([0xED, 0xA0, 0x80] as [UInt8]), "\\xed\\xa0\\x80")
        // Beyond U+10FFFF.
        XCTAssertEqual(Escape.terminal([0xF4, 0x90, 0x80, 0x80] as [UInt8]), "\\xf4\\x90\\x80\\x80")
    }

    func testValidUTF8IsKept() {
        for s in ["é", "日本", "naïve café", "🙂", "Ελληνικά", "a\u{a0}b"] {
            XCTAssertEqual(Escape.terminal(s), s)
            XCTAssertEqual(Escape.terminal(bytes(s)), s)
        }
        // Valid text next to invalid bytes.
        XCTAssertEqual(Escape.terminal(bytes("é") + [0xFF] + bytes("日本")), "é\\xff日本")
    }

    func testOutputHasNoControlCharacters() {
        // Every single byte, and every byte after a valid lead: nothing raw gets through.
        var inputs: [[UInt8]] = (0...255).map { [UInt8($0)] }
        inputs += (0...255).map { [0xC2, UInt8($0)] }
        inputs += (0...255).map { [0xE2, 0x80, UInt8($0)] }
        for input in inputs {
            let out = Escape.terminal(input)
            XCTAssertFalse(out.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) },
                           "\(input) -> \(out.debugDescription)")
            XCTAssertFalse(out.unicodeScalars.contains("\u{FFFD}"), "\(input) was replaced, not escaped")
        }
    }

    func testJSONQuote() {
        XCTAssertEqual(JSONLine.quote("plain"), "\"plain\"")
        XCTAssertEqual(JSONLine.quote("a\"b"), "\"a\\\"b\"")
        XCTAssertEqual(JSONLine.quote("a\\b"), "\"a\\\\b\"")
        XCTAssertEqual(JSONLine.quote("\n\t\r"), "\"\\n\\t\\r\"")
        XCTAssertEqual(JSONLine.quote("\u{0}\u{1}\u{1b}\u{1f}"), "\"\\u0000\\u0001\\u001b\\u001f\"")
        XCTAssertEqual(JSONLine.quote("\u{7f}\u{85}\u{9b}"), "\"\\u007f\\u0085\\u009b\"")
        XCTAssertEqual(JSONLine.quote("é日本🙂"), "\"é日本🙂\"")
    }

    func testJSONQuoteRoundTrips() throws {
        var all = ""
        for value in 0..<0x200 { all.unicodeScalars.append(Unicode.Scalar(value)!) }
        all += "\"\\/🙂"
        let quoted = JSONLine.quote(all)
        let parsed = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed)
        XCTAssertEqual(parsed as? String, all)
    }

    func testJSONLineBuilder() throws {
        var j = JSONLine()
        j.add("n", Int(42))
        j.add("neg", Int32(-7))
        j.add("big", UInt64.max)
        j.add("yes", true)
        j.add("f", 1.5, decimals: 3)
        j.add("s", "x\"y")
        j.add("null", nil as String?)
        j.add("b", bytes: [0x61, 0x0A])
        j.add("list", strings: ["a", "b\"c"])
        j.add("empty", strings: [])
        XCTAssertEqual(j.line, #"{"n":42,"neg":-7,"big":18446744073709551615,"yes":true,"f":1.500,"s":"x\"y","null":null,"b":"a\n","list":["a","b\"c"],"empty":[]}"#)
        XCTAssertEqual(JSONLine().line, "{}")
    }

    func testFormatFixed() {
        XCTAssertEqual(formatFixed(0, decimals: 3), "0.000")
        XCTAssertEqual(formatFixed(1.2346, decimals: 3), "1.235")
        XCTAssertEqual(formatFixed(-2.5, decimals: 1), "-2.5")
        XCTAssertEqual(formatFixed(12345.678901234, decimals: 6), "12345.678901")
        XCTAssertEqual(formatFixed(7, decimals: 0), "7")
    }
}
