import Foundation
import XCTest

/// SIGINT, SIGTERM and SIGKILL for every tracing applet: exit 0 with the totals the applet has,
/// and nothing of bpfbox left in the kernel; a closed stdout ends a run quietly.
final class SignalTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// Generous for a shared CI machine; the figures measured here are in docs/reliability.md.
    private static let exitBound: TimeInterval = 5

    /// A tracing applet as a user would start it, and what it prints after a SIGINT/SIGTERM
    /// (nil: nothing in particular).
    private struct Case {
        let arguments: [String]
        var traffic: ((Case) throws -> Void)? = nil
        var final: ((_ after: [String]) -> Bool)? = nil
        var applet: String { arguments[0] }
    }

    private func cases(_ cgroup: TestCgroup, listener: Listener) -> [Case] {
        [
            Case(arguments: ["execsnoop"]),
            Case(arguments: ["opensnoop"]),
            Case(arguments: ["capable"]),
            Case(arguments: ["tcpconnect"]),
            // -c: the connects are counted and printed at the end.
            Case(arguments: ["tcpconnect", "-c"], traffic: { _ in
                try runCommand(testHelperPath, ["connect", "127.0.0.1", String(listener.port)])
            }, final: { after in after.contains { $0.hasPrefix("127.0.0.1") && $0.contains(" \(listener.port) ") } }),
            // The interval under way is printed.
            Case(arguments: ["tcptop", "-C", "60"], final: { after in after.contains { $0.contains("loadavg") } }),
            Case(arguments: ["skbcount", "-c", cgroup.path, "60"], final: { after in after.contains { $0.contains("RX_PKTS") } }),
            Case(arguments: ["sockmap", "-c", cgroup.path, "60"], final: { after in after.contains { $0.hasPrefix("Totals: ") } }),
        ]
    }

    /// Starts `c` and waits for its first line (printed once it is attached).
    private func start(_ c: Case) throws -> Tool {
        let tool = try Tool(c.arguments)
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { _ in true }, "\(c.arguments): no first line; stderr: \(tool.stderr.all)")
        return tool
    }

    func testEveryAppletExitsCleanlyOnEachSignalAndLeavesNothing() throws {
        let cgroup = try TestCgroup()
        let listener = try Listener("127.0.0.1")
        var report: [String] = []
        for c in cases(cgroup, listener: listener) {
            var times: [String] = []
            for signal in [SIGINT, SIGTERM, SIGKILL] {
                let tool = try start(c)
                let held = heldBPFObjects(pid: tool.process.processIdentifier)
                XCTAssertTrue(held.contains { $0.hasPrefix("prog ") } && held.contains { $0.hasPrefix("link ") },
                              "\(c.arguments): no program or link held: \(held)")
                try c.traffic?(c)
                let printed = tool.stdout.all.count
                let seconds = signalAndTime(tool, signal)
                times.append(formatSeconds(seconds))
                if signal != SIGKILL {
                    XCTAssertEqual(tool.process.terminationReason, .exit, "\(c.arguments) killed by signal \(signal)")
                    XCTAssertEqual(tool.process.terminationStatus, 0, "\(c.arguments) after signal \(signal)")
                    XCTAssertLessThan(seconds, Self.exitBound, "\(c.arguments) took \(seconds) s to exit after signal \(signal)")
                    XCTAssertTrue(tool.stdout.waitForEnd(timeout: 10) && tool.stderr.waitForEnd(timeout: 10))
                    if let final = c.final {
                        XCTAssertTrue(final(Array(tool.stdout.all.dropFirst(printed))),
                                      "\(c.arguments): no final output after signal \(signal): \(tool.stdout.all.suffix(5))")
                    }
                    let unexpected = tool.stderr.all.filter { !$0.contains("events lost") }
                    XCTAssertEqual(unexpected, [], "\(c.arguments): stderr after signal \(signal)")
                }
                XCTAssertEqual(try leftBehind(held), [], "\(c.arguments): left behind after signal \(signal)")
            }
            report.append("\(c.arguments.joined(separator: " ")): INT/TERM/KILL \(times.joined(separator: "/")) s")
        }
        print("signal to exit: " + report.joined(separator: "; "))
    }

    /// A signal while the programs are still being loaded ends the run as cleanly as one after.
    func testSignalDuringStartExitsZero() throws {
        let cgroup = try TestCgroup()
        let listener = try Listener("127.0.0.1")
        for c in cases(cgroup, listener: listener) where c.traffic == nil {
            for signal in [SIGINT, SIGTERM] {
                let tool = try Tool(c.arguments)
                let pid = tool.process.processIdentifier
                var waited = 0
                while !catches(signal, pid: pid) && tool.process.isRunning && waited < 2000 {
                    usleep(1000)
                    waited += 1
                }
                XCTAssertTrue(catches(signal, pid: pid), "\(c.arguments): no handler for signal \(signal)")
                // Handled from the start: nothing is attached yet when the handler is there.
                XCTAssertFalse(heldBPFObjects(pid: pid).contains { $0.hasPrefix("link ") },
                               "\(c.arguments): signal \(signal) is handled only once attached; before, it kills the process")
                let seconds = signalAndTime(tool, signal)
                XCTAssertEqual(tool.process.terminationReason, .exit, "\(c.arguments) killed by signal \(signal) during start")
                XCTAssertEqual(tool.process.terminationStatus, 0, "\(c.arguments) signal \(signal) during start")
                XCTAssertLessThan(seconds, Self.exitBound)
            }
        }
    }

    /// A pinned filter map is the user's: the tracer reads it and never changes it, whatever
    /// way it ends.
    func testPinnedFilterMapIsNeverModified() throws {
        let cgroup = try TestCgroup(), other = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        try map.add(other.id, valueSize: 8)
        func contents() throws -> String {
            try runCommand(bpftoolPath, ["-j", "map", "dump", "pinned", map.path]).stdout
                + runCommand(bpftoolPath, ["-j", "map", "show", "pinned", map.path]).stdout
        }
        let before = try contents()
        let runner = try Runner(setup: cgroup.joinScript)
        for applet in ["execsnoop", "opensnoop", "capable", "tcpconnect", "tcptop"] {
            for signal in [SIGINT, SIGKILL] {
                let tool = try Tool([applet, "--cgroupmap", map.path])
                XCTAssertNotNil(tool.stdout.wait(timeout: 30) { _ in true }, "\(applet): \(tool.stderr.all)")
                runner.exec(uniqueMarker("filtered"), program: "/bin/cat")
                _ = signalAndTime(tool, signal)
                XCTAssertEqual(try contents(), before, "\(applet) changed the pinned map (signal \(signal))")
            }
        }
        for applet in [["skbcount"], ["sockmap"]] {
            let tool = try Tool(applet + ["--cgroupmap", map.path, "60"])
            XCTAssertNotNil(tool.stdout.wait(timeout: 30) { _ in true }, "\(applet): \(tool.stderr.all)")
            XCTAssertEqual(tool.stop(), 0)
            XCTAssertEqual(try contents(), before, "\(applet) changed the pinned map")
        }
    }

    /// `bpfbox APPLET | head -1`: once the reader is gone, the next write ends the run, with
    /// exit status 0 and nothing on stderr.
    func testClosedPipeEndsTheRunQuietly() throws {
        let cgroup = try TestCgroup()
        let runner = try Runner(setup: cgroup.joinScript)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueMarker("pipe")).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let variants: [[String]] = [
            ["execsnoop"], ["execsnoop", "--json"], ["opensnoop", "--cgroup", cgroup.path],
            ["opensnoop", "--json", "--cgroup", cgroup.path], ["tcptop", "0.2"], ["skbcount", "-c", cgroup.path, "0.2"],
        ]
        for (index, arguments) in variants.enumerated() {
            let err = "\(dir)/err\(index)", status = "\(dir)/status\(index)"
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", "{ \"$0\" \"$@\" 2>'\(err)'; echo $? >'\(status)'; } | head -1", bpfboxPath] + arguments
            let out = Pipe()
            shell.standardOutput = out
            shell.standardInput = FileHandle.nullDevice
            try shell.run()
            let lines = LineCollector(out.fileHandleForReading)
            // head is gone after its line; the tool goes with its next write (an exec or an open
            // of the runner's cat; an interval).
            var triggers = 0
            while shell.isRunning && triggers < 200 {
                runner.exec("/nonexistent/" + uniqueMarker("pipe"), program: "/bin/cat")
                triggers += 1
                usleep(50_000)
            }
            XCTAssertFalse(shell.isRunning, "\(arguments): still running after the reader left")
            if shell.isRunning { shell.terminate() }
            shell.waitUntilExit()
            XCTAssertTrue(lines.waitForEnd(timeout: 10))
            XCTAssertEqual(lines.all.count, 1, "\(arguments): \(lines.all)")
            XCTAssertEqual(try String(contentsOfFile: status, encoding: .utf8), "0\n", "\(arguments): exit status")
            XCTAssertEqual(try String(contentsOfFile: err, encoding: .utf8), "", "\(arguments): stderr")
        }
    }

    private func formatSeconds(_ value: Double) -> String { String(format: "%.2f", value) }
}
