import MetricsServer
import Prometheus

/// --metrics, --metrics-max-series, --quiet: the counting applets' Prometheus endpoint.
public struct MetricsOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec(nil, "metrics", value: "ADDR:PORT", help: "serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9464, :9464)"),
        OptionSpec(nil, "metrics-max-series", value: "N", help: "at most N series per metric; the smallest are dropped and counted (default 1000)"),
        OptionSpec(nil, "quiet", help: "with --metrics, print nothing but errors"),
    ]

    public var listen: String?
    public var maxSeries = 1000
    public var quiet = false

    public init(_ parsed: ParsedOptions) throws(UsageError) {
        listen = parsed.value("metrics")
        quiet = parsed.has("quiet")
        if let text = parsed.value("metrics-max-series") {
            maxSeries = try ParseValue.positiveInt(text, option: "--metrics-max-series", max: 1_000_000)
        }
        if let listen {
            do throws(MetricsError) { _ = try MetricsServer.parse(listen) } catch { throw UsageError(error.description) }
        }
        if listen == nil && (quiet || parsed.has("metrics-max-series")) {
            throw UsageError("--quiet and --metrics-max-series go with --metrics ADDR:PORT")
        }
    }
}

/// The endpoint of a run and the metrics an applet keeps in it.
final class AppletMetrics {
    let server: MetricsServer
    let registry = PrometheusCollectorRegistry()
    let maxSeries: Int

    /// Starts serving when --metrics was given (and says where on stderr); the endpoint lives
    /// as long as `tracer`.
    static func start(_ options: MetricsOptions, applet: String, tracer: Tracer) throws -> AppletMetrics? {
        guard let listen = options.listen else { return nil }
        let metrics = try AppletMetrics(listen: listen, maxSeries: options.maxSeries, applet: applet)
        tracer.keep(metrics)
        return metrics
    }

    private init(listen: String, maxSeries: Int, applet: String) throws {
        do { server = try MetricsServer(listen: listen, registry: registry) } catch { throw RuntimeFailure(error.description) }
        self.maxSeries = maxSeries
        printError("\(applet): metrics at http://\(server.boundAddress)/metrics")
    }

    func counter(_ name: String, help: String, labels: [String]) -> CounterSeries {
        CounterSeries(registry, name: name, help: help, labels: labels, limit: maxSeries)
    }

    deinit { server.close() }
}
