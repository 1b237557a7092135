@preconcurrency import Glibc
import BPFKit
import BPFSupport
import CLibbpf
import ContainerFilter

/// `bpfbox doctor`: what this machine offers bpfbox, one line per check with its fix. Reads the
/// system and changes nothing: it mounts nothing (lockdown is read in a private mount namespace
/// of a child process) and loads no program.
public enum Doctor {
    public static let spec = CommandSpec(
        name: "doctor",
        summary: "Check what this machine offers bpfbox: privileges, kernel, mounts, hooks per applet.",
        options: [
            OptionSpec(nil, "json", help: "one JSON object per check (NDJSON)"),
        ],
        examples: [
            ("bpfbox doctor", "every check, one line each"),
            ("bpfbox doctor --json | jq -c 'select(.status != \"ok\")'", "what needs attention"),
        ]
    )

    public enum Status: String, Sendable { case ok, warn, fail }

    public struct Check: Sendable {
        public let name: String
        public let status: Status
        public let detail: String
        /// What to do about a warn or fail.
        public let fix: String?
        /// Set on the per-applet checks.
        public let applet: String?

        init(_ name: String, _ status: Status, _ detail: String, fix: String? = nil, applet: String? = nil) {
            self.name = name
            self.status = status
            self.detail = detail
            self.fix = fix
            self.applet = applet
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("doctor", spec: spec, arguments: arguments) { parsed in
            if let extra = parsed.positionals.first { throw UsageError("unexpected argument '\(Escape.terminal(extra))'") }
            let checks = run()
            let output = Output()
            for check in checks {
                if parsed.has("json") {
                    var j = JSONLine()
                    j.add("check", check.name)
                    j.add("status", check.status.rawValue)
                    j.add("detail", check.detail)
                    j.add("fix", check.fix)
                    if let applet = check.applet { j.add("applet", applet) }
                    output.line(j.line)
                } else {
                    var line = check.status.rawValue.padding(5) + " " + check.name.padding(13) + " " + check.detail
                    if let fix = check.fix { line += "; " + fix }
                    output.line(line)
                }
            }
            output.flush()
            // Non-zero when an applet cannot run here.
            return checks.contains { $0.status == .fail } ? 1 : 0
        }
    }

    /// Every check, machine first, then the applets.
    public static func run() -> [Check] {
        let mounts = MountTable()
        let lockdown = Lockdown.read()
        var checks = [privileges(), kernel(), btf(), ringBuffer(), mounts.bpffs, mounts.tracefs, mounts.cgroup,
                      lockdownCheck(lockdown), kprobes(), runtimes()]
        checks += applets(tracefs: mounts.tracefsPath, lockdown: lockdown)
        return checks
    }

    // MARK: the machine

    static func privileges() -> Check {
        if geteuid() == 0 { return Check("privileges", .ok, "root") }
        let caps = Privileges.effectiveCapabilities() ?? 0
        let names = [(21, "CAP_SYS_ADMIN"), (38, "CAP_PERFMON"), (39, "CAP_BPF"), (12, "CAP_NET_ADMIN")]
        let held = names.filter { caps & (1 << UInt64($0.0)) != 0 }.map(\.1)
        let missing = names.filter { caps & (1 << UInt64($0.0)) == 0 }.map(\.1)
        let detail = "uid \(geteuid()), capabilities: \(held.isEmpty ? "none" : held.joined(separator: " "))"
        if Privileges.tracingProblem() != nil {
            return Check("privileges", .fail, detail, fix: "run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (setcap or a container's capabilities)")
        }
        return missing.contains("CAP_NET_ADMIN")
            ? Check("privileges", .warn, detail, fix: "skbcount and sockmap attach to cgroups: they also need CAP_NET_ADMIN")
            : Check("privileges", .ok, detail)
    }

    static func kernel() -> Check {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        let version = (numbers.first ?? 0, numbers.dropFirst().first ?? 0)
        let detail = "Linux \(release) (\(machine))"
        if version < (5, 8) {
            return Check("kernel", .fail, detail, fix: "bpfbox needs Linux 5.8 or later (BPF ring buffers); see docs/kernels.md")
        }
        return Check("kernel", .ok, detail)
    }

    static func btf() -> Check {
        access("/sys/kernel/btf/vmlinux", R_OK) == 0
            ? Check("btf", .ok, "/sys/kernel/btf/vmlinux")
            : Check("btf", .fail, "/sys/kernel/btf/vmlinux is missing", fix: "bpfbox needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    }

    static func ringBuffer() -> Check {
        KernelFeatures.hasRingBuffer
            ? Check("ring buffer", .ok, "BPF_MAP_TYPE_RINGBUF")
            : Check("ring buffer", .fail, "the kernel refused a ring buffer (Linux 5.8+, and privileges)", fix: "run as root on Linux 5.8 or later")
    }

    /// The mounts bpfbox uses, from /proc/self/mountinfo.
    struct MountTable {
        let entries: [(point: String, type: String)]

        init() {
            entries = (readFile("/proc/self/mountinfo") ?? "").split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4 else { return nil }
                return (CgroupV2.unescapeMountField(String(fields[4])), String(fields[dash + 1]))
            }
        }

        func points(_ type: String) -> [String] { entries.filter { $0.type == type }.map(\.point) }

        var tracefsPath: String? { points("tracefs").first }

        /// ok with where it is mounted, or a warning with the fix.
        private func mounted(_ type: String, as name: String, missing: String, fix: String) -> Check {
            let points = points(type)
            return points.isEmpty ? Check(name, .warn, missing, fix: fix) : Check(name, .ok, points.joined(separator: " "))
        }

        var bpffs: Check {
            mounted("bpf", as: "bpffs", missing: "no BPF file system is mounted",
                    fix: "pins (--pin, bpfbox filter create) need one: mount -t bpf bpf /sys/fs/bpf (bpfbox mounts it there when it pins)")
        }

        var tracefs: Check {
            mounted("tracefs", as: "tracefs", missing: "not mounted",
                    fix: "applets with tracepoint hooks mount it at /sys/kernel/tracing when they start; to do it now: mount -t tracefs tracefs /sys/kernel/tracing")
        }

        var cgroup: Check {
            let v2 = points("cgroup2"), v1 = points("cgroup")
            guard let first = v2.first else {
                return Check("cgroup v2", .fail, "no cgroup2 file system is mounted",
                             fix: "mount one (mount -t cgroup2 none /sys/fs/cgroup); the container filters and the cgroup applets need it")
            }
            let mode = v1.isEmpty ? "unified" : "hybrid: \(v1.count) cgroup v1 hierarchies beside it"
            return Check("cgroup v2", .ok, "\(first) (\(mode))")
        }
    }

    static func lockdownCheck(_ mode: String?) -> Check {
        guard let mode else {
            return Check("lockdown", .warn, "unknown (no LSM lockdown file)", fix: "if fentry/fexit are refused, bpfbox falls back to tracepoints and kprobes")
        }
        return mode == "none"
            ? Check("lockdown", .ok, "none")
            : Check("lockdown", .warn, "\(mode): the kernel refuses fentry/fexit programs",
                    fix: "bpfbox uses tracepoints, then kprobes, instead (the applets below say which)")
    }

    static func kprobes() -> Check {
        KernelFeatures.hasKprobes
            ? Check("kprobes", .ok, "available")
            : Check("kprobes", .warn, "not available (CONFIG_KPROBES off, or no tracefs)", fix: "only needed where a tracepoint is missing; the applets below say whether they need one")
    }

    static func runtimes() -> Check {
        let known = [("runc", "/run/runc"), ("containerd", "/run/containerd"), ("docker", "/run/docker"),
                     ("cri-o", "/run/crio"), ("podman", "/run/libpod"), ("kubelet", "/var/lib/kubelet/pods")]
        let found = known.filter { access($0.1, F_OK) == 0 }.map(\.0)
        return Check("runtimes", .ok, found.isEmpty ? "none found (containers are still found by their cgroups)" : found.joined(separator: " "))
    }

    /// The lockdown mode ("none", "integrity", "confidentiality"), read from securityfs mounted in a
    /// private mount namespace of a child process, so that nothing changes for the system.
    enum Lockdown {
        static func read() -> String? {
            var buffer = [CChar](repeating: 0, count: 256)
            guard bpfsupport_read_lockdown(&buffer, Int32(buffer.count)) > 0 else { return nil }
            return mode(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }

        /// "[none] integrity confidentiality" -> "none".
        static func mode(_ text: String) -> String? {
            guard let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]"), open < close else { return nil }
            return String(text[text.index(after: open)..<close])
        }
    }

    // MARK: the applets

    /// For each tracing applet, the hooks it would use here.
    static func applets(tracefs: String?, lockdown: String?) -> [Check] {
        let probe = HookProbe(tracefs: tracefs, fentryRefused: lockdown.map { $0 != "none" } ?? false)
        var checks: [Check] = []
        func fixed(_ applet: String, _ variants: [HookVariant], fix: String) {
            let missing = variants.filter { !probe.offers($0) }
            checks.append(missing.isEmpty
                ? Check(applet, .ok, variants.map(\.label).joined(separator: ", ") + probe.note, applet: applet)
                : Check(applet, .fail, "missing: " + missing.map(\.label).joined(separator: ", "), fix: fix, applet: applet))
        }
        func chosen(_ applet: String, _ hooks: [Hook]) {
            var parts: [String] = []
            var unavailable: [String] = []
            for hook in hooks {
                if let variant = hook.variants.first(where: probe.offers) {
                    parts.append(variant.label + (variant == hook.variants.first ? "" : " (fallback)"))
                } else {
                    unavailable.append(hook.name)
                }
            }
            checks.append(unavailable.isEmpty
                ? Check(applet, .ok, parts.joined(separator: ", ") + probe.note, applet: applet)
                : Check(applet, .fail, "no hook for: " + unavailable.joined(separator: ", "),
                        fix: "this kernel has neither the tracepoint nor fentry/kprobes for it (docs/kernels.md)", applet: applet))
        }
        func syscalls(_ names: [String]) -> [HookVariant] {
            names.flatMap { name in ["enter", "exit"].map { HookVariant(.tracepoint, "syscalls/sys_\($0)_\(name)", programs: []) } }
        }
        fixed("execsnoop", syscalls(["execve", "execveat"]) + [HookVariant(.btfTracepoint, "sched_process_exec", programs: [])],
              fix: "needs the syscall tracepoints (CONFIG_FTRACE_SYSCALLS) and BTF tracepoints")
        fixed("opensnoop", syscalls(["openat", "openat2"]),
              fix: "needs the syscall tracepoints (CONFIG_FTRACE_SYSCALLS)")
        chosen("capable", Capable.hooks)
        fixed("tcpconnect", [HookVariant(.tracepoint, "sock/inet_sock_set_state", programs: [])], fix: "needs the sock/inet_sock_set_state tracepoint (Linux 4.16+)")
        chosen("tcptop", TcpTop.hooks(recvmsgNonblock: (KernelFeatures.parameterCount("tcp_recvmsg") ?? 5) == 6))
        checks.append(KernelFeatures.hasCgroupIterator
            ? Check("skbcount", .ok, "cgroup_skb ingress and egress, iter/cgroup (--pin)", applet: "skbcount")
            : Check("skbcount", .warn, "cgroup_skb ingress and egress; no iter/cgroup", fix: "--pin needs Linux 6.1 (the cgroup iterator)", applet: "skbcount"))
        checks.append(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, nil) == 1
            ? Check("sockmap", .ok, "sock_ops on the cgroup, sk_msg on a SOCKHASH", applet: "sockmap")
            : Check("sockmap", .fail, "the kernel refused a SOCKHASH", fix: "needs Linux 4.18+ with CONFIG_BPF_STREAM_PARSER, and root", applet: "sockmap"))
        return checks
    }

    /// Whether a hook is there, without mounting anything: tracepoints in tracefs when it is
    /// mounted, else in the kernel's BTF (a `btf_trace_<event>` type for every ordinary event;
    /// syscall events then count as present when the syscall tracing types are); fentry is
    /// counted out under lockdown.
    struct HookProbe {
        let tracefs: String?
        let fentryRefused: Bool

        var note: String { tracefs == nil ? " (tracepoints read from BTF: tracefs is not mounted)" : "" }

        func offers(_ variant: HookVariant) -> Bool {
            switch variant.kind {
            case .tracepoint:
                if let tracefs { return access("\(tracefs)/events/\(variant.target)", F_OK) == 0 }
                let parts = variant.target.split(separator: "/")
                guard parts.count == 2 else { return false }
                if parts[0] == "syscalls" {
                    return KernelFeatures.hasBTFType("trace_event_raw_sys_enter", kind: 4)
                }
                return KernelFeatures.hasBTFType("btf_trace_\(parts[1])", kind: 8)
            case .fentry:
                return !fentryRefused && ((try? KernelFeatures.offers(variant)) ?? false)
            case .btfTracepoint, .kprobe:
                return (try? KernelFeatures.offers(variant)) ?? false
            }
        }
    }
}
