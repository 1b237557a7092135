import Foundation
import XCTest

/// Event storms, short enough for CI (bench/storm.sh runs the full size: 1,000,000 opens and
/// 100,000 execs): every generated event is either received or counted as lost, exactly.
final class StormTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    private struct Storm {
        let received: Int
        let lostStderr: Int
        let lostJSON: Int?
        let peakRSSKB: Int
        let generated: Int
    }

    /// A generator in its own cgroup, waiting; the tool (selecting that cgroup) attached; then
    /// `count` events as fast as the helper makes them, and the tool stopped (it drains the ring
    /// and counts the losses on the way out).
    private func storm(_ applet: String, kind: String, count: Int, arguments: [String] = []) throws -> Storm {
        let cgroup = try TestCgroup()
        let prefix = "/nonexistent/" + uniqueMarker("storm")
        let generator = Process()
        generator.executableURL = URL(fileURLWithPath: "/bin/sh")
        generator.arguments = ["-c", "\(cgroup.joinScript) && exec \"$0\" storm \(kind) \(prefix) \(count)", testHelperPath]
        let input = Pipe(), output = Pipe()
        generator.standardInput = input
        generator.standardOutput = output
        try generator.run()
        defer { if generator.isRunning { kill(generator.processIdentifier, SIGKILL) } }
        let generated = LineCollector(output.fileHandleForReading)
        XCTAssertNotNil(generated.wait(timeout: 20) { $0.hasPrefix("pid ") })

        let tool = try Tool([applet, "--cgroup", cgroup.path] + arguments)
        let runner = try Runner(setup: cgroup.joinScript)
        waitUntilTracing(tool, via: runner)
        input.fileHandleForWriting.write(Data("go\n".utf8))
        XCTAssertNotNil(generated.wait(timeout: 300) { $0.hasPrefix("result ") }, "the generator did not finish")
        XCTAssertTrue(generated.all.contains("result 0"), "\(generated.all)")
        let peak = residentKB(pid: tool.process.processIdentifier, field: "VmHWM") ?? 0
        XCTAssertEqual(tool.stop(), 0)
        let marker = prefix + "-"
        let received = tool.stdout.all.reduce(0) { $0 + ($1.contains(marker) ? 1 : 0) }
        let lostStderr = tool.stderr.all.compactMap { line -> Int? in
            guard let open = line.range(of: " events lost ("), let end = line.range(of: " in all)") else { return nil }
            return Int(line[open.upperBound..<end.lowerBound])
        }.last ?? 0
        let lostJSON = tool.stdout.all.compactMap { $0.hasPrefix("{\"lost_events\"") ? jsonObject($0)?["lost_events_total"] as? Int : nil }.last
        let result = Storm(received: received, lostStderr: lostStderr, lostJSON: lostJSON, peakRSSKB: peak, generated: count)
        print("storm \(applet) \(arguments.joined(separator: " ")): \(count) generated, \(received) received, \(lostStderr) lost, peak RSS \(peak) KB")
        return result
    }

    func testOpenStormDefaultRingCountsEveryLoss() throws {
        let result = try storm("opensnoop", kind: "opens", count: 200_000, arguments: ["--json"])
        XCTAssertEqual(result.received + result.lostStderr, result.generated, "received + lost != generated")
        XCTAssertEqual(result.lostJSON ?? 0, result.lostStderr, "JSON and stderr disagree on the losses")
        if result.lostStderr > 0 { XCTAssertNotNil(result.lostJSON, "losses not reported in JSON") }
        XCTAssertLessThan(result.peakRSSKB, 256 * 1024, "memory grows with the storm")
    }

    func testOpenStormLargeRingLosesNothing() throws {
        // 200,000 events of about 170 bytes fit in 64 MiB even if the reader never ran.
        let result = try storm("opensnoop", kind: "opens", count: 200_000, arguments: ["--ringbuf-kb", "65536"])
        XCTAssertEqual(result.lostStderr, 0)
        XCTAssertEqual(result.received, result.generated)
    }

    func testExecStormCountsEveryLoss() throws {
        let result = try storm("execsnoop", kind: "execs", count: 2_000, arguments: ["--json"])
        XCTAssertEqual(result.received + result.lostStderr, result.generated, "received + lost != generated")
        XCTAssertEqual(result.lostJSON ?? 0, result.lostStderr)
    }
}
