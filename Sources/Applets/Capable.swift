@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter
import MetricsServer

/// capable: trace capability checks, as bcc's capable.
public enum Capable {
    public static let spec = CommandSpec(
        name: "capable",
        summary: "Trace security capability checks (cap_capable()).",
        options: [
            OptionSpec("p", "pid", value: "PID", help: "trace this process ID only (its threads included)"),
            OptionSpec("x", "extra", help: "show an extra USERNS column (the user namespace checked)"),
            OptionSpec("K", "kernel-stack", help: "show the kernel stack of each check"),
            OptionSpec("U", "user-stack", help: "show the user stack of each check"),
            OptionSpec(nil, "unique", value: "cgroup", help: "show each capability and verdict once per process (or per cgroup with --unique=cgroup)",
                       optionalValue: true),
        ] + TracingOptions.specs.map { option in
            option.long == "verbose"
                ? OptionSpec("v", "verbose", help: "show libbpf's log; every check is shown anyway (audited or not)")
                : option
        } + MetricsOptions.specs,
        examples: [
            ("capable", "trace capability checks"),
            ("capable -p 181", "only process 181"),
            ("capable -K", "with kernel stacks"),
            ("capable -U", "with user stacks"),
            ("capable -x", "with the user namespace checked"),
            ("capable --unique", "each capability once per process"),
            ("capable --unique=cgroup", "each capability once per cgroup"),
            ("capable --cgroupmap /sys/fs/bpf/set", "only cgroups in this map"),
            ("capable --metrics :9464 --quiet", "Prometheus counts of checks, nothing printed"),
        ]
    )

    /// Capability names, indexed by number (include/uapi/linux/capability.h).
    public static let names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// The name of capability `cap`; a number the table does not know yet is shown as CAP_<n>.
    public static func name(_ cap: Int32) -> String {
        cap >= 0 && Int(cap) < names.count ? names[Int(cap)] : "CAP_\(cap)"
    }

    /// The tracepoint where the kernel has it (it has no option word); elsewhere the function,
    /// whose `opts` tell audited checks and setid-preserving ones.
    static let hooks = [Hook("cap_capable", [
        HookVariant(.tracepoint, "capability/cap_capable", programs: ["cap_capable"]),
        HookVariant(.fentry, "cap_capable", programs: ["cap_capable_fexit"]),
        HookVariant(.kprobe, "cap_capable", programs: ["cap_capable_entry", "cap_capable_return"]),
    ])]

    public struct Config {
        public var pid: UInt32?
        public var extra = false
        public var kernelStack = false
        public var userStack = false
        public var unique: UInt8 = 0
        public var tracing: TracingOptions
        public var metrics: MetricsOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            guard parsed.positionals.isEmpty else { throw UsageError("unexpected argument '\(parsed.positionals[0])'") }
            if let text = parsed.value("pid") { pid = try ParseValue.pid(text, option: "-p/--pid") }
            extra = parsed.has("extra")
            kernelStack = parsed.has("kernel-stack")
            userStack = parsed.has("user-stack")
            if let value = parsed.value("unique") {
                switch value {
                case "", "pid", "process": unique = UInt8(CAPABLE_UNIQUE_PROCESS.rawValue)
                case "cgroup": unique = UInt8(CAPABLE_UNIQUE_CGROUP.rawValue)
                default: throw UsageError("--unique: '\(value)' is not 'cgroup' (or leave the value out for per-process)")
                }
            }
            tracing = try TracingOptions(parsed)
            metrics = try MetricsOptions(parsed)
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("capable", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let filter = TaskFilter(pid: config.pid, cgroupMapPath: config.tracing.cgroupMap,
                                    mntnsMapPath: config.tracing.mntnsMap)
            // Read before attaching: the first checks must not wait for it.
            let kernelSymbols = config.kernelStack ? KernelSymbols() : nil
            let tracer = try Tracer(.capable, filter: filter, options: config.tracing, hooks: hooks) { object in
                var cfg = capable_config()
                cfg.unique = config.unique
                cfg.kernel_stack = config.kernelStack ? 1 : 0
                cfg.user_stack = config.userStack ? 1 : 0
                try object.setConstant("capable_cfg", cfg)
                if config.kernelStack || config.userStack { try object.map("stacks").setMaxEntries(16384) }
                if config.unique == 0 { try object.map("seen").setMaxEntries(1) }
            }
            let stacks = config.kernelStack || config.userStack ? try tracer.object.map("stacks").opened() : nil
            let renderer = Renderer(config: config, clock: tracer, stacks: stacks, kernelSymbols: kernelSymbols,
                                    containers: config.tracing.showContainers ? .host() : nil,
                                    optionsKnown: tracer.hooks.first?.variant.kind != .tracepoint)
            let metrics = try AppletMetrics.start(config.metrics, applet: "capable", tracer: tracer)
            let checks = metrics?.counter("bpfbox_capability_checks_total", help: "capability checks by capability, verdict and command",
                                          labels: ["cap", "verdict", "comm"] + (renderer.containers == nil ? [] : ["container"]))
            let quiet = config.metrics.quiet
            return try tracer.stream(applet: "capable", json: config.tracing.json, header: quiet ? nil : renderer.table.header,
                                     decode: Event.init) { event in
                if let checks {
                    var labels = [Capable.name(event.cap), event.allowed ? "allow" : "deny", String(decoding: event.task.comm, as: UTF8.self)]
                    if let containers = renderer.containers { labels.append(containers.shortName(event.task.cgroupID) ?? "") }
                    checks.add(labels, 1)
                }
                return quiet ? [] : renderer.render(event)
            }
        }
    }

    public struct Event: Equatable {
        public var task: TaskInfo
        public var cap: Int32
        public var ret: Int32
        public var euid: UInt32
        /// cap_capable's option word; 0 when the hook does not see it (the tracepoint).
        public var opts: UInt32
        public var userns: UInt64
        public var kernelStackID: Int64
        public var userStackID: Int64

        public var allowed: Bool { ret == 0 }
        /// The check is audited (bcc's AUDIT column).
        public var audit: Bool { opts & UInt32(CAPABLE_OPT_NOAUDIT) == 0 }
        /// The check is made while setid bits are kept (bcc's INSETID column).
        public var insetid: Bool { opts & UInt32(CAPABLE_OPT_INSETID) != 0 }

        public init(task: TaskInfo, cap: Int32, ret: Int32, euid: UInt32 = 0, opts: UInt32 = 0, userns: UInt64 = 0,
                    kernelStackID: Int64 = -1, userStackID: Int64 = -1) {
            self.task = task
            self.cap = cap
            self.ret = ret
            self.euid = euid
            self.opts = opts
            self.userns = userns
            self.kernelStackID = kernelStackID
            self.userStackID = userStackID
        }

        public init?(_ raw: UnsafeRawBufferPointer) {
            guard raw.count >= MemoryLayout<capable_event>.size else { return nil }
            func field<T: BitwiseCopyable>(_ path: KeyPath<capable_event, T>) -> T {
                raw.loadUnaligned(fromByteOffset: MemoryLayout<capable_event>.offset(of: path)!, as: T.self)
            }
            task = TaskInfo(raw, at: MemoryLayout<capable_event>.offset(of: \capable_event.task)!)
            cap = field(\.cap)
            ret = field(\.ret)
            euid = field(\.euid)
            opts = field(\.opts)
            userns = field(\.userns_id)
            kernelStackID = field(\.kernel_stack_id)
            userStackID = field(\.user_stack_id)
        }
    }

    public final class Renderer {
        public let config: Config
        let clock: EventClock?
        let stacks: BPFMap?
        public let table: Table<Event>
        private let kernelSymbols: KernelSymbols?

        let containers: ContainerLabels<UInt64>?

        /// The hook sees cap_capable's option word: AUDIT (and with -x INSETID) are shown.
        let optionsKnown: Bool

        public convenience init(config: Config, clock: EventClock?, containers: ContainerLabels<UInt64>? = nil, optionsKnown: Bool = false) {
            self.init(config: config, clock: clock, stacks: nil, kernelSymbols: nil, containers: containers,
                      optionsKnown: optionsKnown)
        }
        private let userSymbols = UserSymbols()

        init(config: Config, clock: EventClock?, stacks: BPFMap?, kernelSymbols: KernelSymbols?, containers: ContainerLabels<UInt64>?,
             optionsKnown: Bool) {
            self.config = config
            self.optionsKnown = optionsKnown
            self.clock = clock
            self.stacks = stacks
            self.kernelSymbols = kernelSymbols
            self.containers = containers
            var columns: [Column<Event>] = [TaskColumns.clock(clock) { $0.task }]
            if let containers { columns.append(containers.column { $0.task.cgroupID }) }
            columns += [
                Column("UID", width: 6) { String($0.euid) },
                Column("PID", width: 6) { String($0.task.pid) },
                Column("TID", width: 6) { String($0.task.tid) },
                TaskColumns.comm { $0.task },
                Column("CAP", width: 4, .right) { String($0.cap) },
                Column("NAME", width: 20) { Capable.name($0.cap) },
            ]
            if optionsKnown {
                columns.append(Column("AUDIT", width: 5, .right) { $0.audit ? "1" : "0" })
                if config.extra { columns.append(Column("INSETID", width: 7, .right) { $0.insetid ? "1" : "0" }) }
            }
            if config.extra {
                columns.append(Column("VERDICT", width: 7) { $0.allowed ? "allow" : "deny" })
                columns.append(Column("USERNS", width: 0) { String($0.userns) })
            } else {
                columns.append(Column("VERDICT", width: 0) { $0.allowed ? "allow" : "deny" })
            }
            table = Table(columns)
        }

        /// The event's line, then its stacks (one indented frame per line).
        public func render(_ e: Event) -> [String] {
            let kernel = config.kernelStack ? frames(e.kernelStackID, kernel: true, pid: e.task.pid) : nil
            let user = config.userStack ? frames(e.userStackID, kernel: false, pid: e.task.pid) : nil
            if config.tracing.json {
                var j = JSONLine()
                e.task.addIdentity(to: &j, clock: clock)
                j.add("euid", e.euid)
                j.add("cap", e.cap)
                j.add("name", Capable.name(e.cap))
                j.add("ret", e.ret)
                j.add("verdict", e.allowed ? "allow" : "deny")
                if optionsKnown {
                    j.add("audit", e.audit)
                    j.add("insetid", e.insetid)
                }
                j.add("userns_id", e.userns)
                if let kernel { j.add("kernel_stack", strings: kernel) }
                if let user { j.add("user_stack", strings: user) }
                e.task.addPlace(to: &j, containers: containers)
                return [j.line]
            }
            var lines = [table.row(e)]
            for frame in (kernel ?? []) + (user ?? []) { lines.append("        " + Escape.terminal(frame)) }
            if (kernel != nil || user != nil) { lines.append("") }
            return lines
        }

        private func frames(_ id: Int64, kernel: Bool, pid: UInt32) -> [String] {
            guard id >= 0, let stacks else { return [] }
            var addresses = [UInt64](repeating: 0, count: Int(CAPABLE_STACK_DEPTH))
            guard stacks.lookup(UInt32(id), into: &addresses) else { return ["[stack lost]"] }
            let used = Array(addresses.prefix { $0 != 0 })
            if kernel, let kernelSymbols { return used.map { kernelSymbols.symbolize($0) } }
            return userSymbols.symbolize(used, pid: pid)
        }
    }
}
