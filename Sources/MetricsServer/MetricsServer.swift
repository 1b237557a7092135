import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// A problem with --metrics, said in one line.
public struct MetricsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `/metrics` over HTTP (Prometheus text format 0.0.4), served by SwiftNIO on one thread beside
/// the applet's own loop. Everything else answers 404.
public final class MetricsServer: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// What the socket is bound to ("127.0.0.1:9464").
    public let boundAddress: String
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// Listens on `spec`: "ADDR:PORT", "[IPV6]:PORT" or ":PORT" (all addresses); port 0 picks one.
    public init(listen spec: String, registry: PrometheusCollectorRegistry) throws(MetricsError) {
        let (host, port) = try MetricsServer.parse(spec)
        self.registry = registry
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(MetricsHandler(registry: registry))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsError("--metrics \(spec): cannot listen there (\(error)); give a free ADDR:PORT such as 127.0.0.1:9464")
        }
        self.group = group
        let address = channel.localAddress
        let ip = address?.ipAddress ?? host
        boundAddress = (ip.contains(":") ? "[\(ip)]" : ip) + ":\(address?.port ?? port)"
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

    public func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

private final class MetricsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let found = path == "/metrics" && (request.method == .GET || request.method == .HEAD)
        let body = found ? registry.emitToBuffer() : Array("not found: metrics are at /metrics\n".utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: request.version, status: found ? .ok : .notFound, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
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
