@preconcurrency import Glibc
import BPFSupport

/// The pseudo file systems BPF tools depend on, mounted when missing.
public enum Mounts {
    public static let bpffsMagic: UInt = 0xCAFE_4A11
    public static let tracefsCandidates = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]

    /// The tracefs directory that has events/, or nil.
    public static var tracefs: String? {
        tracefsCandidates.first { access($0 + "/events", F_OK) == 0 }
    }

    /// Classic tracepoints (tp/...) need tracefs for their event ids. Mounts it at
    /// /sys/kernel/tracing when no tracefs is found.
    public static func ensureTracefs() throws(BPFError) {
        if tracefs != nil { return }
        let target = "/sys/kernel/tracing"
        if mount("tracefs", target, "tracefs", 0, nil) != 0 {
            let code = errno
            throw BPFError(operation: "mount tracefs", subject: target, errno: code,
                           remedy: "mount it: mount -t tracefs tracefs \(target)")
        }
    }

    /// Whether `path` is on a BPF file system.
    public static func isOnBPFFS(_ path: String) -> Bool {
        var fs = statfs()
        guard statfs(path, &fs) == 0 else { return false }
        return UInt(bitPattern: Int(fs.f_type)) == bpffsMagic
    }

    /// Mounts bpffs at /sys/fs/bpf when nothing is mounted there.
    public static func ensureBPFFS(_ path: String = "/sys/fs/bpf") throws(BPFError) {
        if isOnBPFFS(path) { return }
        if mount("bpf", path, "bpf", 0, nil) != 0 {
            let code = errno
            throw BPFError(operation: "mount bpffs", subject: path, errno: code,
                           remedy: "mount it: mount -t bpf bpf \(path)")
        }
    }

    /// Whether the kernel has the classic tracepoint category/name. Mounts tracefs if needed;
    /// without tracefs the question has no answer, and that is an error, not a "no".
    public static func hasTracepoint(_ category: String, _ name: String) throws(BPFError) -> Bool {
        try ensureTracefs()
        guard let root = tracefs else {
            throw BPFError(operation: "find tracefs", errno: ENOENT,
                           remedy: "mount it: mount -t tracefs tracefs /sys/kernel/tracing")
        }
        return access("\(root)/events/\(category)/\(name)", F_OK) == 0
    }
}

/// What the running process may do with BPF.
public enum Privileges {
    /// nil when the process can load and attach tracing programs; else the reason.
    public static func tracingProblem() -> String? {
        if geteuid() == 0 { return nil }
        // CAP_SYS_ADMIN (21), or CAP_BPF (39) with CAP_PERFMON (38).
        guard let caps = effectiveCapabilities() else { return "not root" }
        let has = { (bit: UInt64) in caps & (1 << bit) != 0 }
        if has(21) || (has(39) && has(38)) { return nil }
        return "not root"
    }

    public static func effectiveCapabilities() -> UInt64? {
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("CapEff:") {
                return UInt64(text.dropFirst(7).trimmingCharacters(), radix: 16)
            }
        }
        return nil
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).prefix(while: { $0 != "\n" && $0 != " " }))
    }
}
