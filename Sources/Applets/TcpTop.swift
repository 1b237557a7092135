@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter
import MetricsServer

/// tcptop: TCP traffic per connection and process, summarized every interval, as bcc's tcptop.
public enum TcpTop {
    public static let spec = CommandSpec(
        name: "tcptop",
        summary: "Summarize TCP send and receive throughput by host and process.",
        positionals: [("interval", "output interval, in seconds (default 1)"), ("count", "number of outputs")],
        options: [
            OptionSpec("C", "noclear", help: "do not clear the screen"),
            OptionSpec("S", "nosummary", help: "skip the system summary line"),
            OptionSpec("p", "pid", value: "PID", help: "trace this PID only"),
            OptionSpec("4", "ipv4", help: "trace IPv4 only"),
            OptionSpec("6", "ipv6", help: "trace IPv6 only"),
            OptionSpec("s", "sort", value: "KEY", help: "sort by all (default), sent or received",
                       choices: SortKey.allCases.map(\.rawValue)),
            OptionSpec("r", "rows", value: "N", help: "rows to print per table (default 20)"),
        ] + TracingOptions.specs.compactMap { option in
            switch option.long {
            case "ringbuf-kb": return nil // tcptop sends no events
            case "json": return OptionSpec(nil, "json", help: "print one JSON object per connection per interval (NDJSON)")
            default: return option
            }
        } + MetricsOptions.specs,
        examples: [
            ("tcptop", "trace TCP send/recv by host, every second"),
            ("tcptop -C", "don't clear the screen"),
            ("tcptop -p 181", "only PID 181"),
            ("tcptop -s sent -r 5", "the top 5 senders"),
            ("tcptop 5 3", "three 5-second summaries"),
            ("tcptop --json 1", "one JSON object per connection per second"),
            ("tcptop --cgroupmap /sys/fs/bpf/set", "only cgroups in this map"),
            ("tcptop --metrics :9464 --quiet", "Prometheus metrics per connection, nothing printed"),
        ]
    )

    public enum SortKey: String, Sendable, CaseIterable { case all, sent, received }

    /// The sock/ tracepoints where the kernel has them (6.12 has them, 6.1 not); elsewhere the return
    /// of tcp_sendmsg and tcp_recvmsg, whose arguments changed in 5.19 (`nonblock` removed).
    static func hooks(recvmsgNonblock: Bool) -> [Hook] {
        [
            Hook("TCP sends", [
                HookVariant(.tracepoint, "sock/sock_send_length", programs: ["sock_send_length"]),
                HookVariant(.fentry, "tcp_sendmsg", programs: ["tcp_sendmsg_exit"]),
                HookVariant(.kprobe, "tcp_sendmsg", programs: ["tcp_sendmsg_entry", "tcp_sendmsg_return"]),
            ]),
            Hook("TCP receives", [
                HookVariant(.tracepoint, "sock/sock_recv_length", programs: ["sock_recv_length"]),
                HookVariant(.fentry, "tcp_recvmsg", programs: [recvmsgNonblock ? "tcp_recvmsg_exit_nonblock" : "tcp_recvmsg_exit"]),
                HookVariant(.kprobe, "tcp_recvmsg", programs: ["tcp_recvmsg_entry", "tcp_recvmsg_return"]),
            ]),
        ]
    }

    public struct Config {
        public var interval: Double = 1
        public var count: Int?
        public var noClear = false
        public var noSummary = false
        public var pid: UInt32?
        public var family: UInt16 = 0
        public var sort = SortKey.all
        public var rows = 20
        /// -r given: JSON is cut too (by default it has every connection).
        public var rowsGiven = false
        public var tracing: TracingOptions
        public var metrics: MetricsOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            let positionals = parsed.positionals
            (interval, count) = try ParseValue.intervalAndCount(positionals)
            noClear = parsed.has("noclear")
            noSummary = parsed.has("nosummary")
            if let text = parsed.value("pid") { pid = try ParseValue.pid(text, option: "-p/--pid") }
            family = try ParseValue.family(parsed)
            if let text = parsed.value("sort") {
                guard let key = SortKey(rawValue: text) else { throw UsageError("-s/--sort: '\(text)' is not all, sent or received") }
                sort = key
            }
            if let text = parsed.value("rows") {
                rows = try ParseValue.positiveInt(text, option: "-r/--rows")
                rowsGiven = true
            }
            tracing = try TracingOptions(parsed)
            metrics = try MetricsOptions(parsed)
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("tcptop", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let filter = TaskFilter(pid: config.pid, cgroupMapPath: config.tracing.cgroupMap,
                                    mntnsMapPath: config.tracing.mntnsMap)
            var options = config.tracing
            if options.ringBufferBytes == nil { options.ringBufferBytes = 4096 } // no events: counts only
            let nonblock = KernelFeatures.parameterCount("tcp_recvmsg") == 6
            let tracer = try Tracer(.tcptop, filter: filter, options: options, hooks: hooks(recvmsgNonblock: nonblock)) { object in
                var cfg = tcptop_config()
                cfg.family = config.family
                cfg.recvmsg_nonblock = nonblock ? 1 : 0
                try object.setConstant("tcptop_cfg", cfg)
                // The fexit program of the other tcp_recvmsg signature is no variant at all here.
                try object.program(nonblock ? "tcp_recvmsg_exit" : "tcp_recvmsg_exit_nonblock").autoload = false
            }
            tracer.lostExplanation = "its connection table is full (10240 connections); a narrower filter (-p, -4/-6, a cgroup map) helps"
            let traffic = try tracer.object.map("traffic").opened()
            let output = Output()
            let renderer = Renderer(config: config, clock: tracer, containers: config.tracing.showContainers ? .host() : nil)
            let exporter = try Exporter(AppletMetrics.start(config.metrics, applet: "tcptop", tracer: tracer), containers: renderer.containers)
            let quiet = config.metrics.quiet
            if !config.tracing.json && !quiet {
                output.line("Tracing... Output every \(formatInterval(config.interval)) secs. Hit Ctrl-C to end")
                output.flush()
            }
            return try tracer.runIntervals(applet: "tcptop", output: output, json: config.tracing.json,
                                           interval: config.interval, count: config.count) {
                let rows = traffic.drain(tcptop_key.self, tcptop_value.self).map(Row.init)
                exporter?.record(rows)
                if quiet { return }
                for line in renderer.render(rows, clear: output.isTerminal && !config.noClear) { output.line(line) }
            }
        }
    }

    /// --metrics: bytes per connection and process, as Prometheus counters.
    struct Exporter {
        let containers: ContainerLabels<UInt64>?
        let sent: CounterSeries
        let received: CounterSeries

        init?(_ metrics: AppletMetrics?, containers: ContainerLabels<UInt64>?) {
            guard let metrics else { return nil }
            self.containers = containers
            let labels = ["pid", "comm", "laddr", "lport", "raddr", "rport"] + (containers == nil ? [] : ["container"])
            sent = metrics.counter("bpfbox_tcp_sent_bytes_total", help: "TCP bytes sent by a process on a connection", labels: labels)
            received = metrics.counter("bpfbox_tcp_received_bytes_total", help: "TCP bytes received by a process on a connection",
                                       labels: labels)
        }

        func record(_ rows: [Row]) {
            for row in rows {
                var labels = [String(row.pid), String(decoding: row.comm, as: UTF8.self),
                              NetAddress.text(family: row.family, bytes: row.laddr), String(row.lport),
                              NetAddress.text(family: row.family, bytes: row.raddr), String(row.rport)]
                if let containers { labels.append(containers.shortName(row.cgroupID) ?? "") }
                sent.add(labels, Int64(clamping: row.sent))
                received.add(labels, Int64(clamping: row.received))
            }
        }
    }

    static func formatInterval(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : formatFixed(value, decimals: 1)
    }

    /// One connection of one process in one interval.
    public struct Row: Equatable {
        public var pid: UInt32
        public var comm: [UInt8]
        public var family: UInt16
        public var laddr: [UInt8]
        public var lport: UInt16
        public var raddr: [UInt8]
        public var rport: UInt16
        public var sent: UInt64
        public var received: UInt64
        public var cgroupID: UInt64

        public init(pid: UInt32, comm: [UInt8], family: UInt16, laddr: [UInt8], lport: UInt16, raddr: [UInt8],
                    rport: UInt16, sent: UInt64, received: UInt64, cgroupID: UInt64 = 0) {
            self.pid = pid
            self.comm = comm
            self.family = family
            self.laddr = laddr
            self.lport = lport
            self.raddr = raddr
            self.rport = rport
            self.sent = sent
            self.received = received
            self.cgroupID = cgroupID
        }

        init(_ entry: (tcptop_key, tcptop_value)) {
            let (key, value) = entry
            pid = key.pid
            family = key.family
            laddr = withUnsafeBytes(of: key.saddr) { Array($0) }
            raddr = withUnsafeBytes(of: key.daddr) { Array($0) }
            lport = key.lport
            rport = key.dport
            cgroupID = key.cgroup_id
            sent = value.sent
            received = value.received
            comm = withUnsafeBytes(of: value.comm) { Array($0.prefix { $0 != 0 }) }
        }

        public var ipVersion: Int { NetAddress.version(family: family, bytes: raddr) }
    }

    public struct Renderer {
        public let config: Config
        let clock: EventClock?
        let containers: ContainerLabels<UInt64>?

        public init(config: Config, clock: EventClock?, containers: ContainerLabels<UInt64>? = nil) {
            self.config = config
            self.clock = clock
            self.containers = containers
        }

        func table(local: String, remote: String, width: Int) -> Table<Row> {
            var columns: [Column<Row>] = []
            if let containers { columns.append(containers.column { $0.cgroupID }) }
            return Table(columns + [
                Column("PID", width: 7) { String($0.pid) },
                Column("COMM", width: 12) { Escape.terminal($0.comm.prefix(12)) },
                Column(local, width: width) { NetAddress.endpoint(family: $0.family, bytes: $0.laddr, port: $0.lport) },
                Column(remote, width: width) { NetAddress.endpoint(family: $0.family, bytes: $0.raddr, port: $0.rport) },
                Column("RX_KB", width: 6, .right) { String($0.received / 1024) },
                Column("TX_KB", width: 6, .right) { String($0.sent / 1024) },
            ])
        }

        func sorted(_ rows: [Row]) -> [Row] {
            rows.sorted { a, b in
                switch config.sort {
                case .all: return (a.sent + a.received, a.pid) > (b.sent + b.received, b.pid)
                case .sent: return (a.sent, a.pid) > (b.sent, b.pid)
                case .received: return (a.received, a.pid) > (b.received, b.pid)
                }
            }
        }

        /// The lines of one interval: JSON objects, or the summary and the two tables.
        public func render(_ rows: [Row], clear: Bool, now: Int64? = nil) -> [String] {
            let wall = now ?? wallNow()
            let ordered = sorted(rows)
            if config.tracing.json {
                let time = TimeText.iso8601(wallNs: wall)
                return ordered.prefix(config.rowsGiven ? config.rows : ordered.count).map { row in
                    var j = JSONLine()
                    j.add("time", time)
                    j.add("interval", config.interval)
                    j.add("pid", row.pid)
                    j.add("comm", bytes: row.comm)
                    j.add("ip", row.ipVersion)
                    j.add("laddr", NetAddress.text(family: row.family, bytes: row.laddr))
                    j.add("lport", row.lport)
                    j.add("raddr", NetAddress.text(family: row.family, bytes: row.raddr))
                    j.add("rport", row.rport)
                    j.add("rx_bytes", row.received)
                    j.add("tx_bytes", row.sent)
                    j.add("cgroup_id", row.cgroupID)
                    containers?.add(row.cgroupID, to: &j)
                    return j.line
                }
            }
            var lines: [String] = []
            if !config.noSummary {
                lines.append(TimeText.clock(wallNs: wall) + " loadavg: " + loadAverage())
            }
            let v4 = ordered.filter { $0.ipVersion == 4 }.prefix(config.rows)
            let v6 = ordered.filter { $0.ipVersion == 6 }.prefix(config.rows)
            if config.family != NetAddress.inet6 {
                let table = table(local: "LADDR", remote: "RADDR", width: 21)
                lines.append("")
                lines.append(table.header)
                lines += v4.map(table.row)
            }
            if config.family != NetAddress.inet && (!v6.isEmpty || config.family == NetAddress.inet6) {
                let table = table(local: "LADDR6", remote: "RADDR6", width: 32)
                lines.append("")
                lines.append(table.header)
                lines += v6.map(table.row)
            }
            if clear, !lines.isEmpty { lines[0] = "\u{1B}[H\u{1B}[2J" + lines[0] }
            return lines
        }

        func loadAverage() -> String {
            guard let file = fopen("/proc/loadavg", "r") else { return "?" }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 128)
            guard fgets(&line, Int32(line.count), file) != nil else { return "?" }
            return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        func wallNow() -> Int64 {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        }
    }
}
