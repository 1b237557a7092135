import ContainerFilter
import Foundation
import XCTest

final class JSONValueTests: XCTestCase {
    func testParsesTheValues() throws {
        let value = try XCTUnwrap(JSONValue.parse(#" {"a": [1, -2.5e1, true, false, null], "b": {"c": "d"}} "#))
        XCTAssertEqual(value["a"], .array([.number(1), .number(-25), .bool(true), .bool(false), .null]))
        XCTAssertEqual(value["b"]?["c"]?.string, "d")
        XCTAssertEqual(value["a"]?.array?.first?.int, 1)
        XCTAssertNil(JSONValue.number(1.5).int)
    }

    func testStringEscapes() {
        XCTAssertEqual(JSONValue.parse(#""q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00""#), .string("q\"b\\s/n\nt\tu\u{e9}\u{1F600}"))
        XCTAssertNil(JSONValue.parse(#""\ud83d""#), "a lone surrogate")
        XCTAssertNil(JSONValue.parse("\"raw\ncontrol\""))
    }

    func testRejectsMalformedInput() {
        for text in ["", "{", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "tru", "01x", "{} {}", "\"open", "[1 2]", "-"] {
            XCTAssertNil(JSONValue.parse(text), text)
        }
        XCTAssertNil(JSONValue.parse(String(repeating: "[", count: 10_000)), "nesting is bounded")
    }
}

final class OCIHookTests: XCTestCase {
    func testParsesTheRuntimeState() throws {
        let state = try OCIState.parse(Array(#"{"ociVersion":"1.0.2","id":"web","status":"created","pid":4242,"bundle":"/b","annotations":{}}"#.utf8))
        XCTAssertEqual(state, OCIState(id: "web", status: "created", pid: 4242, bundle: "/b"))
        let stopped = try OCIState.parse(Array(#"{"ociVersion":"1.0.2","id":"web","status":"stopped","bundle":"/b"}"#.utf8))
        XCTAssertNil(stopped.pid)
    }

    func testBadStatesSayWhatIsWrong() {
        let cases: [(String, String)] = [
            ("", "no OCI state on stdin (empty input)"),
            ("{\"id\": ", "the OCI state on stdin is not valid JSON"),
            ("[1]", "the OCI state on stdin is not a JSON object"),
            ("{\"pid\": 1}", "the OCI state on stdin has no \"id\""),
        ]
        for (input, message) in cases {
            XCTAssertThrowsError(try OCIState.parse(Array(input.utf8)), input) { XCTAssertEqual("\($0)", message) }
        }
        XCTAssertNil(try? OCIState.parse(Array(#"{"id":"x","pid":-3}"#.utf8)).pid, "a negative pid is no pid")
    }

    func testRecordRoundTrip() throws {
        let record = OCIHookRecord(entries: [
            .init(kind: .cgroup, key: 4_294_967_345, mapPath: "/sys/fs/bpf/my maps/cg"),
            .init(kind: .mntns, key: 4_026_532_177, mapPath: "/sys/fs/bpf/ns"),
        ])
        XCTAssertEqual(OCIHookRecord.parse(record.text), record)
        XCTAssertEqual(OCIHookRecord.parse("junk\ncgroup x /p\nmntns 5 /q\n").entries, [.init(kind: .mntns, key: 5, mapPath: "/q")])

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bpfbox-oci-" + UUID().uuidString).path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = OCIHookRecord.file(directory: dir + "/nested", state: OCIState(id: "a/b", bundle: "/x"))
        try record.write(to: file)
        XCTAssertEqual(OCIHookRecord.read(from: file), record)
    }

    func testRecordFileNames() {
        let one = OCIHookRecord.file(directory: "/d", state: OCIState(id: "../web", bundle: "/b1"))
        let two = OCIHookRecord.file(directory: "/d", state: OCIState(id: "../web", bundle: "/b2"))
        XCTAssertTrue(one.hasPrefix("/d/.._web-"), one)
        XCTAssertNotEqual(one, two, "the same id in two bundles")
    }
}
