@preconcurrency import Glibc
import MetricsServer
import Prometheus
import XCTest

/// The /metrics endpoint over loopback, spoken to with raw requests: what a scraper gets, and
/// what a confused or stalled client gets.
final class MetricsServerTests: XCTestCase {
    private func exchange(_ server: MetricsServer, _ request: String, close: Bool = false) throws -> String {
        let port = UInt16(server.boundAddress.split(separator: ":").last!)!
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
        if close { shutdown(fd, Int32(SHUT_WR)) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk.prefix(n)
        }
        return String(decoding: response, as: UTF8.self)
    }

    func testServesTheRegistryAndClosesEachConnection() throws {
        let registry = PrometheusCollectorRegistry()
        let counter = registry.makeCounter(descriptor: metricName("bpfbox_test_events_total", help: "test"), labels: [("comm", "a\"b")])
        counter.increment(by: Int64(7))
        let server = try MetricsServer(listen: "127.0.0.1:0", registry: registry)
        defer { server.close() }
        XCTAssertTrue(server.boundAddress.hasPrefix("127.0.0.1:"), server.boundAddress)
        XCTAssertFalse(server.boundAddress.hasSuffix(":0"), "the port chosen by the kernel is reported")

        let ok = try exchange(server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), ok)
        XCTAssertTrue(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), ok)
        XCTAssertTrue(ok.contains("Connection: close\r\n"), ok)
        XCTAssertTrue(ok.contains(#"bpfbox_test_events_total{comm="a\"b"} 7"#), ok)
        let body = ok.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        XCTAssertTrue(ok.contains("Content-Length: \(body.utf8.count)\r\n"), "Content-Length matches the body")

        counter.increment(by: Int64(1))
        XCTAssertTrue(try exchange(server, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").contains(#"} 8"#), "a query string is ignored; HTTP/1.0 works")

        let head = try exchange(server, "HEAD /metrics HTTP/1.1\r\n\r\n")
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n"), "HEAD has no body: \(head)")

        XCTAssertTrue(try exchange(server, "GET / HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let post = try exchange(server, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        XCTAssertTrue(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("Allow: GET, HEAD\r\n"), post)
        XCTAssertTrue(try exchange(server, "hello\r\n\r\n").hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        // A client that sends half a request and goes away gets nothing, and the server goes on.
        XCTAssertEqual(try exchange(server, "GET /metr", close: true), "")
        XCTAssertTrue(try exchange(server, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200 OK"))
    }

    func testRefusesAnAddressInUseInOneLine() throws {
        let first = try MetricsServer(listen: "127.0.0.1:0", registry: PrometheusCollectorRegistry())
        defer { first.close() }
        XCTAssertThrowsError(try MetricsServer(listen: first.boundAddress, registry: PrometheusCollectorRegistry())) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot listen there") && text.contains("Address already in use") && !text.contains("\n"), text)
        }
        XCTAssertThrowsError(try MetricsServer(listen: "no-such-host.invalid:9464", registry: PrometheusCollectorRegistry()))
    }

    func testIPv6Loopback() throws {
        guard let server = try? MetricsServer(listen: "[::1]:0", registry: PrometheusCollectorRegistry()) else {
            throw XCTSkip("no IPv6 loopback here")
        }
        defer { server.close() }
        XCTAssertTrue(server.boundAddress.hasPrefix("[::1]:"), server.boundAddress)
    }
}
