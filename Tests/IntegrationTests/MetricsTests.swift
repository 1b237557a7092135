import Foundation
import XCTest

/// --metrics: /metrics scraped over loopback while the applets count known traffic, and read back
/// with the Prometheus project's own text parser (prometheus_client, from PyPI).
final class MetricsTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
        let probe = try runCommand("/usr/bin/env", ["python3", "-c", "import prometheus_client"])
        if probe.status != 0 {
            let reason = "needs python3 with prometheus_client (pip install prometheus_client)"
            if ProcessInfo.processInfo.environment["BPFBOX_REQUIRE_PRIVILEGED"] == "1" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
    }

    /// Fetches `url` and parses it with prometheus_client: one (name, labels, value) per sample.
    private static let scraper = """
        import json, sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
            kind = response.headers.get("Content-Type", "")
            text = response.read().decode()
        samples = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples]
        print(json.dumps({"content_type": kind, "samples": samples}))
        """

    private struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    private func scrape(_ url: String) throws -> (contentType: String, samples: [Sample]) {
        let result = try runCommand("/usr/bin/env", ["python3", "-c", Self.scraper, url])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(jsonObject(result.stdout), result.stdout + result.stderr)
        let samples = (object["samples"] as? [[Any]] ?? []).compactMap { row -> Sample? in
            guard row.count == 3, let name = row[0] as? String, let labels = row[1] as? [String: String],
                  let value = (row[2] as? NSNumber)?.doubleValue else { return nil }
            return Sample(name: name, labels: labels, value: value)
        }
        return (object["content_type"] as? String ?? "", samples)
    }

    /// Starts `arguments` with `--metrics 127.0.0.1:0 --quiet` and returns the tool and its URL.
    private func start(_ arguments: [String]) throws -> (Tool, String) {
        let tool = try Tool(arguments + ["--metrics", "127.0.0.1:0", "--quiet"])
        let line = try XCTUnwrap(tool.stderr.wait(timeout: 30) { $0.contains("metrics at http://") }, "\(tool.stderr.all)")
        let url = String(line[line.range(of: "http://")!.lowerBound...])
        return (tool, url)
    }

    /// Scrapes until `ready` holds for the samples (the applets publish once per interval).
    private func scrape(_ url: String, until ready: ([Sample]) -> Bool) throws -> [Sample] {
        var samples: [Sample] = []
        for _ in 0..<100 {
            samples = try scrape(url).samples
            if ready(samples) { return samples }
            usleep(100_000)
        }
        XCTFail("the expected samples never showed: \(samples.map { "\($0.name)\($0.labels)=\($0.value)" })")
        return samples
    }

    func testSkbCountCountsKnownTrafficPerCgroup() throws {
        let sender = try TestCgroup(), receiver = try TestCgroup()
        let (tool, url) = try start(["skbcount", "-c", sender.path, "-c", receiver.path, "0.1"])
        let (contentType, _) = try scrape(url)
        XCTAssertTrue(contentType.hasPrefix("text/plain; version=0.0.4"), contentType)
        let result = try runCommand(testHelperPath, ["udp", receiver.path, sender.path, "7", "100"])
        XCTAssertTrue(result.stdout.contains("result 0"), result.stdout)
        let senderPath = "/" + URL(fileURLWithPath: sender.path).lastPathComponent
        let samples = try scrape(url) { samples in
            samples.contains { $0.name == "bpfbox_cgroup_tx_packets_total" && $0.labels["cgroup"] == senderPath && $0.value >= 7 }
        }
        func value(_ name: String, _ cgroup: String) -> Double? {
            samples.first { $0.name == name && $0.labels["cgroup"] == cgroup }?.value
        }
        XCTAssertEqual(value("bpfbox_cgroup_tx_packets_total", senderPath), 7)
        XCTAssertEqual(value("bpfbox_cgroup_tx_bytes_total", senderPath), 7 * (100 + 28))
        XCTAssertTrue(tool.stdout.all.isEmpty, "--quiet printed: \(tool.stdout.all)")
        XCTAssertEqual(tool.stop(), 0)
    }

    func testTcpTopCountsKnownBytesPerConnection() throws {
        let (tool, url) = try start(["tcptop", "0.1"])
        let lines = try runCommand(testHelperPath, ["tcpio", "127.0.0.1", "12345", "54321"]).stdout.split(separator: "\n").map(String.init)
        let lport = try XCTUnwrap(helperValue(lines, "lport"))
        let samples = try scrape(url) { samples in
            samples.contains { $0.name == "bpfbox_tcp_received_bytes_total" && $0.labels["lport"] == String(lport) && $0.value >= 54321 }
        }
        let client = samples.filter { $0.labels["lport"] == String(lport) }
        XCTAssertEqual(client.first { $0.name == "bpfbox_tcp_sent_bytes_total" }?.value, 12345)
        XCTAssertEqual(client.first { $0.name == "bpfbox_tcp_received_bytes_total" }?.value, 54321)
        XCTAssertEqual(client.first?.labels["comm"], "testhelper")
        XCTAssertEqual(client.first?.labels["raddr"], "127.0.0.1")
        XCTAssertEqual(tool.stop(), 0)
    }

    func testSeriesBeyondTheLimitAreDroppedAndCounted() throws {
        let tool = try Tool(["tcptop", "--metrics", "127.0.0.1:0", "--metrics-max-series", "1", "--quiet", "0.1"])
        let line = try XCTUnwrap(tool.stderr.wait(timeout: 30) { $0.contains("metrics at http://") })
        let url = String(line[line.range(of: "http://")!.lowerBound...])
        for size in ["100", "200", "300"] { _ = try runCommand(testHelperPath, ["tcpio", "127.0.0.1", size, "1"]) }
        let samples = try scrape(url) { samples in
            samples.contains { $0.name == "bpfbox_metrics_series_dropped_total" && $0.labels["metric"] == "bpfbox_tcp_sent_bytes_total" && $0.value >= 1 }
        }
        XCTAssertLessThanOrEqual(samples.filter { $0.name == "bpfbox_tcp_sent_bytes_total" }.count, 1)
        XCTAssertEqual(tool.stop(), 0)
    }

    func testEventAppletsCountChecksAndConnects() throws {
        let (capable, capableURL) = try start(["capable"])
        let (connects, connectsURL) = try start(["tcpconnect"])
        let listener = try Listener("127.0.0.1")
        let raw = try runCommand(testHelperPath, ["rawsock", "3"])
        XCTAssertTrue(raw.stdout.contains("result"), raw.stdout)
        let connect = try runCommand(testHelperPath, ["connect", "127.0.0.1", String(listener.port)])
        XCTAssertTrue(connect.stdout.contains("result 0"), connect.stdout)
        let checks = try scrape(capableURL) { samples in
            samples.contains { $0.name == "bpfbox_capability_checks_total" && $0.labels["comm"] == "testhelper"
                && $0.labels["cap"] == "CAP_NET_RAW" && $0.value >= 3 }
        }
        XCTAssertEqual(checks.first { $0.labels["comm"] == "testhelper" && $0.labels["cap"] == "CAP_NET_RAW" }?.labels["verdict"], "allow")
        let made = try scrape(connectsURL) { samples in
            samples.contains { $0.name == "bpfbox_tcp_connects_total" && $0.labels["dport"] == String(listener.port) }
        }
        let row = try XCTUnwrap(made.first { $0.name == "bpfbox_tcp_connects_total" && $0.labels["dport"] == String(listener.port) })
        XCTAssertEqual(row.value, 1)
        XCTAssertEqual(row.labels["daddr"], "127.0.0.1")
        XCTAssertEqual(row.labels["comm"], "testhelper")
        XCTAssertEqual(capable.stop(), 0)
        XCTAssertEqual(connects.stop(), 0)
    }

    func testBadMetricsOptions() throws {
        for (arguments, message, status) in [
            (["tcptop", "--metrics", "nonsense"], "is not ADDR:PORT", Int32(2)),
            (["skbcount", "--quiet"], "go with --metrics", 2),
            (["tcptop", "--metrics", "192.0.2.1:9464"], "cannot listen there", 1),
        ] {
            let result = try runCommand(bpfboxPath, arguments)
            XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderrLines.last?.contains(message) ?? false, "\(arguments): \(result.stderr)")
        }
    }
}
