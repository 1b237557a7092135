@preconcurrency import Glibc
import Prometheus

/// A problem with --metrics, said in one line.
public struct MetricsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `/metrics` over HTTP/1.x (Prometheus text format 0.0.4), served on one thread of its own
/// beside the applet's loop: a scrape is one short request, answered and closed (a scraper
/// opens a connection per scrape when told `Connection: close`). Other paths answer 404, other
/// methods 405, a request that is not HTTP 400; a client that stalls is dropped after 5 s.
public final class MetricsServer: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    /// What the socket is bound to ("127.0.0.1:9464").
    public let boundAddress: String
    private let listener: Int32
    private let wake: (read: Int32, write: Int32)
    private var thread = pthread_t()
    private var running = false

    /// Listens on `spec`: "ADDR:PORT", "[IPV6]:PORT" or ":PORT" (all addresses); port 0 picks one.
    public init(listen spec: String, registry: PrometheusCollectorRegistry) throws(MetricsError) {
        let (host, port) = try MetricsServer.parse(spec)
        self.registry = registry
        func failure(_ why: String) -> MetricsError {
            MetricsError("--metrics \(spec): cannot listen there (\(why)); give a free ADDR:PORT such as 127.0.0.1:9464")
        }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let address = found else { throw failure(String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(found) }
        let fd = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure(String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0, listen(fd, 64) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw failure(why)
        }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            Glibc.close(fd)
            throw failure(String(cString: strerror(errno)))
        }
        for pipeFD in pipeFDs { _ = fcntl(pipeFD, F_SETFD, FD_CLOEXEC) }
        listener = fd
        wake = (pipeFDs[0], pipeFDs[1])
        boundAddress = MetricsServer.localAddress(fd) ?? "\(host):\(port)"
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<MetricsServer>.fromOpaque(raw!).takeUnretainedValue().serve()
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
        guard started == 0 else {
            Glibc.close(fd)
            Glibc.close(wake.read)
            Glibc.close(wake.write)
            throw failure(String(cString: strerror(started)))
        }
        running = true
    }

    /// The host and port of an ADDR:PORT.
    public static func parse(_ spec: String) throws(MetricsError) -> (String, Int) {
        guard let colon = spec.lastIndex(of: ":"), let port = Int(spec[spec.index(after: colon)...]), (0...65535).contains(port) else {
            throw MetricsError("--metrics: '\(spec)' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or :9464)")
        }
        var host = String(spec[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// Stops serving (a scrape under way is finished first) and closes the socket.
    public func close() {
        guard running else { return }
        running = false
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        pthread_join(thread, nil)
        Glibc.close(listener)
        Glibc.close(wake.read)
        Glibc.close(wake.write)
    }

    deinit { close() }

    private func serve() {
        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            guard poll(&fds, 2, -1) >= 0 || errno == EINTR else { return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            answer(connection)
            Glibc.close(connection)
        }
    }

    /// Reads one request head and answers it.
    private func answer(_ connection: Int32) {
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while !request.contains(subsequence: end) {
            guard request.count < 16 * 1024 else { respond(connection, status: "431 Request Header Fields Too Large", version: "HTTP/1.1"); return }
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return } // closed or timed out
            request += chunk.prefix(n)
        }
        let line = request.split(separator: UInt8(ascii: "\r"), maxSplits: 1).first ?? []
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == 3, parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0", !parts[0].isEmpty, parts[1].hasPrefix("/") else {
            respond(connection, status: "400 Bad Request", version: "HTTP/1.1")
            return
        }
        let (method, target, version) = (parts[0], parts[1], parts[2])
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        guard path == "/metrics" else {
            respond(connection, status: "404 Not Found", version: version, body: Array("not found: metrics are at /metrics\n".utf8),
                    omitBody: method == "HEAD")
            return
        }
        guard method == "GET" || method == "HEAD" else {
            respond(connection, status: "405 Method Not Allowed", version: version, extra: "Allow: GET, HEAD\r\n")
            return
        }
        respond(connection, status: "200 OK", version: version, body: registry.emitToBuffer(),
                contentType: "text/plain; version=0.0.4; charset=utf-8", omitBody: method == "HEAD")
    }

    private func respond(_ connection: Int32, status: String, version: String, body: [UInt8] = [],
                         contentType: String = "text/plain; charset=utf-8", extra: String = "", omitBody: Bool = false) {
        var message = Array("\(version) \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n".utf8)
        if !omitBody { message += body }
        var offset = 0
        while offset < message.count {
            let n = message.withUnsafeBytes { send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// "ADDR:PORT" of a bound socket ("[ADDR]:PORT" for IPv6).
    private static func localAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard got == 0 else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let named = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard named == 0 else { return nil }
        func text(_ chars: [CChar]) -> String { String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        let ip = text(host)
        return (ip.contains(":") ? "[\(ip)]" : ip) + ":" + text(service)
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard count >= subsequence.count else { return false }
        for start in 0...(count - subsequence.count) where self[start..<(start + subsequence.count)].elementsEqual(subsequence) {
            return true
        }
        return false
    }
}

/// Counters of one metric keyed by their label values, at most `limit` series: when a new series
/// would pass the limit, the series with the smallest value is dropped (unregistered) and the
/// drop is counted in `bpfbox_metrics_series_dropped_total{metric=...}`.
public final class CounterSeries {
    public let name: String
    let help: String
    let labelNames: [String]
    let limit: Int
    let registry: PrometheusCollectorRegistry
    private var series: [[String]: (counter: Counter, value: Int64)] = [:]
    private let dropped: Counter

    public init(_ registry: PrometheusCollectorRegistry, name: String, help: String, labels: [String], limit: Int) {
        self.registry = registry
        self.name = name
        self.help = help
        labelNames = labels
        self.limit = max(1, limit)
        dropped = registry.makeCounter(descriptor: metricName("bpfbox_metrics_series_dropped_total",
                                                              help: "Series dropped (the smallest first) to stay within --metrics-max-series"),
                                       labels: [("metric", name)])
    }

    public var count: Int { series.count }

    /// Adds `amount` to the series with these label values (in the order of `labels`).
    public func add(_ values: [String], _ amount: Int64) {
        guard amount > 0 || series[values] == nil else { return }
        if var entry = series[values] {
            entry.counter.increment(by: amount)
            entry.value += amount
            series[values] = entry
            return
        }
        if series.count >= limit, let smallest = series.min(by: { $0.value.value < $1.value.value }) {
            registry.unregisterCounter(smallest.value.counter)
            series[smallest.key] = nil
            dropped.increment()
        }
        let counter = registry.makeCounter(descriptor: metricName(name, help: help), labels: Array(zip(labelNames, values)))
        counter.increment(by: amount)
        series[values] = (counter, amount)
    }
}

/// The descriptor of a metric named in full: a counter's `_total` is its unit.
public func metricName(_ name: String, help: String) -> MetricNameDescriptor {
    name.hasSuffix("_total")
        ? MetricNameDescriptor(metricName: String(name.dropLast(6)), unitName: "total", helpText: help)
        : MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
