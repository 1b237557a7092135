import Applets
import XCTest

final class TableTests: XCTestCase {
    private struct Row {
        var name: String
        var count: Int
        var note: String
    }

    private let table = Table<Row>([
        Column("NAME", width: 10) { $0.name },
        Column("COUNT", width: 6, .right) { String($0.count) },
        Column("NOTE", width: 20) { $0.note },
    ])

    func testHeader() {
        XCTAssertEqual(table.header, "NAME        COUNT NOTE")
    }

    func testRowsUseTheHeaderWidths() {
        let rows = [Row(name: "a", count: 5, note: "x"), Row(name: "abcdefghij", count: 123_456, note: "a longer note")]
        XCTAssertEqual(table.row(rows[0]), "a               5 x")
        XCTAssertEqual(table.row(rows[1]), "abcdefghij 123456 a longer note")
        // The last column starts at the same offset everywhere.
        let offset = table.header.count - "NOTE".count
        for row in rows {
            let line = table.row(row)
            XCTAssertEqual(String(line.dropFirst(offset)), row.note, line)
            XCTAssertEqual(Array(line)[offset - 1], " ", line)
        }
    }

    func testLastColumnIsNotPadded() {
        XCTAssertFalse(table.header.hasSuffix(" "))
        XCTAssertFalse(table.row(Row(name: "a", count: 1, note: "n")).hasSuffix(" "))
        XCTAssertTrue(table.row(Row(name: "a", count: 1, note: "")).hasSuffix("1 "), "an empty last cell adds nothing but its separator")
    }

    func testRightAlignedColumn() {
        let line = table.row(Row(name: "n", count: 7, note: "z"))
        let countCell = String(Array(line)[11..<17])
        XCTAssertEqual(countCell, "     7")
    }

    func testRightAlignedLastColumnIsPadded() {
        let t = Table<Int>([Column("ID", width: 4) { String($0) }, Column("VALUE", width: 8, .right) { String($0 * 2) }])
        XCTAssertEqual(t.header, "ID      VALUE")
        XCTAssertEqual(t.row(21), "21         42")
        XCTAssertEqual(t.header.count, t.row(21).count)
    }

    func testSingleColumn() {
        let t = Table<String>([Column("ONLY", width: 10) { $0 }])
        XCTAssertEqual(t.header, "ONLY")
        XCTAssertEqual(t.row("x"), "x")
    }

    func testExecsnoopHeaderWidths() throws {
        // bcc's execsnoop columns: PCOMM 16, PID 7, PPID 7, RET 3 (right-aligned), then ARGS.
        XCTAssertEqual(try renderer([]).table.header, "PCOMM            PID     PPID    RET ARGS")
        XCTAssertEqual(try renderer(["-TtU"]).table.header,
                       "TIME     TIME(s)  UID    PCOMM            PID     PPID    RET ARGS")
    }
}
