import Synchronization
@preconcurrency import CLibbpf
@preconcurrency import Glibc

/// How a program reaches a kernel event, best first: a stable tracepoint, a BTF tracepoint, a
/// BPF trampoline (fentry/fexit: cheap, but refused under kernel lockdown), a kprobe.
public enum HookKind: String, Sendable, CaseIterable {
    case tracepoint
    case btfTracepoint = "tp_btf"
    case fentry
    case kprobe
}

extension HookKind {
    /// Kinds to pass over as if the kernel refused them, from `BPFBOX_REFUSE_HOOKS` (a comma-
    /// separated list such as `fentry` or `tracepoint,fentry`): a way to exercise the fallbacks
    /// on a kernel that has the better hook (scripts/smoke.sh does).
    public static var refusedByEnvironment: Set<HookKind> {
        guard let value = getenv("BPFBOX_REFUSE_HOOKS") else { return [] }
        return Set(String(cString: value).split(separator: ",").compactMap { HookKind(rawValue: String($0)) })
    }
}

/// One way to hook an event: its kind, what it attaches to (`category/name` for a tracepoint,
/// a kernel function otherwise) and the object's programs that implement it.
public struct HookVariant: Sendable, Equatable {
    public let kind: HookKind
    public let target: String
    public let programs: [String]

    public init(_ kind: HookKind, _ target: String, programs: [String]) {
        self.kind = kind
        self.target = target
        self.programs = programs
    }

    public var label: String { "\(kind.rawValue) \(target)" }
}

/// An event an applet needs, with the ways to hook it in order of preference. At load time
/// the first variant the running kernel offers is kept and the programs of the others are
/// turned off (`BPFObject.chooseHooks`).
public struct Hook: Sendable {
    public let name: String
    public let variants: [HookVariant]

    public init(_ name: String, _ variants: [HookVariant]) {
        self.name = name
        self.variants = variants
    }
}

/// What the running kernel offers, asked without loading anything of the applet's.
public enum KernelFeatures {
    /// Whether `variant` can be attached here: its tracepoint exists (tracefs), its BTF
    /// tracepoint or function is in the kernel's BTF, and for kprobes the kernel has them.
    /// fentry may still be refused at load (lockdown): the tracer then falls back.
    public static func offers(_ variant: HookVariant) throws(BPFError) -> Bool {
        switch variant.kind {
        case .tracepoint:
            let parts = variant.target.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return false }
            return try Mounts.hasTracepoint(parts[0], parts[1])
        case .btfTracepoint:
            return KernelBTF.shared?.has("btf_trace_\(variant.target)", kind: 8 /* BTF_KIND_TYPEDEF */) ?? false
        case .fentry:
            return KernelBTF.shared?.has(variant.target, kind: 12 /* BTF_KIND_FUNC */) ?? false
        case .kprobe:
            return hasKprobes && (KernelBTF.shared?.has(variant.target, kind: 12) ?? false)
        }
    }

    /// kprobes through perf (the kprobe PMU, what libbpf uses) or tracefs's kprobe_events.
    public static var hasKprobes: Bool {
        if access("/sys/bus/event_source/devices/kprobe/type", F_OK) == 0 { return true }
        return Mounts.tracefs.map { access($0 + "/kprobe_events", F_OK) == 0 } ?? false
    }

    /// The number of parameters of kernel function `name` (from BTF), nil when unknown.
    public static func parameterCount(_ name: String) -> Int? {
        KernelBTF.shared?.parameterCount(name)
    }

    /// Whether the kernel's BTF has a type of this name and BTF kind (4 struct, 8 typedef, 12 func).
    public static func hasBTFType(_ name: String, kind: UInt32) -> Bool {
        KernelBTF.shared?.has(name, kind: kind) ?? false
    }

    /// Frees the kernel BTF read for the checks above (read again if a check comes later).
    public static func releaseKernelBTF() { KernelBTF.release() }

    /// Whether the kernel has BPF ring buffers (Linux 5.8 and later).
    public static var hasRingBuffer: Bool {
        libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nil) == 1
    }

    /// Whether the kernel has the cgroup iterator (iter/cgroup, Linux 6.1 and later).
    public static var hasCgroupIterator: Bool {
        KernelBTF.shared?.has("bpf_iter__cgroup", kind: 4 /* BTF_KIND_STRUCT */) ?? false
    }

    /// Whether tracing programs may call bpf_get_current_ancestor_cgroup_id (not on 5.10).
    public static let tracingHasAncestorCgroupHelper: Bool =
        libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_get_current_ancestor_cgroup_id, nil) == 1
}

/// The kernel's own BTF (/sys/kernel/btf/vmlinux), read when first needed and kept until the
/// tracer has loaded (`KernelFeatures.releaseKernelBTF`): parsed, it takes several MiB.
final class KernelBTF: @unchecked Sendable {
    private static let cache = Mutex<KernelBTF??>(nil)

    static var shared: KernelBTF? {
        cache.withLock { cached in
            if let loaded = cached { return loaded }
            let loaded = KernelBTF()
            cached = .some(loaded)
            return loaded
        }
    }

    static func release() { cache.withLock { $0 = nil } }

    private let btf: OpaquePointer

    private init?() {
        guard let btf = btf__load_vmlinux_btf() else { return nil }
        self.btf = btf
    }

    deinit { btf__free(btf) }

    func has(_ name: String, kind: UInt32) -> Bool {
        btf__find_by_name_kind(btf, name, kind) > 0
    }

    func parameterCount(_ name: String) -> Int? {
        let id = btf__find_by_name_kind(btf, name, 12 /* BTF_KIND_FUNC */)
        guard id > 0, let function = btf__type_by_id(btf, UInt32(id)),
              let proto = btf__type_by_id(btf, function.pointee.type) else { return nil }
        return Int(btf_vlen(proto))
    }
}

/// The variant kept for a hook.
public struct HookChoice: Sendable {
    public let hook: String
    public let variant: HookVariant
}

/// No variant of a hook can work on this kernel.
public struct HookUnavailable: Error, CustomStringConvertible {
    public let hook: Hook
    public let refused: Set<HookKind>

    public var description: String {
        let tried = hook.variants.map { "\($0.label) (\(refused.contains($0.kind) ? "refused" : "absent"))" }
        return "this kernel offers no way to hook \(hook.name): tried \(tried.joined(separator: ", ")); "
            + "see docs/kernels.md for what each applet needs"
    }
}

extension BPFObject {
    /// For each hook, keeps the first variant the kernel offers whose kind is not in `refused`,
    /// and turns off the programs of every other variant (before load).
    public func chooseHooks(_ hooks: [Hook], refusing refused: Set<HookKind> = []) throws -> [HookChoice] {
        var choices: [HookChoice] = []
        for hook in hooks {
            var chosen: HookVariant?
            for variant in hook.variants where chosen == nil && !refused.contains(variant.kind) {
                if try KernelFeatures.offers(variant) { chosen = variant }
            }
            guard let chosen else { throw HookUnavailable(hook: hook, refused: refused) }
            for variant in hook.variants {
                for name in variant.programs { try program(name).autoload = variant == chosen }
            }
            choices.append(HookChoice(hook: hook.name, variant: chosen))
        }
        return choices
    }
}
