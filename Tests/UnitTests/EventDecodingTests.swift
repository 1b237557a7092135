import Applets
import BPFSupport
import XCTest

final class EventDecodingTests: XCTestCase {
    /// The layout Swift sees is the C layout of bpf/execsnoop.h (natural alignment, no padding).
    func testHeaderLayoutMatchesTheCHeader() {
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.ts_ns), 0)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.cgroup_id), 8)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.mntns_id), 16)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.pid), 24)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.tid), 28)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.uid), 32)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.task.gid), 36)
        XCTAssertEqual(EventLayout.commOffset, 40)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.ppid), 56)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.retval), 60)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.flags), 64)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.filename_size), 68)
        XCTAssertEqual(EventLayout.offset(\execsnoop_event.args_size), 72)
        XCTAssertEqual(ExecSnoop.Event.headerSize, 76)
        XCTAssertEqual(ExecSnoop.Event.headerSize, EventLayout.headerSize)
    }

    func testDecodesEveryField() throws {
        var sample = ExecSample()
        sample.timestampNs = 0x0102_0304_0506_0708
        sample.cgroupID = 0x1122_3344_5566_7788
        sample.mntnsID = 4_026_531_840
        sample.pid = 123_456
        sample.tid = 123_457
        sample.ppid = 99
        sample.uid = 1001
        sample.gid = 1002
        sample.retval = -2
        sample.flags = UInt32(EXECSNOOP_F_EXECVEAT.rawValue)
        let event = try XCTUnwrap(sample.event())
        XCTAssertEqual(event.task.timestampNs, 0x0102_0304_0506_0708)
        XCTAssertEqual(event.task.cgroupID, 0x1122_3344_5566_7788)
        XCTAssertEqual(event.task.mntnsID, 4_026_531_840)
        XCTAssertEqual(event.task.pid, 123_456)
        XCTAssertEqual(event.task.tid, 123_457)
        XCTAssertEqual(event.ppid, 99)
        XCTAssertEqual(event.task.uid, 1001)
        XCTAssertEqual(event.task.gid, 1002)
        XCTAssertEqual(event.retval, -2)
        XCTAssertTrue(event.isExecveat)
        XCTAssertFalse(event.argvTruncated)
        XCTAssertEqual(text(event.task.comm), "ls")
        XCTAssertEqual(text(event.filename), "/usr/bin/ls")
        XCTAssertEqual(event.argv.map(text), ["ls", "-la", "/tmp"])
    }

    func testFlags() throws {
        var sample = ExecSample()
        sample.flags = UInt32(EXECSNOOP_F_ARGV_TRUNCATED.rawValue)
        let truncated = try XCTUnwrap(sample.event())
        XCTAssertTrue(truncated.argvTruncated)
        XCTAssertFalse(truncated.isExecveat)
        sample.flags = UInt32(EXECSNOOP_F_ARGV_TRUNCATED.rawValue | EXECSNOOP_F_EXECVEAT.rawValue | EXECSNOOP_F_FROM_ENTRY.rawValue)
        let both = try XCTUnwrap(sample.event())
        XCTAssertTrue(both.argvTruncated)
        XCTAssertTrue(both.isExecveat)
    }

    func testCommThatFillsItsField() throws {
        // 16 bytes and no NUL: comm stops at the field's end, not in args.
        var sample = ExecSample()
        sample.comm = Array("0123456789abcdef".utf8)
        let event = try XCTUnwrap(sample.event())
        XCTAssertEqual(text(event.task.comm), "0123456789abcdef")
        XCTAssertEqual(text(event.filename), "/usr/bin/ls")
    }

    func testEmptyAndUnterminatedArguments() throws {
        var sample = ExecSample(comm: "sh", filename: "/bin/sh", argv: ["sh", "", "-c", "x"])
        let withEmpty = try XCTUnwrap(sample.event())
        XCTAssertEqual(withEmpty.argv.map(text), ["sh", "", "-c", "x"])

        sample.unterminatedLastArg = true
        let unterminated = try XCTUnwrap(sample.event())
        XCTAssertEqual(unterminated.argv.map(text), ["sh", "", "-c", "x"])
    }

    func testNoArgv() throws {
        let sample = ExecSample(comm: "bash", filename: "/bin/true", argv: [])
        let event = try XCTUnwrap(sample.event())
        XCTAssertEqual(text(event.filename), "/bin/true")
        XCTAssertEqual(event.argv, [])
    }

    func testEmptyArgsBlock() throws {
        var sample = ExecSample()
        sample.rawArgs = []
        sample.filenameSizeOverride = 0
        XCTAssertEqual(sample.bytes.count, ExecSnoop.Event.headerSize)
        let event = try XCTUnwrap(decodeExecEvent(sample.bytes))
        XCTAssertEqual(event.filename, [])
        XCTAssertEqual(event.argv, [])
    }

    func testBytesAfterArgsSizeAreIgnored() throws {
        // The kernel may hand over a sample rounded up; only args_size bytes are args.
        let sample = ExecSample()
        let event = try XCTUnwrap(decodeExecEvent(sample.bytes + Array("junk".utf8) + [0]))
        XCTAssertEqual(event.argv.map(text), ["ls", "-la", "/tmp"])
    }

    func testNonUTF8BytesSurviveDecoding() throws {
        var sample = ExecSample()
        sample.argv = [Array("cat".utf8), [0x66, 0xFF, 0xFE, 0x1B]]
        let event = try XCTUnwrap(sample.event())
        XCTAssertEqual(event.argv, [Array("cat".utf8), [0x66, 0xFF, 0xFE, 0x1B]])
    }

    // MARK: - Malformed samples

    func testShorterThanTheHeader() {
        XCTAssertNil(decodeExecEvent([]))
        XCTAssertNil(decodeExecEvent([0]))
        XCTAssertNil(decodeExecEvent(Array(ExecSample().bytes.prefix(ExecSnoop.Event.headerSize - 1))))
    }

    func testEveryTruncationIsRejected() {
        // The header's args_size promises more than any prefix holds.
        let full = ExecSample().bytes
        XCTAssertNotNil(decodeExecEvent(full))
        for length in 0..<full.count {
            XCTAssertNil(decodeExecEvent(Array(full.prefix(length))), "a sample cut to \(length) of \(full.count) bytes decoded")
        }
    }

    func testArgsSizeLargerThanTheSample() {
        var sample = ExecSample()
        sample.argsSizeOverride = UInt32(sample.args.count + 1)
        XCTAssertNil(decodeExecEvent(sample.bytes))
        sample.argsSizeOverride = UInt32(EXECSNOOP_ARGS_SIZE)
        XCTAssertNil(decodeExecEvent(sample.bytes))
        sample.argsSizeOverride = UInt32.max
        XCTAssertNil(decodeExecEvent(sample.bytes))
    }

    func testFilenameSizeLargerThanArgsSize() {
        var sample = ExecSample()
        sample.filenameSizeOverride = UInt32(sample.args.count + 1)
        XCTAssertNil(decodeExecEvent(sample.bytes))
        sample.filenameSizeOverride = UInt32.max
        XCTAssertNil(decodeExecEvent(sample.bytes))
        // A zero-sized args block with a non-zero filename size.
        sample.filenameSizeOverride = 1
        sample.argsSizeOverride = 0
        XCTAssertNil(decodeExecEvent(sample.bytes))
    }

    func testFilenameSizeEqualToArgsSize() throws {
        // Legal: a filename and no argv at all.
        var sample = ExecSample(comm: "x", filename: "/bin/x", argv: [])
        sample.filenameSizeOverride = UInt32(sample.args.count)
        let event = try XCTUnwrap(sample.event())
        XCTAssertEqual(text(event.filename), "/bin/x")
        XCTAssertEqual(event.argv, [])
    }

    func testNeverReadsPastTheSample() throws {
        // decodeExecEvent surrounds the sample with a marker: the decoded strings must not
        // contain it, whatever the sample's last bytes are.
        var unterminatedArg = ExecSample()
        unterminatedArg.unterminatedLastArg = true
        var unterminatedFilename = ExecSample()
        unterminatedFilename.rawArgs = Array("/bin/abcdef".utf8)
        unterminatedFilename.filenameSizeOverride = 11
        var fullComm = ExecSample()
        fullComm.comm = Array(repeating: UInt8(ascii: "c"), count: 16)
        fullComm.rawArgs = []
        fullComm.filenameSizeOverride = 0

        let last = try XCTUnwrap(decodeExecEvent(unterminatedArg.bytes))
        XCTAssertEqual(last.argv.map(text), ["ls", "-la", "/tmp"])
        let filename = try XCTUnwrap(decodeExecEvent(unterminatedFilename.bytes))
        XCTAssertEqual(text(filename.filename), "/bin/abcdef")
        XCTAssertEqual(filename.argv, [])
        let comm = try XCTUnwrap(decodeExecEvent(fullComm.bytes))
        XCTAssertEqual(text(comm.task.comm), "cccccccccccccccc")
        XCTAssertEqual(comm.filename, [])
        for event in [last, filename, comm] {
            for piece in [Array(event.task.comm), event.filename] + event.argv {
                XCTAssertFalse(text(piece).contains(outOfBoundsMarker), "decoded bytes from outside the sample: \(text(piece))")
            }
        }
    }
}
