@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter
import MetricsServer

/// skbcount: packets and bytes per cgroup, counted by cgroup_skb programs.
public enum SkbCount {
    public static let spec = CommandSpec(
        name: "skbcount",
        summary: "Count packets and bytes per cgroup (IP layer, ingress and egress).",
        positionals: [("interval", "output interval, in seconds (default 1)"), ("count", "number of outputs")],
        options: [
            OptionSpec("c", "cgroup", value: "PATH", help: "count this cgroup-v2 directory and its descendants (repeatable)"),
            OptionSpec(nil, "subtree", help: "a row per descendant cgroup instead of one per selected cgroup"),
            OptionSpec(nil, "cumulative", help: "show totals since start instead of per-interval counts"),
            OptionSpec("C", "noclear", help: "do not clear the screen"),
            OptionSpec("S", "nosummary", help: "skip the summary line"),
            OptionSpec(nil, "run", value: "CMD", help: "run CMD ARGS... in a new cgroup, count its traffic, print the totals when it ends"),
            OptionSpec(nil, "pin", value: "DIR", help: "leave the counters running after exit, pinned in DIR (on bpffs); cat DIR/stats prints them"),
            OptionSpec(nil, "unpin", value: "DIR", help: "remove what --pin left in DIR, which detaches the counters"),
        ] + TracingOptions.specs.compactMap { option in
            switch option.long {
            case "ringbuf-kb": return nil // skbcount sends no events
            case "cgroup", "mntns-of": return nil // its own -c; packets have no task
            case "json": return OptionSpec(nil, "json", help: "print one JSON object per cgroup per interval (NDJSON)")
            default: return option
            }
        } + MetricsOptions.specs,
        examples: [
            ("skbcount", "every cgroup, every second"),
            ("skbcount -c CGROUP 5", "one cgroup and its children, every 5s"),
            ("skbcount -c CGROUP --subtree", "a row per descendant cgroup"),
            ("skbcount --cgroupmap /sys/fs/bpf/set", "only the cgroups in this map"),
            ("skbcount --run curl -s URL", "the traffic of one command"),
            ("skbcount --json 1 3", "three one-second samples as JSON"),
            ("skbcount --pin /sys/fs/bpf/net -c CG", "count with no process running"),
            ("skbcount --metrics :9464 --quiet", "Prometheus metrics per cgroup, nothing printed"),
        ],
        stopAfter: ["run"]
    )

    public struct Config {
        public var interval: Double = 1
        public var count: Int?
        public var cgroups: [String] = []
        public var subtree = false
        public var cumulative = false
        public var noClear = false
        public var noSummary = false
        public var command: [String] = []
        public var pin: String?
        public var unpin: String?
        public var tracing: TracingOptions
        public var metrics: MetricsOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            if parsed.has("mntnsmap") {
                throw UsageError("--mntnsmap does not apply to packets (a received packet has no task, hence no mount namespace); select cgroups with -c or --cgroupmap")
            }
            var positionals = parsed.positionals
            if let program = parsed.value("run") {
                guard let index = parsed.positionalsBeforeStop, index == 0 else {
                    throw UsageError("--run takes the rest of the line as its command; interval and count do not apply to it")
                }
                command = [program] + positionals
                positionals = []
            }
            (interval, count) = try ParseValue.intervalAndCount(positionals)
            cgroups = parsed.all("cgroup")
            subtree = parsed.has("subtree")
            cumulative = parsed.has("cumulative")
            noClear = parsed.has("noclear")
            noSummary = parsed.has("nosummary")
            tracing = try TracingOptions(parsed)
            metrics = try MetricsOptions(parsed)
            tracing.cgroups = [] // -c/--cgroup: attached to, not a task filter
            if !command.isEmpty && (!cgroups.isEmpty || !tracing.containers.isEmpty || tracing.cgroupMap != nil) {
                throw UsageError("--run makes its own cgroup: it cannot be combined with -c or --cgroupmap")
            }
            if (!cgroups.isEmpty || !tracing.containers.isEmpty) && tracing.cgroupMap != nil {
                throw UsageError("-c/--container and --cgroupmap exclude each other")
            }
            pin = parsed.value("pin")
            unpin = parsed.value("unpin")
            if pin != nil && (unpin != nil || !command.isEmpty) {
                throw UsageError("--pin cannot be combined with --unpin or --run")
            }
        }
    }

    public struct Row: Equatable {
        public var cgroup: String
        public var rxPackets: UInt64 = 0
        public var rxBytes: UInt64 = 0
        public var txPackets: UInt64 = 0
        public var txBytes: UInt64 = 0
        public var total: UInt64 { rxBytes + txBytes }

        public init(cgroup: String, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, txPackets: UInt64 = 0, txBytes: UInt64 = 0) {
            self.cgroup = cgroup
            self.rxPackets = rxPackets
            self.rxBytes = rxBytes
            self.txPackets = txPackets
            self.txBytes = txBytes
        }

        mutating func add(_ v: skbcount_value) {
            rxPackets += v.rx_packets
            rxBytes += v.rx_bytes
            txPackets += v.tx_packets
            txBytes += v.tx_bytes
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("skbcount", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            if let dir = config.unpin { return try Pins.remove(dir) }
            if let dir = config.pin {
                // Nothing is made on bpffs by a process that cannot load the counters after.
                if let problem = Privileges.tracingProblem() {
                    throw RuntimeFailure("\(problem): --pin needs root, or CAP_BPF with CAP_PERFMON and CAP_NET_ADMIN; run it with sudo")
                }
                try Pins.prepare(dir)
            }
            let mount = try cgroup2Mount()
            // What to attach to: the -c cgroups (the outermost ones), a new cgroup for --run, or the root.
            var selected: [SelectedCgroup] = []
            var runCgroup: String?
            if !config.command.isEmpty {
                let path = "/bpfbox-run-\(getpid())"
                guard mkdir(mount + path, 0o755) == 0 else {
                    throw RuntimeFailure("cannot create the cgroup \(mount + path): \(String(cString: strerror(errno)))")
                }
                runCgroup = mount + path
                selected = [SelectedCgroup(path: path, id: try CgroupV2.id(ofDirectory: mount + path))]
            } else {
                for cgroup in try config.cgroups.map({ try SelectedCgroup($0, option: "-c", mount: mount) })
                    + config.tracing.containerCgroups(mount: mount) where !selected.contains(where: { $0.id == cgroup.id }) {
                    selected.append(cgroup)
                }
                if selected.isEmpty { selected = [try SelectedCgroup.root(mount: mount)] }
            }
            defer { if let runCgroup { rmdir(runCgroup) } }
            let outermost = SelectedCgroup.outermost(selected)

            let filter = TaskFilter(cgroupMapPath: config.tracing.cgroupMap)
            var options = config.tracing
            options.ringBufferBytes = 4096 // counts only: no events
            if config.pin != nil && !KernelFeatures.hasCgroupIterator {
                throw RuntimeFailure("--pin needs the cgroup iterator (iter/cgroup, Linux 6.1 and later), which this kernel lacks; run skbcount without --pin")
            }
            let tracer = try Tracer(.skbcount, filter: filter, options: options, attach: false) { object in
                // The cgroup iterator (Linux 6.1+) is loaded only for --pin.
                try object.program("skbcount_stats").autoload = config.pin != nil
            }
            let programs = [try tracer.object.program("skb_ingress"), try tracer.object.program("skb_egress")]
            var pinnable: [(String, BPFLink)] = []
            for (index, cgroup) in outermost.enumerated() {
                let fd = try cgroup.open(mount: mount)
                defer { close(fd) }
                for (program, name) in zip(programs, ["ingress", "egress"]) {
                    let link = try program.attach(cgroupFD: fd, cgroup: mount + cgroup.path)
                    tracer.keep(link)
                    pinnable.append(("\(name)-\(index)", link))
                }
            }
            if config.pin == nil { tracer.announceHooks() }
            if let dir = config.pin {
                let root = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard root >= 0 else { throw RuntimeFailure("cannot open \(mount): \(String(cString: strerror(errno)))") }
                defer { close(root) }
                let stats = try tracer.object.program("skbcount_stats").attachCgroupIterator(cgroupFD: root, cgroup: mount)
                tracer.keep(stats)
                tracer.announceHooks()
                do {
                    for (name, link) in pinnable { try link.pin(dir + "/" + name) }
                    try tracer.object.map("counts").opened().pin(dir + "/counts")
                    try stats.pin(dir + "/stats")
                } catch {
                    _ = try? Pins.remove(dir, quiet: true)
                    throw error
                }
                let out = Output()
                out.line("counting \(outermost.map(\.path).joined(separator: " ")) with no process: cat \(dir)/stats; stop with: bpfbox skbcount --unpin \(dir)")
                out.flush()
                return 0
            }
            tracer.lostExplanation = "its cgroup table is full (16384 cgroups); select fewer cgroups"
            let counts = try tracer.object.map("counts").opened()
            let renderer = Renderer(config: config, containers: config.tracing.showContainers ? .host() : nil)
            let output = Output()
            var names = CgroupV2.tree(mount: mount)
            var totals: [String: Row] = [:]
            let exporter = try Exporter(AppletMetrics.start(config.metrics, applet: "skbcount", tracer: tracer), containers: renderer.containers)

            func sample() -> [Row] {
                let drained = counts.drain(UInt64.self, skbcount_value.self)
                if drained.contains(where: { names[$0.0] == nil }) { names = CgroupV2.tree(mount: mount) }
                var rows: [String: Row] = [:]
                for (id, value) in drained {
                    let path = names[id] ?? "cgroup id \(id)"
                    let key: String
                    if config.subtree || config.tracing.cgroupMap != nil || config.cgroups.isEmpty && runCgroup == nil {
                        key = path
                    } else {
                        // The innermost selected cgroup that holds the socket's cgroup.
                        key = selected.filter { $0.contains(path) }.max { $0.path.count < $1.path.count }?.path ?? path
                    }
                    rows[key, default: Row(cgroup: key)].add(value)
                }
                exporter?.record(rows.values)
                for (key, row) in rows {
                    var total = totals[key, default: Row(cgroup: key)]
                    total.rxPackets += row.rxPackets
                    total.rxBytes += row.rxBytes
                    total.txPackets += row.txPackets
                    total.txBytes += row.txBytes
                    totals[key] = total
                }
                return config.cumulative ? Array(totals.values) : Array(rows.values)
            }

            if let command = config.command.first {
                let held = try HeldCommand(config.command, option: "--run")
                let procs = open(runCgroup! + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
                let pidText = Array("\(held.pid)\n".utf8)
                guard procs >= 0, write(procs, pidText, pidText.count) == pidText.count else {
                    throw RuntimeFailure("cannot move \(command) into \(runCgroup!): \(String(cString: strerror(errno)))")
                }
                close(procs)
                held.release()
                Signals.install()
                while !held.exited && !Signals.stopRequested { _ = poll(nil, 0, 50) }
                _ = sample()
                var final = totals.values.first ?? Row(cgroup: selected[0].path)
                final.cgroup = config.command.joined(separator: " ")
                for line in renderer.render([final], clear: false, header: "Traffic of: " + Escape.terminal(final.cgroup)) {
                    output.line(line)
                }
                output.flush()
                return 0
            }
            let quiet = config.metrics.quiet
            let removed = RemovedCgroups(outermost, applet: "skbcount", mount: mount)
            if !config.tracing.json && !quiet {
                output.line("Tracing... Output every \(TcpTop.formatInterval(config.interval)) secs. Hit Ctrl-C to end")
                output.flush()
            }
            return try tracer.runIntervals(applet: "skbcount", output: output, json: config.tracing.json,
                                           interval: config.interval, count: config.count) {
                removed.check()
                let rows = sample()
                if quiet { return }
                for line in renderer.render(rows, clear: output.isTerminal && !config.noClear) { output.line(line) }
            }
        }
    }

    /// --metrics: packets and bytes per cgroup (and container), as Prometheus counters.
    struct Exporter {
        let containers: ContainerLabels<String>?
        let series: [CounterSeries]

        init?(_ metrics: AppletMetrics?, containers: ContainerLabels<String>?) {
            guard let metrics else { return nil }
            self.containers = containers
            let labels = containers == nil ? ["cgroup"] : ["cgroup", "container"]
            series = [("rx_packets", "IP packets received"), ("rx_bytes", "bytes received at the IP layer"),
                      ("tx_packets", "IP packets sent"), ("tx_bytes", "bytes sent at the IP layer")].map { name, help in
                metrics.counter("bpfbox_cgroup_\(name)_total", help: "\(help) by the sockets of a cgroup", labels: labels)
            }
        }

        func record(_ rows: some Sequence<Row>) {
            for row in rows {
                var labels = [row.cgroup]
                if let containers { labels.append(containers.shortName(row.cgroup) ?? "") }
                for (counter, value) in zip(series, [row.rxPackets, row.rxBytes, row.txPackets, row.txBytes]) {
                    counter.add(labels, Int64(clamping: value))
                }
            }
        }
    }

    /// What --pin leaves in its directory, and its removal.
    enum Pins {
        static func entries(_ dir: String) -> [String] { FileSystem.entries(dir) }

        static func ours(_ name: String) -> Bool {
            name == "stats" || name == "counts" || name.hasPrefix("ingress-") || name.hasPrefix("egress-")
        }

        /// DIR must be on bpffs (or be made in a directory that is) and hold nothing yet.
        static func prepare(_ dir: String) throws {
            var st = stat()
            if stat(dir, &st) == 0 {
                guard Mounts.isOnBPFFS(dir) else {
                    throw RuntimeFailure("--pin \(dir): not on a BPF filesystem; pins live under /sys/fs/bpf, e.g. --pin /sys/fs/bpf/skbcount")
                }
                let present = entries(dir)
                guard present.isEmpty else {
                    throw RuntimeFailure("--pin \(dir): already holds \(present.joined(separator: ", ")); remove it first (bpfbox skbcount --unpin \(dir)) or choose another directory")
                }
                return
            }
            let parent = dir.split(separator: "/").dropLast().joined(separator: "/")
            guard Mounts.isOnBPFFS("/" + parent) else {
                throw RuntimeFailure("--pin \(dir): not on a BPF filesystem; pins live under /sys/fs/bpf, e.g. --pin /sys/fs/bpf/skbcount")
            }
            guard mkdir(dir, 0o700) == 0 else {
                throw RuntimeFailure("--pin \(dir): cannot create it: \(String(cString: strerror(errno)))")
            }
        }

        /// Removes the pins (which detaches the programs) and the directory.
        static func remove(_ dir: String, quiet: Bool = false) throws -> Int32 {
            var st = stat()
            guard stat(dir, &st) == 0 else { throw RuntimeFailure("--unpin \(dir): nothing is pinned there (no such directory)") }
            guard Mounts.isOnBPFFS(dir) else { throw RuntimeFailure("--unpin \(dir): not on a BPF filesystem") }
            let present = entries(dir)
            let removed = present.filter(ours).filter { unlink(dir + "/" + $0) == 0 }
            let left = entries(dir)
            if left.isEmpty { rmdir(dir) }
            if !quiet {
                let out = Output()
                out.line("removed \(removed.count) pins from \(dir)" + (left.isEmpty ? "" : "; left what skbcount did not make: \(left.joined(separator: ", "))"))
                out.flush()
            }
            return 0
        }
    }

    public struct Renderer {
        public let config: Config
        let containers: ContainerLabels<String>?
        public let table: Table<Row>

        public init(config: Config, containers: ContainerLabels<String>? = nil) {
            self.config = config
            self.containers = containers
            var columns: [Column<Row>] = [
                Column("RX_PKTS", width: 9, .right) { String($0.rxPackets) },
                Column("RX_KB", width: 9, .right) { String($0.rxBytes / 1024) },
                Column("TX_PKTS", width: 9, .right) { String($0.txPackets) },
                Column("TX_KB", width: 9, .right) { String($0.txBytes / 1024) },
            ]
            if let containers { columns.append(containers.column { $0.cgroup }) }
            columns.append(Column("CGROUP", width: 0) { Escape.terminal($0.cgroup) })
            table = Table(columns)
        }

        public func render(_ rows: [Row], clear: Bool, header: String? = nil, now: Int64? = nil) -> [String] {
            let sorted = rows.sorted { ($0.total, $0.cgroup) > ($1.total, $1.cgroup) }
            var wall = now ?? 0
            if now == nil {
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                wall = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
            }
            if config.tracing.json {
                let time = TimeText.iso8601(wallNs: wall)
                return sorted.map { row in
                    var j = JSONLine()
                    j.add("time", time)
                    j.add("cgroup", row.cgroup)
                    j.add("rx_packets", row.rxPackets)
                    j.add("rx_bytes", row.rxBytes)
                    j.add("tx_packets", row.txPackets)
                    j.add("tx_bytes", row.txBytes)
                    j.add("cumulative", config.cumulative || !config.command.isEmpty)
                    containers?.add(row.cgroup, to: &j)
                    return j.line
                }
            }
            var lines: [String] = []
            if let header { lines.append(header) } else if !config.noSummary {
                lines.append(TimeText.clock(wallNs: wall) + (config.cumulative ? " totals since start" : ""))
            }
            lines.append(table.header)
            lines += sorted.map(table.row)
            if clear { lines[0] = "\u{1B}[H\u{1B}[2J" + lines[0] }
            return lines
        }
    }
}
