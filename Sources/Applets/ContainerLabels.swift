@preconcurrency import Glibc
import ContainerFilter

/// Cgroup paths by id, from the cgroup2 tree; read again for an unknown id, at most once a second.
final class CgroupPaths {
    let mount: String
    private(set) var paths: [UInt64: String]
    private var readAt = monotonicNow()

    init(mount: String) {
        self.mount = mount
        paths = CgroupV2.tree(mount: mount)
    }

    /// The path below the mount ("/" for the root), or nil for a cgroup that is gone.
    func path(_ id: UInt64) -> String? {
        if let path = paths[id] { return path }
        guard monotonicNow() - readAt > 1_000_000_000 else { return nil }
        paths = CgroupV2.tree(mount: mount)
        readAt = monotonicNow()
        return paths[id]
    }
}

/// --containers: the container a cgroup belongs to (by cgroup id, or by cgroup path for the
/// applets whose rows are cgroups), resolved once per cgroup.
public final class ContainerLabels<Key: Hashable> {
    private let lookup: (Key) -> Container?
    private var cache: [Key: Container?] = [:]

    public init(lookup: @escaping (Key) -> Container?) { self.lookup = lookup }

    public func container(_ key: Key) -> Container? {
        if let known = cache[key] { return known }
        let found = lookup(key)
        cache[key] = found
        return found
    }

    /// The container's name, or its short id when the runtime keeps no name; nil on the host.
    func shortName(_ key: Key) -> String? {
        container(key).map { $0.name == $0.id ? $0.shortID : $0.name }
    }

    /// CONTAINER: the short name; "-" on the host.
    func column<Row>(_ key: @escaping (Row) -> Key) -> Column<Row> {
        Column("CONTAINER", width: 12) { [self] row in shortName(key(row)).map { Escape.terminal($0) } ?? "-" }
    }

    /// "container": {id, name, runtime, pod_uid, pod, namespace, cgroup}, or null on the host.
    func add(_ key: Key, to j: inout JSONLine) {
        guard let c = container(key) else {
            j.addRaw("container", "null")
            return
        }
        var o = JSONLine()
        o.add("id", c.id)
        o.add("name", c.name)
        o.add("runtime", c.runtime.rawValue)
        o.add("pod_uid", c.podUID)
        o.add("pod", c.podName)
        o.add("namespace", c.podNamespace ?? c.namespace)
        o.add("cgroup", c.cgroupPath)
        j.addRaw("container", o.line)
    }
}

/// systemd units are named by their cgroup path already; CONTAINER is for containers.
private func containerOnly(_ found: Container?) -> Container? {
    found.flatMap { $0.runtime == .systemd ? nil : $0 }
}

extension ContainerLabels where Key == UInt64 {
    /// Resolution on this host: cgroup id -> cgroup path -> container (runtime state files).
    public static func host() -> ContainerLabels {
        guard let mount = CgroupV2.mountPoint() else { return ContainerLabels { _ in nil } }
        let paths = CgroupPaths(mount: mount)
        let resolver = ContainerResolver()
        return ContainerLabels { id in containerOnly(paths.path(id).flatMap { resolver.resolve(cgroupPath: $0) }) }
    }
}

extension ContainerLabels where Key == String {
    /// Resolution on this host from a cgroup path below the cgroup2 mount.
    public static func host() -> ContainerLabels {
        let resolver = ContainerResolver()
        return ContainerLabels { path in containerOnly(resolver.resolve(cgroupPath: path)) }
    }
}
