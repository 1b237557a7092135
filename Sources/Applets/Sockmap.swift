@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter
import MetricsServer
import Prometheus

/// sockmap: splices the local TCP connections of a cgroup socket to socket (sock_ops + sk_msg
/// on a SOCKHASH), and shows what it spliced.
public enum Sockmap {
    public static let spec = CommandSpec(
        name: "sockmap",
        summary: "Splice local TCP connections of a cgroup socket to socket, bypassing the TCP/IP stack.",
        positionals: [("interval", "output interval, in seconds (default 1)"), ("count", "number of outputs")],
        options: [
            OptionSpec("c", "cgroup", value: "PATH", help: "accelerate the TCP connections of this cgroup-v2 directory and its descendants (repeatable)"),
            OptionSpec(nil, "cgroupmap", value: "PATH", help: "accelerate only sockets whose cgroup-v2 id is a key of the hash map pinned at PATH (bcc layout)"),
            OptionSpec(nil, "mntnsmap", value: "PATH", help: "not applicable: a socket has no mount namespace (rejected)", hidden: true),
            OptionSpec(nil, "container", value: "ID|NAME", help: "accelerate this container's TCP connections (id, unique id prefix or name; repeatable)"),
            OptionSpec(nil, "containers", help: "with -v, name the container of each socket"),
            OptionSpec(nil, "json", help: "print one JSON object per interval (NDJSON)"),
            OptionSpec("v", "verbose", help: "say which connections are tracked, and why others are not accelerated"),
            OptionSpec(nil, "apply-bytes", value: "N", help: "let one redirect decision cover N bytes (default 0: decide every write); spliced bytes are then not counted"),
        ] + MetricsOptions.specs,
        examples: [
            ("sockmap -c /sys/fs/cgroup/app", "accelerate the local TCP of one cgroup"),
            ("sockmap -c CG -v", "and explain what is not accelerated"),
            ("sockmap -c CG 5", "show the counters every 5 seconds"),
            ("sockmap --cgroupmap /sys/fs/bpf/set", "the cgroups listed in a map"),
            ("sockmap -c CG --json 1 3", "three samples as JSON"),
            ("sockmap -c CG --metrics :9464 --quiet", "Prometheus counters, nothing printed"),
        ]
    )

    public struct Config {
        public var interval: Double = 1
        public var count: Int?
        public var cgroups: [String] = []
        public var applyBytes: UInt32 = 0
        public var tracing: TracingOptions
        public var metrics: MetricsOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            if parsed.has("mntnsmap") {
                throw UsageError("--mntnsmap does not apply to sockets (a socket has no mount namespace); select cgroups with -c or --cgroupmap")
            }
            (interval, count) = try ParseValue.intervalAndCount(parsed.positionals)
            cgroups = parsed.all("cgroup")
            tracing = try TracingOptions(parsed)
            metrics = try MetricsOptions(parsed)
            tracing.cgroups = [] // -c/--cgroup: attached to, not a task filter
            if let text = parsed.value("apply-bytes") {
                guard let value = UInt32(text) else { throw UsageError("--apply-bytes: '\(text)' is not a byte count from 0 to \(UInt32.max)") }
                applyBytes = value
            }
            let selectsCgroups = !cgroups.isEmpty || !tracing.containers.isEmpty
            if !selectsCgroups && tracing.cgroupMap == nil {
                throw UsageError("say which cgroup to accelerate: -c CGROUP_DIR, --container ID or --cgroupmap PATH")
            }
            if selectsCgroups && tracing.cgroupMap != nil {
                throw UsageError("-c/--container and --cgroupmap exclude each other")
            }
        }
    }

    /// Counters since start, summed over the CPUs.
    public struct Counters: Equatable {
        public var socketsAdded: UInt64 = 0
        public var socketsRefused: UInt64 = 0
        public var messagesRedirected: UInt64 = 0
        public var bytesRedirected: UInt64 = 0
        public var messagesPassed: UInt64 = 0
        public var bytesPassed: UInt64 = 0

        public init(socketsAdded: UInt64 = 0, socketsRefused: UInt64 = 0, messagesRedirected: UInt64 = 0,
                    bytesRedirected: UInt64 = 0, messagesPassed: UInt64 = 0, bytesPassed: UInt64 = 0) {
            self.socketsAdded = socketsAdded
            self.socketsRefused = socketsRefused
            self.messagesRedirected = messagesRedirected
            self.bytesRedirected = bytesRedirected
            self.messagesPassed = messagesPassed
            self.bytesPassed = bytesPassed
        }

        init(stats: BPFMap) {
            func sum(_ stat: sockmap_stat) -> UInt64 { stats.perCPUSum(stat.rawValue) }
            socketsAdded = sum(SOCKMAP_SOCKETS_ADDED)
            socketsRefused = sum(SOCKMAP_SOCKETS_REFUSED)
            messagesRedirected = sum(SOCKMAP_MSGS_REDIRECTED)
            bytesRedirected = sum(SOCKMAP_BYTES_REDIRECTED)
            messagesPassed = sum(SOCKMAP_MSGS_PASSED)
            bytesPassed = sum(SOCKMAP_BYTES_PASSED)
        }

        static func - (a: Counters, b: Counters) -> Counters {
            Counters(socketsAdded: a.socketsAdded &- b.socketsAdded, socketsRefused: a.socketsRefused &- b.socketsRefused,
                     messagesRedirected: a.messagesRedirected &- b.messagesRedirected,
                     bytesRedirected: a.bytesRedirected &- b.bytesRedirected,
                     messagesPassed: a.messagesPassed &- b.messagesPassed, bytesPassed: a.bytesPassed &- b.bytesPassed)
        }
    }

    /// One interval: the sockets in the map now, and what happened since the last sample.
    public struct Sample: Equatable {
        public var sockets: Int
        public var delta: Counters

        public init(sockets: Int, delta: Counters) {
            self.sockets = sockets
            self.delta = delta
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("sockmap", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let mount = try cgroup2Mount()
            var selected: [SelectedCgroup] = []
            for cgroup in try config.cgroups.map({ try SelectedCgroup($0, option: "-c", mount: mount) })
                + config.tracing.containerCgroups(mount: mount) where !selected.contains(where: { $0.id == cgroup.id }) {
                selected.append(cgroup)
            }
            // --cgroupmap: attach at the root; the program keeps only the listed cgroups' sockets.
            let attachAt = selected.isEmpty ? [try SelectedCgroup.root(mount: mount)] : SelectedCgroup.outermost(selected)

            var options = config.tracing
            options.verbose = false // -v explains connections; libbpf's own log stays out of it
            if !config.tracing.verbose { options.ringBufferBytes = 4096 } // events only with -v
            let tracer = try Tracer(.sockmap, filter: TaskFilter(cgroupMapPath: config.tracing.cgroupMap),
                                    options: options, attach: false) { object in
                try object.setConstant("apply_bytes", config.applyBytes)
                try object.setConstant("explain", UInt8(config.tracing.verbose ? 1 : 0))
            }
            let sockets = try tracer.object.map("sockets").opened()
            tracer.keep(try tracer.object.program("sockmap_redirect").attach(toSocketMap: sockets))
            let track = try tracer.object.program("sockmap_track")
            for cgroup in attachAt {
                let fd = try cgroup.open(mount: mount)
                defer { close(fd) }
                tracer.keep(try track.attach(cgroupFD: fd, cgroup: mount + cgroup.path))
            }
            tracer.announceHooks()
            tracer.lostExplanation = "-v explanations that did not fit in the event ring (the splicing is not affected)"
            let stats = try tracer.object.map("stats").opened()
            let renderer = Renderer(json: config.tracing.json, countsBytes: config.applyBytes == 0,
                                    containers: config.tracing.showContainers ? .host() : nil)
            let output = Output()
            let paths = CgroupPaths(mount: mount)
            let place = selected.isEmpty ? "the cgroups of \(config.tracing.cgroupMap!)" : selected.map(\.path).joined(separator: " ")

            let exporter = try Exporter(AppletMetrics.start(config.metrics, applet: "sockmap", tracer: tracer), countsBytes: config.applyBytes == 0)
            let quiet = config.metrics.quiet
            if !config.tracing.json && !quiet {
                output.line("Splicing local TCP connections of \(Escape.terminal(place)) (connections made from now on). Hit Ctrl-C to end.")
            }
            if config.tracing.verbose {
                let local = LocalAddresses()
                try tracer.onEvent { raw in
                    guard let event = Event(raw) else { return }
                    output.line(renderer.render(event, wallNs: tracer.wallClock(event.timestampNs),
                                                cgroup: event.cgroupID == 0 ? nil : paths.path(event.cgroupID) ?? "cgroup id \(event.cgroupID)",
                                                peerIsLocal: local.contains(event.peer)))
                }
                let scanned = try config.tracing.cgroupMap.map { try BPFMap.openPinned($0).keys(UInt64.self).compactMap { paths.path($0) } }
                    ?? selected.map(\.path)
                let before = Preexisting.connections(inCgroups: scanned, mount: mount)
                for line in renderer.preexisting(before, wallNs: wallNow()) { output.line(line) }
            }
            if !config.tracing.json && !quiet { output.line(renderer.header) }
            output.flush()
            var last = Counters()
            let removed = RemovedCgroups(selected.isEmpty ? [] : attachAt, applet: "sockmap", mount: mount)
            let code = try tracer.runIntervals(applet: "sockmap", output: output, json: config.tracing.json,
                                               interval: config.interval, count: config.count) {
                removed.check()
                let now = Counters(stats: stats)
                let sample = Sample(sockets: sockets.keys(sockmap_key.self).count, delta: now - last)
                last = now
                exporter?.record(sample)
                if !quiet { output.line(renderer.render(sample, wallNs: wallNow())) }
            }
            if !quiet { output.line(renderer.totals(last)) }
            output.flush()
            return code
        }
    }

    /// --metrics: the counters as Prometheus counters, the map's size as a gauge.
    struct Exporter {
        let sockets: Gauge
        let counters: [(CounterSeries, KeyPath<Counters, UInt64>)]

        init?(_ metrics: AppletMetrics?, countsBytes: Bool) {
            guard let metrics else { return nil }
            sockets = metrics.registry.makeGauge(descriptor: metricName("bpfbox_sockmap_sockets", help: "TCP sockets in the socket map now"))
            var counters: [(String, String, KeyPath<Counters, UInt64>)] = [
                ("sockets_added", "sockets put in the socket map", \.socketsAdded),
                ("sockets_refused", "established sockets the socket map refused", \.socketsRefused),
                ("spliced_writes", "writes (with --apply-bytes: redirect decisions) spliced to the peer socket", \.messagesRedirected),
                ("passed_writes", "writes of tracked sockets whose peer was not tracked, passed to TCP", \.messagesPassed),
                ("passed_bytes", "bytes of those writes", \.bytesPassed),
            ]
            if countsBytes { counters.append(("spliced_bytes", "bytes spliced to the peer socket", \.bytesRedirected)) }
            self.counters = counters.map { name, help, path in
                (metrics.counter("bpfbox_sockmap_\(name)_total", help: help, labels: []), path)
            }
        }

        func record(_ sample: Sample) {
            sockets.set(to: Double(sample.sockets))
            for (counter, path) in counters { counter.add([], Int64(clamping: sample.delta[keyPath: path])) }
        }
    }

    static func wallNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// A TCP endpoint: family (2 or 10; v4-mapped already folded into 2), address, port.
    public struct Endpoint: Equatable, Hashable {
        public var family: UInt16
        public var address: [UInt8]   // 16 bytes; IPv4 in the first 4
        public var port: UInt16

        public init(family: UInt16, address: [UInt8], port: UInt16) {
            self.family = family
            self.address = address
            self.port = port
        }

        public var text: String { NetAddress.endpoint(family: family, bytes: address, port: port) }
    }

    /// A --verbose event from the BPF side.
    public struct Event: Equatable {
        public enum Kind: Equatable { case tracked, refused(errno: Int32), peerMissing }
        public var kind: Kind
        /// The socket the event is about, from its own side.
        public var local: Endpoint
        public var remote: Endpoint
        public var timestampNs: UInt64
        public var cgroupID: UInt64
        /// The socket that was looked for: the reverse of (local, remote).
        public var peer: Endpoint { remote }

        public init(kind: Kind, local: Endpoint, remote: Endpoint, timestampNs: UInt64, cgroupID: UInt64) {
            self.kind = kind
            self.local = local
            self.remote = remote
            self.timestampNs = timestampNs
            self.cgroupID = cgroupID
        }

        init?(_ raw: UnsafeRawBufferPointer) {
            guard raw.count >= MemoryLayout<sockmap_event>.size else { return nil }
            let e = raw.loadUnaligned(as: sockmap_event.self)
            let key = e.key
            let family = UInt16(truncatingIfNeeded: key.family)
            func bytes(_ ip: (UInt32, UInt32, UInt32, UInt32)) -> [UInt8] { withUnsafeBytes(of: ip) { Array($0) } }
            var local = Endpoint(family: family, address: bytes(key.local_ip), port: UInt16(truncatingIfNeeded: key.local_port))
            var remote = Endpoint(family: family, address: bytes(key.remote_ip), port: UInt16(truncatingIfNeeded: key.remote_port))
            switch e.reason {
            case SOCKMAP_ADDED.rawValue: kind = .tracked
            case SOCKMAP_ADD_FAILED.rawValue: kind = .refused(errno: 0 &- e.error)
            case SOCKMAP_PEER_MISSING.rawValue:
                // The BPF side reports the key it looked for (the peer's); show the sender's view.
                kind = .peerMissing
                swap(&local, &remote)
            default: return nil
            }
            self.local = local
            self.remote = remote
            timestampNs = e.ts_ns
            cgroupID = e.cgroup_id
        }
    }

    /// The addresses of this host's interfaces (to tell a remote peer from a local one).
    struct LocalAddresses {
        private var addresses: Set<[UInt8]> = []

        init() {
            var list: UnsafeMutablePointer<ifaddrs>?
            guard getifaddrs(&list) == 0 else { return }
            defer { freeifaddrs(list) }
            var cursor = list
            while let entry = cursor {
                defer { cursor = entry.pointee.ifa_next }
                guard let sa = entry.pointee.ifa_addr else { continue }
                if Int32(sa.pointee.sa_family) == AF_INET {
                    let address = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in.self).sin_addr
                    addresses.insert(withUnsafeBytes(of: address) { Array($0) } + [UInt8](repeating: 0, count: 12))
                } else if Int32(sa.pointee.sa_family) == AF_INET6 {
                    let address = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in6.self).sin6_addr
                    addresses.insert(withUnsafeBytes(of: address) { Array($0) })
                }
            }
        }

        func contains(_ endpoint: Endpoint) -> Bool {
            if endpoint.family == NetAddress.inet && endpoint.address[0] == 127 { return true }
            return addresses.contains(endpoint.address)
        }
    }

    public struct Renderer {
        public let json: Bool
        /// False with --apply-bytes: a decision then covers later writes that the program does
        /// not see, so the spliced bytes are unknown (shown as "-", left out of JSON).
        public let countsBytes: Bool
        let containers: ContainerLabels<String>?

        public init(json: Bool, countsBytes: Bool = true, containers: ContainerLabels<String>? = nil) {
            self.json = json
            self.countsBytes = countsBytes
            self.containers = containers
        }

        public var header: String {
            table.header
        }

        private var table: Table<(String, Sample)> {
            Table([
                Column("TIME", width: 8) { $0.0 },
                Column("SOCKETS", width: 7, .right) { String($0.1.sockets) },
                Column("SPLICED", width: 9, .right) { String($0.1.delta.messagesRedirected) },
                Column("SPLICED_KB", width: 10, .right) { [countsBytes] in countsBytes ? String($0.1.delta.bytesRedirected / 1024) : "-" },
                Column("PASSED", width: 9, .right) { String($0.1.delta.messagesPassed) },
                Column("PASSED_KB", width: 9, .right) { String($0.1.delta.bytesPassed / 1024) },
                Column("NEW", width: 0) { String($0.1.delta.socketsAdded) },
            ])
        }

        public func render(_ sample: Sample, wallNs: Int64) -> String {
            guard json else { return table.row((TimeText.clock(wallNs: wallNs), sample)) }
            var j = JSONLine()
            j.add("time", TimeText.iso8601(wallNs: wallNs))
            j.add("sockets", sample.sockets)
            add(sample.delta, to: &j)
            return j.line
        }

        private func add(_ c: Counters, to j: inout JSONLine) {
            j.add("sockets_added", c.socketsAdded)
            j.add("sockets_refused", c.socketsRefused)
            j.add("spliced_msgs", c.messagesRedirected)
            if countsBytes { j.add("spliced_bytes", c.bytesRedirected) }
            j.add("passed_msgs", c.messagesPassed)
            j.add("passed_bytes", c.bytesPassed)
        }

        public func totals(_ c: Counters) -> String {
            if json {
                var j = JSONLine()
                j.add("totals", true)
                add(c, to: &j)
                return j.line
            }
            let spliced = countsBytes ? " (\(c.bytesRedirected / 1024) KB)" : ""
            let decisions = countsBytes ? "writes spliced" : "redirect decisions"
            var text = "Totals: \(c.socketsAdded) sockets tracked, \(c.messagesRedirected) \(decisions)\(spliced), "
                + "\(c.messagesPassed) passed to TCP (\(c.bytesPassed / 1024) KB)"
            if c.socketsRefused > 0 { text += ", \(c.socketsRefused) socket\(c.socketsRefused == 1 ? "" : "s") the map refused" }
            return text
        }

        public func render(_ event: Event, wallNs: Int64, cgroup: String?, peerIsLocal: Bool) -> String {
            let what: String, why: String?
            switch event.kind {
            case .tracked:
                what = "tracked"
                why = nil
            case .refused(let code):
                what = "not tracked"
                why = code == ENOMEM || code == E2BIG ? "the socket map is full" : "the socket map refused it: \(ErrnoName.name(code))"
            case .peerMissing:
                what = "not accelerated"
                why = peerIsLocal
                    ? "the peer socket is not tracked: it is outside the cgroup, or it connected before sockmap started"
                    : "the peer is not on this host"
            }
            if json {
                var j = JSONLine()
                j.add("time", TimeText.iso8601(wallNs: wallNs))
                j.add("event", what.replacingSpaces)
                j.add("local", event.local.text)
                j.add("remote", event.remote.text)
                if let cgroup { j.add("cgroup", cgroup) }
                if let cgroup { containers?.add(cgroup, to: &j) }
                if let why { j.add("reason", why) }
                return j.line
            }
            var line = "\(TimeText.clock(wallNs: wallNs)) \(what): \(event.local.text) -> \(event.remote.text)"
            if let cgroup {
                let container = containers?.shortName(cgroup).map { ", container " + $0 } ?? ""
                line += " (\(Escape.terminal(cgroup + container)))"
            }
            if let why { line += ": \(why)" }
            return line
        }

        /// The connections that were established before sockmap attached: they stay on TCP.
        public func preexisting(_ connections: [(local: Endpoint, remote: Endpoint)], wallNs: Int64) -> [String] {
            connections.map { c in
                if json {
                    var j = JSONLine()
                    j.add("time", TimeText.iso8601(wallNs: wallNs))
                    j.add("event", "not_accelerated")
                    j.add("local", c.local.text)
                    j.add("remote", c.remote.text)
                    j.add("reason", "established before sockmap started")
                    return j.line
                }
                return "\(TimeText.clock(wallNs: wallNs)) not accelerated: \(c.local.text) -> \(c.remote.text): established before sockmap started"
            }
        }
    }
}

extension String {
    var replacingSpaces: String { String(map { $0 == " " ? "_" : $0 }) }
}
