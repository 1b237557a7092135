import Foundation
import XCTest

/// A testhelper `tcpsession`: a loopback connection the test drives, in one process.
final class TCPSession {
    let process = Process()
    private let input = Pipe()
    private let output: LineCollector
    private var moves = 0
    let pid: Int
    let clientPort: Int
    let serverPort: Int
    /// Bytes the client sent and received so far.
    private(set) var sent = 0
    private(set) var received = 0

    init(_ address: String) throws {
        process.executableURL = URL(fileURLWithPath: testHelperPath)
        process.arguments = ["tcpsession", address]
        let out = Pipe()
        process.standardInput = input
        process.standardOutput = out
        try process.run()
        output = LineCollector(out.fileHandleForReading)
        guard output.wait(timeout: 20, { $0.hasPrefix("rport ") }) != nil else { throw TestError("tcpsession did not start") }
        pid = Int(process.processIdentifier)
        clientPort = helperValue(output.all, "lport") ?? -1
        serverPort = helperValue(output.all, "rport") ?? -1
    }

    /// The client sends `send` bytes and receives `receive` bytes; returns when both arrived.
    func move(send: Int, receive: Int) {
        input.fileHandleForWriting.write(Data("\(send) \(receive)\n".utf8))
        moves += 1
        let target = moves
        var seen = 0
        _ = output.wait(timeout: 20) { line in
            if line == "moved" { seen += 1 }
            return seen >= target
        }
        sent += send
        received += receive
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// tcptop against the real kernel: exact byte counts on loopback connections the test drives.
final class TcpTopTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
        guard FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events/sock/sock_send_length")
            || !FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events") else {
            throw XCTSkip("this kernel has no sock/sock_send_length tracepoint")
        }
    }

    /// Sums (tx, rx) of the JSON rows of one connection (pid, local port) seen so far.
    private func totals(_ lines: [String], pid: Int, lport: Int) -> (tx: Int, rx: Int) {
        var tx = 0, rx = 0
        for row in lines.compactMap(jsonObject) where row["pid"] as? Int == pid && row["lport"] as? Int == lport {
            tx += row["tx_bytes"] as? Int ?? 0
            rx += row["rx_bytes"] as? Int ?? 0
        }
        return (tx, rx)
    }

    /// Waits until the rows of (pid, lport) add up to (tx, rx) exactly, or time runs out.
    private func waitForTotals(_ tool: Tool, pid: Int, lport: Int, tx: Int, rx: Int) -> (tx: Int, rx: Int) {
        var sums = (tx: 0, rx: 0)
        _ = tool.stdout.wait(timeout: 20) { line in
            guard let row = jsonObject(line), row["pid"] as? Int == pid, row["lport"] as? Int == lport else { return false }
            sums.tx += row["tx_bytes"] as? Int ?? 0
            sums.rx += row["rx_bytes"] as? Int ?? 0
            return sums.tx >= tx && sums.rx >= rx
        }
        return sums
    }

    /// Moves single bytes until tcptop shows the session: it is attached.
    private func sync(_ tool: Tool, _ session: TCPSession) {
        for _ in 0..<100 {
            session.move(send: 1, receive: 1)
            if tool.stdout.wait(timeout: 0.5, { $0.contains("\"pid\":\(session.pid),") }) != nil { return }
        }
        XCTFail("tcptop never showed the session; stderr: \(tool.stderr.all.joined(separator: " | "))")
    }

    private func assertExact(address: String, family: [String] = []) throws {
        let tool = try Tool(["tcptop", "--json"] + family + ["0.2"])
        sync(tool, try TCPSession(address))
        // A connection made once tcptop is attached: every byte it moves is counted.
        let session = try TCPSession(address)
        session.move(send: 123_457, receive: 54_321)
        session.move(send: 1, receive: 70_000)
        let client = waitForTotals(tool, pid: session.pid, lport: session.clientPort, tx: session.sent, rx: session.received)
        XCTAssertEqual(client.tx, session.sent, "bytes sent by the client")
        XCTAssertEqual(client.rx, session.received, "bytes received by the client")
        let server = waitForTotals(tool, pid: session.pid, lport: session.serverPort, tx: session.received, rx: session.sent)
        XCTAssertEqual(server.tx, session.received, "bytes sent by the server side")
        XCTAssertEqual(server.rx, session.sent, "bytes received by the server side")
        tool.stop()
        let final = totals(tool.stdout.all, pid: session.pid, lport: session.clientPort)
        XCTAssertEqual(final.tx, session.sent, "more bytes were counted later")
        XCTAssertEqual(final.rx, session.received)
    }

    func testExactBytesIPv4() throws { try assertExact(address: "127.0.0.1") }

    func testExactBytesIPv6() throws { try assertExact(address: "::1", family: ["-6"]) }

    func testRowShape() throws {
        let tool = try Tool(["tcptop", "--json", "0.2"])
        let session = try TCPSession("127.0.0.1")
        sync(tool, session)
        let row = try XCTUnwrap(tool.stdout.all.compactMap(jsonObject).first { $0["pid"] as? Int == session.pid })
        XCTAssertEqual(row["comm"] as? String, "testhelper")
        XCTAssertEqual(row["ip"] as? Int, 4)
        XCTAssertEqual(row["laddr"] as? String, "127.0.0.1")
        XCTAssertEqual(row["raddr"] as? String, "127.0.0.1")
        let ports = Set([row["lport"] as? Int, row["rport"] as? Int])
        XCTAssertEqual(ports, Set([session.clientPort, session.serverPort]))
        tool.stop()
    }

    func testPidFilter() throws {
        let chosen = try TCPSession("127.0.0.1"), other = try TCPSession("127.0.0.1")
        let tool = try Tool(["tcptop", "--json", "-p", String(chosen.pid), "0.2"])
        sync(tool, chosen)
        other.move(send: 5000, receive: 5000)
        chosen.move(send: 7000, receive: 0)
        let sums = waitForTotals(tool, pid: chosen.pid, lport: chosen.clientPort, tx: 7000, rx: 0)
        XCTAssertGreaterThanOrEqual(sums.tx, 7000)
        XCTAssertFalse(tool.stdout.all.contains { $0.contains("\"pid\":\(other.pid),") }, "-p showed another process")
        tool.stop()
    }

    func testFamilyFilter() throws {
        let v4 = try TCPSession("127.0.0.1"), v6 = try TCPSession("::1")
        let tool = try Tool(["tcptop", "--json", "-4", "0.2"])
        sync(tool, v4)
        v6.move(send: 3000, receive: 3000)
        v4.move(send: 3000, receive: 0)
        XCTAssertGreaterThanOrEqual(waitForTotals(tool, pid: v4.pid, lport: v4.clientPort, tx: 3000, rx: 0).tx, 3000)
        XCTAssertFalse(tool.stdout.all.contains { $0.contains("\"pid\":\(v6.pid),") }, "-4 showed IPv6 traffic")
        tool.stop()
    }

    func testSortAndRows() throws {
        let session = try TCPSession("127.0.0.1")
        for (key, expectedPort) in [("sent", session.clientPort), ("received", session.serverPort)] {
            let tool = try Tool(["tcptop", "--json", "-p", String(session.pid), "-s", key, "-r", "1", "0.2"])
            sync(tool, session)
            // Within one interval the client sends much and receives little.
            session.move(send: 500_000, receive: 10)
            let rows = tool.stdout.all.compactMap(jsonObject)
            var index = -1
            _ = tool.stdout.wait(timeout: 20) { line in
                index += 1
                guard index >= rows.count, let row = jsonObject(line) else { return false }
                return (row["tx_bytes"] as? Int ?? 0) + (row["rx_bytes"] as? Int ?? 0) > 100_000
            }
            let after = tool.stdout.all.compactMap(jsonObject).dropFirst(rows.count)
            let big = try XCTUnwrap(after.first { ($0["tx_bytes"] as? Int ?? 0) + ($0["rx_bytes"] as? Int ?? 0) > 100_000 })
            XCTAssertEqual(big["lport"] as? Int, expectedPort, "-s \(key) -r 1 kept the wrong row: \(after)")
            let times = Dictionary(grouping: after, by: { $0["time"] as? String ?? "" })
            XCTAssertTrue(times.values.allSatisfy { $0.count == 1 }, "-r 1 printed more than one row per interval")
            tool.stop()
        }
    }

    func testCountEndsTheRun() throws {
        // -4: one table per interval, whatever IPv6 traffic the machine has meanwhile.
        let tool = try Tool(["tcptop", "-C", "-4", "0.2", "3"])
        tool.process.waitUntilExit()
        XCTAssertEqual(tool.process.terminationStatus, 0)
        _ = tool.stdout.waitForEnd(timeout: 10)
        XCTAssertEqual(tool.stdout.all.filter { $0.contains("loadavg:") }.count, 3)
        XCTAssertEqual(tool.stdout.all.filter { $0.hasPrefix("PID") }.count, 3)
        XCTAssertFalse(tool.stdout.all.joined().contains("\u{1B}["), "cleared the screen on a pipe")
    }

    func testCgroupMapSelectsTheCgroup() throws {
        let cgroup = try TestCgroup()
        let map = try PinnedMap.cgroupMap()
        try map.add(cgroup.id, valueSize: 8)
        let inside = try Runner(setup: cgroup.joinScript), outside = try Runner()
        let tool = try Tool(["tcptop", "--json", "--cgroupmap", map.path, "0.2"])
        var insidePID = -1
        for _ in 0..<100 {
            insidePID = helperPID(inside.run([testHelperPath, "tcpio", "127.0.0.1", "100", "100"])) ?? -1
            if tool.stdout.wait(timeout: 0.5, { $0.contains("\"pid\":\(insidePID),") }) != nil { break }
        }
        let outsidePID = helperPID(outside.run([testHelperPath, "tcpio", "127.0.0.1", "9000", "9000"])) ?? -1
        let last = helperPID(inside.run([testHelperPath, "tcpio", "127.0.0.1", "100", "100"])) ?? -1
        let row = try XCTUnwrap(tool.stdout.wait(timeout: 20) { $0.contains("\"pid\":\(last),") }.flatMap(jsonObject))
        XCTAssertEqual(row["cgroup_id"] as? UInt64, cgroup.id)
        XCTAssertFalse(tool.stdout.all.contains { $0.contains("\"pid\":\(outsidePID),") }, "traffic outside the cgroup was shown")
        tool.stop()
    }

    func testBadInput() throws {
        for (arguments, text) in [(["0"], "interval: '0'"), (["1", "0"], "count"), (["-s", "bogus"], "-s/--sort"),
                                  (["-r", "0"], "-r/--rows")] {
            let result = try runCommand(bpfboxPath, ["tcptop"] + arguments)
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertTrue(result.stderrLines.last?.contains(text) ?? false, result.stderr)
        }
    }
}
