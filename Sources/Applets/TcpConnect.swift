@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter
import MetricsServer

/// tcpconnect: trace active TCP connects, as bcc's tcpconnect, one line per attempt once its
/// outcome is known.
public enum TcpConnect {
    public static let spec = CommandSpec(
        name: "tcpconnect",
        summary: "Trace TCP active connects (connect()), IPv4 and IPv6.",
        options: [
            OptionSpec("t", "timestamp", help: "include a timestamp column (seconds since start)"),
            OptionSpec("p", "pid", value: "PID", help: "trace this PID only"),
            OptionSpec("P", "port", value: "PORTS", help: "only these destination ports (comma-separated list)"),
            OptionSpec("4", "ipv4", help: "trace IPv4 only"),
            OptionSpec("6", "ipv6", help: "trace IPv6 only"),
            OptionSpec("L", "lport", help: "include an LPORT (local port) column"),
            OptionSpec("U", "print-uid", help: "include a UID column"),
            OptionSpec("u", "uid", value: "UID", help: "trace this UID or user name only"),
            OptionSpec("c", "count", help: "count connects per source, destination and port; print them at the end"),
            OptionSpec(nil, "latency", help: "add the connect latency and the outcome (established, refused, ...)"),
        ] + TracingOptions.specs + MetricsOptions.specs,
        examples: [
            ("tcpconnect", "trace all TCP connects"),
            ("tcpconnect -t", "with a timestamp column"),
            ("tcpconnect -p 181", "only PID 181"),
            ("tcpconnect -P 80,81", "only ports 80 and 81"),
            ("tcpconnect -4", "only IPv4"),
            ("tcpconnect -L", "with the local port"),
            ("tcpconnect -U -u 1000", "only UID 1000, with a UID column"),
            ("tcpconnect -c", "count connects per destination"),
            ("tcpconnect --latency", "with latency and outcome"),
            ("tcpconnect --cgroupmap /sys/fs/bpf/set", "only cgroups in this map"),
        ]
    )

    static let outcomes = ["established", "refused", "timed_out", "reset", "closed"]

    public struct Config {
        public var timestamp = false
        public var pid: UInt32?
        public var ports: [UInt16] = []
        public var family: UInt16 = 0
        public var lport = false
        public var printUID = false
        public var uid: UInt32?
        public var count = false
        public var latency = false
        public var tracing: TracingOptions
        public var metrics: MetricsOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            guard parsed.positionals.isEmpty else { throw UsageError("unexpected argument '\(parsed.positionals[0])'") }
            timestamp = parsed.has("timestamp")
            if let text = parsed.value("pid") { pid = try ParseValue.pid(text, option: "-p/--pid") }
            for text in parsed.all("port") {
                for port in try PortList.parse(text, option: "-P/--port", max: Int(TCPCONNECT_MAX_PORTS)) where !ports.contains(port) {
                    ports.append(port)
                }
            }
            guard ports.count <= Int(TCPCONNECT_MAX_PORTS) else { throw UsageError("-P/--port: at most \(TCPCONNECT_MAX_PORTS) ports") }
            family = try ParseValue.family(parsed)
            lport = parsed.has("lport")
            printUID = parsed.has("print-uid")
            if let text = parsed.value("uid") { uid = try Users.uid(text, option: "-u/--uid") }
            count = parsed.has("count")
            latency = parsed.has("latency")
            tracing = try TracingOptions(parsed)
            metrics = try MetricsOptions(parsed)
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("tcpconnect", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let filter = TaskFilter(pid: config.pid, uid: config.uid, cgroupMapPath: config.tracing.cgroupMap,
                                    mntnsMapPath: config.tracing.mntnsMap)
            let tracer = try Tracer(.tcpconnect, filter: filter, options: config.tracing) { object in
                var cfg = tcpconnect_config()
                cfg.nports = UInt32(config.ports.count)
                withUnsafeMutableBytes(of: &cfg.ports) { raw in
                    for (i, port) in config.ports.enumerated() { raw.storeBytes(of: port, toByteOffset: i * 2, as: UInt16.self) }
                }
                cfg.family = config.family
                try object.setConstant("tcpconnect_cfg", cfg)
            }
            tracer.lostExplanation = "the ring buffer or the table of connects in flight (16384) is full; a larger --ringbuf-kb or a narrower filter (-P, -p, a cgroup map) helps"
            let output = Output()
            let renderer = Renderer(config: config, clock: tracer, containers: config.tracing.showContainers ? .host() : nil)
            var counts: [CountKey: Int] = [:]
            let metrics = try AppletMetrics.start(config.metrics, applet: "tcpconnect", tracer: tracer)
            let connects = metrics?.counter("bpfbox_tcp_connects_total", help: "active TCP connects by command, destination and outcome",
                                            labels: ["comm", "daddr", "dport", "outcome"] + (renderer.containers == nil ? [] : ["container"]))
            let quiet = config.metrics.quiet
            if !config.tracing.json && !quiet {
                output.line(config.count ? "Tracing connects... Hit Ctrl-C to end" : renderer.table.header)
            }
            output.flush()
            try tracer.onEvent { raw in
                guard let event = Event(raw) else { return }
                if let connects {
                    var labels = [String(decoding: event.task.comm, as: UTF8.self), event.destination, String(event.dport), event.outcomeName]
                    if let containers = renderer.containers { labels.append(containers.shortName(event.task.cgroupID) ?? "") }
                    connects.add(labels, 1)
                }
                if quiet { return }
                if config.count {
                    counts[CountKey(event), default: 0] += 1
                } else {
                    output.line(config.tracing.json ? renderer.json(event) : renderer.table.row(event))
                }
            }
            let status = try tracer.run(applet: "tcpconnect", output: output, json: config.tracing.json)
            if config.count && !quiet {
                for line in renderer.countLines(counts) { output.line(line) }
                output.flush()
            }
            return status
        }
    }

    public struct Event: Equatable {
        public var task: TaskInfo
        public var latencyNs: UInt64
        public var saddr: [UInt8]
        public var daddr: [UInt8]
        public var family: UInt16
        public var sport: UInt16
        public var dport: UInt16
        public var outcome: UInt16
        public var error: Int32

        public init(task: TaskInfo, family: UInt16, saddr: [UInt8], daddr: [UInt8], sport: UInt16, dport: UInt16,
                    outcome: UInt16 = 0, error: Int32 = 0, latencyNs: UInt64 = 0) {
            self.task = task
            self.family = family
            self.saddr = saddr
            self.daddr = daddr
            self.sport = sport
            self.dport = dport
            self.outcome = outcome
            self.error = error
            self.latencyNs = latencyNs
        }

        public init?(_ raw: UnsafeRawBufferPointer) {
            guard raw.count >= MemoryLayout<tcpconnect_event>.size else { return nil }
            func field<T: BitwiseCopyable>(_ path: KeyPath<tcpconnect_event, T>) -> T {
                raw.loadUnaligned(fromByteOffset: MemoryLayout<tcpconnect_event>.offset(of: path)!, as: T.self)
            }
            func bytes(_ path: PartialKeyPath<tcpconnect_event>) -> [UInt8] {
                let offset = MemoryLayout<tcpconnect_event>.offset(of: path)!
                return Array(raw[offset..<(offset + 16)])
            }
            task = TaskInfo(raw, at: MemoryLayout<tcpconnect_event>.offset(of: \tcpconnect_event.task)!)
            latencyNs = field(\.latency_ns)
            saddr = bytes(\tcpconnect_event.saddr)
            daddr = bytes(\tcpconnect_event.daddr)
            family = field(\.family)
            sport = field(\.sport)
            dport = field(\.dport)
            outcome = field(\.outcome)
            error = field(\.error)
        }

        public var ipVersion: Int { NetAddress.version(family: family, bytes: daddr) }
        public var source: String { NetAddress.text(family: family, bytes: saddr) }
        public var destination: String { NetAddress.text(family: family, bytes: daddr) }
        public var outcomeName: String { Int(outcome) < TcpConnect.outcomes.count ? TcpConnect.outcomes[Int(outcome)] : "unknown" }
    }

    struct CountKey: Hashable {
        let source: String, destination: String, port: UInt16, version: Int
        init(_ e: Event) {
            source = e.source
            destination = e.destination
            port = e.dport
            version = e.ipVersion
        }
    }

    public struct Renderer {
        public let config: Config
        let clock: EventClock?
        let containers: ContainerLabels<UInt64>?
        public let table: Table<Event>

        public init(config: Config, clock: EventClock?, containers: ContainerLabels<UInt64>? = nil) {
            self.config = config
            self.clock = clock
            self.containers = containers
            var columns: [Column<Event>] = []
            if config.timestamp { columns.append(TaskColumns.seconds(clock, width: 9) { $0.task }) }
            if let containers { columns.append(containers.column { $0.task.cgroupID }) }
            if config.printUID { columns.append(TaskColumns.uid { $0.task }) }
            columns += [
                Column("PID", width: 7) { String($0.task.pid) },
                Column("COMM", width: 12) { Escape.terminal($0.task.comm.prefix(12)) },
                Column("IP", width: 2) { String($0.ipVersion) },
                Column("SADDR", width: 16) { $0.source },
            ]
            if config.lport { columns.append(Column("LPORT", width: 6) { String($0.sport) }) }
            columns.append(Column("DADDR", width: 16) { $0.destination })
            if config.latency {
                columns.append(Column("DPORT", width: 5) { String($0.dport) })
                columns.append(Column("LAT(ms)", width: 8, .right) { formatFixed(Double($0.latencyNs) / 1e6, decimals: 3) })
                columns.append(Column("RESULT", width: 0) { $0.outcomeName })
            } else {
                columns.append(Column("DPORT", width: 0) { String($0.dport) })
            }
            table = Table(columns)
        }

        public func json(_ e: Event) -> String {
            var j = JSONLine()
            e.task.addIdentity(to: &j, clock: clock)
            j.add("ip", e.ipVersion)
            j.add("saddr", e.source)
            j.add("sport", e.sport)
            j.add("daddr", e.destination)
            j.add("dport", e.dport)
            j.add("outcome", e.outcomeName)
            j.add("error", e.error > 0 ? ErrnoName.name(e.error) : nil)
            j.add("latency_ms", Double(e.latencyNs) / 1e6)
            e.task.addPlace(to: &j, containers: containers)
            return j.line
        }

        /// -c: the counts, most connects first.
        func countLines(_ counts: [CountKey: Int]) -> [String] {
            let sorted = counts.sorted {
                ($1.value, $0.key.destination, $0.key.port, $0.key.source) < ($0.value, $1.key.destination, $1.key.port, $1.key.source)
            }
            if config.tracing.json {
                return sorted.map { key, value in
                    var j = JSONLine()
                    j.add("ip", key.version)
                    j.add("saddr", key.source)
                    j.add("daddr", key.destination)
                    j.add("dport", key.port)
                    j.add("connects", value)
                    return j.line
                }
            }
            let width = max(16, sorted.map { max($0.key.source.count, $0.key.destination.count) }.max() ?? 0)
            var lines = ["LADDR".padding(width) + " " + "RADDR".padding(width) + " RPORT CONNECTS"]
            for (key, value) in sorted {
                lines.append(key.source.padding(width) + " " + key.destination.padding(width) + " "
                             + String(key.port).padding(5) + " " + String(value))
            }
            return lines
        }
    }
}
