import Foundation
import XCTest

/// tcpconnect against the real kernel: connects over loopback made by the test helper.
final class TcpConnectTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// Runs `testhelper connect ADDR PORT` in `runner`; returns (pid, local port or nil).
    @discardableResult
    private func connect(_ runner: Runner, _ address: String, _ port: UInt16) -> (pid: Int, lport: Int?) {
        let printed = runner.run([testHelperPath, "connect", address, String(port)])
        return (helperPID(printed) ?? -1, helperValue(printed, "lport"))
    }

    private func event(_ tool: Tool, pid: Int, timeout: TimeInterval = 20) -> [String: Any]? {
        guard let line = tool.stdout.wait(timeout: timeout, { $0.contains("\"pid\":\(pid),") }) else {
            if timeout > 1 { tool.reportMiss() }
            return nil
        }
        return jsonObject(line)
    }

    private func sync(_ tool: Tool, _ runner: Runner, _ listener: Listener, address: String = "127.0.0.1") {
        for _ in 0..<200 {
            let attempt = connect(runner, address, listener.port)
            if event(tool, pid: attempt.pid, timeout: 0.25) != nil { return }
            if !tool.process.isRunning { break }
        }
        XCTFail("tcpconnect never showed a synchronization connect; stderr: \(tool.stderr.all.joined(separator: " | "))")
    }

    private func shown(_ tool: Tool, pid: Int) -> Bool { tool.stdout.all.contains { $0.contains("\"pid\":\(pid),") } }

    func testIPv4Connect() throws {
        let listener = try Listener("127.0.0.1")
        let tool = try Tool(["tcpconnect", "--json"])
        let runner = try Runner()
        sync(tool, runner, listener)
        let attempt = connect(runner, "127.0.0.1", listener.port)
        let e = try XCTUnwrap(event(tool, pid: attempt.pid))
        XCTAssertEqual(e["comm"] as? String, "testhelper")
        XCTAssertEqual(e["ip"] as? Int, 4)
        XCTAssertEqual(e["saddr"] as? String, "127.0.0.1")
        XCTAssertEqual(e["daddr"] as? String, "127.0.0.1")
        XCTAssertEqual(e["dport"] as? Int, Int(listener.port))
        XCTAssertEqual(e["sport"] as? Int, attempt.lport)
        XCTAssertEqual(e["outcome"] as? String, "established")
        XCTAssertEqual(e["tid"] as? Int, attempt.pid)
        tool.stop()
    }

    func testIPv6Connect() throws {
        let listener = try Listener("::1")
        let tool = try Tool(["tcpconnect", "--json"])
        let runner = try Runner()
        sync(tool, runner, listener, address: "::1")
        let attempt = connect(runner, "::1", listener.port)
        let e = try XCTUnwrap(event(tool, pid: attempt.pid))
        XCTAssertEqual(e["ip"] as? Int, 6)
        XCTAssertEqual(e["saddr"] as? String, "::1")
        XCTAssertEqual(e["daddr"] as? String, "::1")
        XCTAssertEqual(e["dport"] as? Int, Int(listener.port))
        XCTAssertEqual(e["sport"] as? Int, attempt.lport)
        tool.stop()
    }

    func testV4MappedIsShownAsIPv4() throws {
        let listener = try Listener("::")
        let tool = try Tool(["tcpconnect", "--json"])
        let runner = try Runner()
        sync(tool, runner, listener, address: "::1")
        let attempt = connect(runner, "::ffff:127.0.0.1", listener.port)
        let e = try XCTUnwrap(event(tool, pid: attempt.pid))
        XCTAssertEqual(e["ip"] as? Int, 4)
        XCTAssertEqual(e["daddr"] as? String, "127.0.0.1")
        tool.stop()
    }

    func testRefusedWithLatency() throws {
        let closed = try Listener("127.0.0.1", listen: false) // bound, not listening: connects are refused
        let open = try Listener("127.0.0.1")
        let tool = try Tool(["tcpconnect", "--json", "--latency"])
        let runner = try Runner()
        sync(tool, runner, open)
        let attempt = connect(runner, "127.0.0.1", closed.port)
        XCTAssertNil(attempt.lport)
        let e = try XCTUnwrap(event(tool, pid: attempt.pid))
        XCTAssertEqual(e["outcome"] as? String, "refused")
        XCTAssertEqual(e["error"] as? String, "ECONNREFUSED")
        XCTAssertGreaterThan(e["latency_ms"] as? Double ?? 0, 0)
        tool.stop()

        let table = try Tool(["tcpconnect", "--latency"])
        XCTAssertEqual(table.stdout.wait(timeout: 30) { $0.hasPrefix("PID") },
                       "PID     COMM         IP SADDR            DADDR            DPORT  LAT(ms) RESULT")
        var line: String?
        for _ in 0..<100 where line == nil {
            let refused = connect(runner, "127.0.0.1", closed.port)
            line = table.stdout.wait(timeout: 0.3) { $0.hasPrefix(String(refused.pid) + " ") }
        }
        XCTAssertTrue(try XCTUnwrap(line).hasSuffix(" refused"), line ?? "")
        table.stop()
    }

    func testPortFilterAndLocalPortColumn() throws {
        let wanted = try Listener("127.0.0.1"), other = try Listener("127.0.0.1")
        let tool = try Tool(["tcpconnect", "-L", "-P", "\(wanted.port),1"])
        XCTAssertEqual(tool.stdout.wait(timeout: 30) { $0.hasPrefix("PID") },
                       "PID     COMM         IP SADDR            LPORT  DADDR            DPORT")
        let runner = try Runner()
        var seen: String?
        for _ in 0..<100 where seen == nil {
            let attempt = connect(runner, "127.0.0.1", wanted.port)
            seen = tool.stdout.wait(timeout: 0.3) { $0.hasPrefix(String(attempt.pid) + " ") }
        }
        let skipped = connect(runner, "127.0.0.1", other.port)
        let kept = connect(runner, "127.0.0.1", wanted.port)
        let line = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.hasPrefix(String(kept.pid) + " ") })
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        XCTAssertEqual(fields.count, 7, line)
        XCTAssertEqual(Int(fields[4]), kept.lport)
        XCTAssertEqual(String(fields[6]), String(wanted.port))
        XCTAssertFalse(tool.stdout.all.contains { $0.hasPrefix(String(skipped.pid) + " ") }, "-P let another port through")
        tool.stop()
    }

    func testFamilyFilters() throws {
        let v4 = try Listener("127.0.0.1"), v6 = try Listener("::1")
        let tool = try Tool(["tcpconnect", "--json", "-6"])
        let runner = try Runner()
        sync(tool, runner, v6, address: "::1")
        let skipped = connect(runner, "127.0.0.1", v4.port)
        let kept = connect(runner, "::1", v6.port)
        XCTAssertNotNil(event(tool, pid: kept.pid))
        XCTAssertFalse(shown(tool, pid: skipped.pid), "-6 showed an IPv4 connect")
        tool.stop()

        let only4 = try Tool(["tcpconnect", "--json", "-4"])
        let dual = try Listener("::")
        sync(only4, runner, v4)
        let skipped6 = connect(runner, "::1", v6.port)
        let mapped = connect(runner, "::ffff:127.0.0.1", dual.port)
        let kept4 = connect(runner, "127.0.0.1", v4.port)
        XCTAssertNotNil(event(only4, pid: kept4.pid))
        XCTAssertEqual(event(only4, pid: mapped.pid)?["ip"] as? Int, 4, "-4 dropped a v4-mapped connect, shown as IPv4")
        XCTAssertFalse(shown(only4, pid: skipped6.pid), "-4 showed an IPv6 connect")
        only4.stop()
    }

    func testCountTable() throws {
        let a = try Listener("127.0.0.1"), b = try Listener("127.0.0.1")
        let tool = try Tool(["tcpconnect", "-c", "-P", "\(a.port),\(b.port)"])
        XCTAssertNotNil(tool.stdout.wait(timeout: 30) { $0.hasPrefix("Tracing connects") }, "no attach line")
        let runner = try Runner()
        for _ in 0..<3 { connect(runner, "127.0.0.1", a.port) }
        connect(runner, "127.0.0.1", b.port)
        // The outcome of every connect above is known before connect() returns (loopback): a
        // second tracer's view of one more connect is not needed; SIGINT drains what is left.
        XCTAssertEqual(tool.stop(), 0)
        let lines = tool.stdout.all
        XCTAssertTrue(lines.contains { $0.hasPrefix("LADDR") && $0.hasSuffix("RPORT CONNECTS") }, "\(lines)")
        let rows = lines.filter { $0.hasPrefix("127.0.0.1") }.map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        XCTAssertEqual(rows.count, 2, "\(lines)")
        XCTAssertEqual(rows.first { $0[2] == Substring(String(a.port)) }?[3], "3")
        XCTAssertEqual(rows.first { $0[2] == Substring(String(b.port)) }?[3], "1")
    }

    func testCountJSON() throws {
        let a = try Listener("127.0.0.1")
        let tool = try Tool(["tcpconnect", "--json", "-c", "-P", String(a.port)])
        // JSON prints nothing until the end: a second tracer shows when connects are traced, and
        // the counting one was started first.
        let watcher = try Tool(["tcpconnect", "--json", "-P", String(a.port)])
        let runner = try Runner()
        var counted = 0
        for _ in 0..<200 {
            let attempt = connect(runner, "127.0.0.1", a.port)
            counted += 1
            if event(watcher, pid: attempt.pid, timeout: 0.25) != nil { break }
        }
        for _ in 0..<2 { connect(runner, "127.0.0.1", a.port) }
        watcher.stop()
        XCTAssertEqual(tool.stop(), 0)
        let row = try XCTUnwrap(tool.stdout.all.compactMap(jsonObject).first)
        XCTAssertEqual(row["dport"] as? Int, Int(a.port))
        XCTAssertGreaterThanOrEqual(row["connects"] as? Int ?? 0, 3)
        XCTAssertLessThanOrEqual(row["connects"] as? Int ?? 0, counted + 2)
    }

    func testCgroupMapSelectsTheCgroup() throws {
        let listener = try Listener("127.0.0.1")
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript), outside = try Runner()
        let tool = try Tool(["tcpconnect", "--json", "--cgroupmap", map.path])
        sync(tool, inside, listener)
        let out = connect(outside, "127.0.0.1", listener.port)
        let inAttempt = connect(inside, "127.0.0.1", listener.port)
        XCTAssertEqual(event(tool, pid: inAttempt.pid)?["cgroup_id"] as? UInt64, cgroup.id)
        XCTAssertFalse(shown(tool, pid: out.pid), "a connect outside the cgroup was shown")
        tool.stop()
    }

    func testMountNamespaceMapSelectsTheNamespace() throws {
        let listener = try Listener("127.0.0.1")
        let map = try PinnedMap.mntnsMap()
        let inside = try Runner(wrapper: ["/usr/bin/unshare", "-m"]), outside = try Runner()
        try map.add(try XCTUnwrap(mountNamespace(of: inside.pid)), valueSize: 4)
        let tool = try Tool(["tcpconnect", "--json", "--mntnsmap", map.path])
        sync(tool, inside, listener)
        let out = connect(outside, "127.0.0.1", listener.port)
        let inAttempt = connect(inside, "127.0.0.1", listener.port)
        XCTAssertNotNil(event(tool, pid: inAttempt.pid))
        XCTAssertFalse(shown(tool, pid: out.pid), "a connect outside the namespace was shown")
        tool.stop()
    }

    func testBadInput() throws {
        for (arguments, text) in [(["-P", "80,x"], "'x' in '80,x' is not a port"), (["-P", "0"], "not a port"),
                                  (["-4", "-6"], "exclude each other")] {
            let result = try runCommand(bpfboxPath, ["tcpconnect"] + arguments)
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertTrue(result.stderrLines.last?.contains(text) ?? false, result.stderr)
        }
    }
}
