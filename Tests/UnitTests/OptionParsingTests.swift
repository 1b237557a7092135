import Applets
import XCTest

final class OptionParsingTests: XCTestCase {
    func testDefaults() throws {
        let config = try execsnoopConfig([])
        XCTAssertFalse(config.time)
        XCTAssertFalse(config.timestamp)
        XCTAssertFalse(config.fails)
        XCTAssertNil(config.uid)
        XCTAssertFalse(config.quote)
        XCTAssertNil(config.name)
        XCTAssertNil(config.line)
        XCTAssertFalse(config.printUID)
        XCTAssertEqual(config.maxArgs, 20)
        XCTAssertNil(config.ppid)
        XCTAssertFalse(config.tracing.json)
        XCTAssertNil(config.tracing.cgroupMap)
        XCTAssertNil(config.tracing.mntnsMap)
    }

    func testCombinedShortFlags() throws {
        let config = try execsnoopConfig(["-xT"])
        XCTAssertTrue(config.fails)
        XCTAssertTrue(config.time)
        XCTAssertFalse(config.timestamp)

        let more = try execsnoopConfig(["-xtUq"])
        XCTAssertTrue(more.fails)
        XCTAssertTrue(more.timestamp)
        XCTAssertTrue(more.printUID)
        XCTAssertTrue(more.quote)
        XCTAssertFalse(more.time)
    }

    func testShortOptionValueAfterFlagsInOneWord() throws {
        // A value option ends the cluster: the rest of the word is its value.
        let config = try execsnoopConfig(["-xu0"])
        XCTAssertTrue(config.fails)
        XCTAssertEqual(config.uid, 0)
        let spaced = try execsnoopConfig(["-xu", "1000"])
        XCTAssertTrue(spaced.fails)
        XCTAssertEqual(spaced.uid, 1000)
    }

    func testUIDZeroInEveryForm() throws {
        // bcc's execsnoop ignores -u 0; bpfbox must keep it.
        for arguments in [["-u0"], ["-u", "0"], ["--uid=0"], ["--uid", "0"]] {
            let config = try execsnoopConfig(arguments)
            XCTAssertEqual(config.uid, 0, "\(arguments)")
        }
    }

    func testUIDNumbers() throws {
        XCTAssertEqual(try execsnoopConfig(["-u", "1000"]).uid, 1000)
        XCTAssertEqual(try execsnoopConfig(["--uid=4294967295"]).uid, UInt32.max)
        // The last occurrence wins.
        XCTAssertEqual(try execsnoopConfig(["-u", "5", "-u", "7"]).uid, 7)
    }

    func testUIDUserNameRoot() throws {
        XCTAssertEqual(try execsnoopConfig(["-u", "root"]).uid, 0)
        XCTAssertEqual(try execsnoopConfig(["--uid=root"]).uid, 0)
    }

    func testUnknownUserIsAUsageError() {
        let error = execsnoopUsageError(["-u", "nosuchuser123"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("nosuchuser123") == true, error?.description ?? "")
        XCTAssertTrue(error?.description.contains("uid") == true, error?.description ?? "")
        XCTAssertNotNil(execsnoopUsageError(["--uid="]), "an empty uid is neither a number nor a user")
        XCTAssertNotNil(execsnoopUsageError(["-u", "4294967296"]), "a uid above 2^32-1 is not a uid")
    }

    func testUnknownLongOptionIsNamed() {
        let error = execsnoopUsageError(["--bogus"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("--bogus") == true, error?.description ?? "")
        let withValue = execsnoopUsageError(["--bogus=1"])
        XCTAssertTrue(withValue?.description.contains("--bogus") == true, withValue?.description ?? "")
    }

    func testUnknownShortOptionIsNamed() {
        let error = execsnoopUsageError(["-z"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("-z") == true, error?.description ?? "")
        // Inside a cluster, the offending letter is the one named.
        let clustered = execsnoopUsageError(["-xTk"])
        XCTAssertTrue(clustered?.description.contains("-k") == true, clustered?.description ?? "")
    }

    func testMissingValue() {
        for arguments in [["-u"], ["--uid"], ["--max-args"], ["-P"], ["-n"], ["-l"], ["-x", "--cgroupmap"]] {
            let error = execsnoopUsageError(arguments)
            XCTAssertNotNil(error, "\(arguments) should need a value")
            XCTAssertTrue(error?.description.contains("value") == true, "\(arguments): \(error?.description ?? "")")
        }
    }

    func testFlagGivenAValue() {
        let error = execsnoopUsageError(["--time=1"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("--time") == true, error?.description ?? "")
    }

    func testMaxArgs() throws {
        XCTAssertEqual(try execsnoopConfig(["--max-args", "3"]).maxArgs, 3)
        XCTAssertEqual(try execsnoopConfig(["--max-args=1"]).maxArgs, 1)
        for bad in ["0", "-5", "abc", "", "2.5", "99999999999999999999"] {
            let error = execsnoopUsageError(["--max-args", bad])
            XCTAssertNotNil(error, "--max-args \(bad.debugDescription) should be rejected")
            XCTAssertTrue(error?.description.contains("--max-args") == true, error?.description ?? "")
        }
        XCTAssertNotNil(execsnoopUsageError(["--max-args=-5"]))
    }

    func testPPID() throws {
        XCTAssertEqual(try execsnoopConfig(["-P", "181"]).ppid, 181)
        XCTAssertEqual(try execsnoopConfig(["-P1"]).ppid, 1)
        XCTAssertEqual(try execsnoopConfig(["--ppid=2"]).ppid, 2)
        for bad in ["0", "-1", "x", "4294967296"] {
            let error = execsnoopUsageError(["-P", bad])
            XCTAssertNotNil(error, "-P \(bad) should be rejected")
            XCTAssertTrue(error?.description.contains("ppid") == true, error?.description ?? "")
        }
    }

    func testNameAndLineRegexes() throws {
        let config = try execsnoopConfig(["-n", "^ba(sh|sh5)$", "-l", "tpkg"])
        XCTAssertNotNil(config.name)
        XCTAssertNotNil(config.line)
        for bad in ["(", "[a-", "a{2,1}"] {
            let name = execsnoopUsageError(["-n", bad])
            XCTAssertNotNil(name, "-n \(bad) is not a regex")
            XCTAssertTrue(name?.description.contains("-n") == true, name?.description ?? "")
            XCTAssertNotNil(execsnoopUsageError(["-l", bad]), "-l \(bad) is not a regex")
        }
    }

    func testUnexpectedPositional() {
        let error = execsnoopUsageError(["-x", "ls"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("ls") == true, error?.description ?? "")
        // A lone negative number is a word, not an option cluster: still unexpected.
        XCTAssertNotNil(execsnoopUsageError(["-5"]))
    }

    func testDoubleDash() throws {
        let parsed = try ExecSnoop.spec.parse(["-x", "--", "-T", "--uid=0"])
        XCTAssertTrue(parsed.has("fails"))
        XCTAssertFalse(parsed.has("time"), "words after -- are not options")
        XCTAssertFalse(parsed.has("uid"))
        XCTAssertEqual(parsed.positionals, ["-T", "--uid=0"])
        // execsnoop takes no positionals, so anything after -- is unexpected ...
        let error = execsnoopUsageError(["--", "-T"])
        XCTAssertTrue(error?.description.contains("-T") == true, error?.description ?? "")
        // ... and a bare -- is harmless.
        let config = try execsnoopConfig(["-x", "--"])
        XCTAssertTrue(config.fails)
    }

    func testValueThatLooksLikeAnOption() throws {
        // The word after an option that takes a value is that value.
        let config = try execsnoopConfig(["-n", "-x"])
        XCTAssertFalse(config.fails)
        XCTAssertNotNil(config.name)
    }

    func testTracingOptions() throws {
        let config = try execsnoopConfig(["--cgroupmap", "/sys/fs/bpf/set", "--mntnsmap=/sys/fs/bpf/ns", "--json"])
        XCTAssertEqual(config.tracing.cgroupMap, "/sys/fs/bpf/set")
        XCTAssertEqual(config.tracing.mntnsMap, "/sys/fs/bpf/ns")
        XCTAssertTrue(config.tracing.json)
        XCTAssertNotNil(execsnoopUsageError(["--cgroupmap="]), "an empty map path is rejected")
        XCTAssertEqual(try execsnoopConfig(["--ringbuf-kb", "512"]).tracing.ringBufferBytes, 512 * 1024)
        XCTAssertNotNil(execsnoopUsageError(["--ringbuf-kb", "100"]), "not a power of two")
    }

    func testHelpIsParsedAsAnOption() throws {
        XCTAssertTrue(try ExecSnoop.spec.parse(["-h"]).has("help"))
        XCTAssertTrue(try ExecSnoop.spec.parse(["-xh"]).has("help"))
        XCTAssertTrue(try ExecSnoop.spec.parse(["--help"]).has("help"))
    }

    func testHelpText() {
        let help = ExecSnoop.spec.helpText
        for line in help.split(separator: "\n") {
            XCTAssertLessThanOrEqual(line.count, 80, "help line wider than 80 columns: \(line)")
        }
        for option in ExecSnoop.spec.options where !option.hidden {
            XCTAssertTrue(help.contains("--" + option.long), "help omits --\(option.long)")
        }
        let hidden = OptionSpec(nil, "secret-knob", help: "not for users", hidden: true)
        let spec = CommandSpec(name: "demo", summary: "Demo.", options: [hidden])
        XCTAssertFalse(spec.helpText.contains("--secret-knob"), "hidden options stay out of the help")
        XCTAssertFalse(spec.usageLine.contains("--secret-knob"))
        assertSnapshot(help, named: "execsnoop_help")
    }
}
