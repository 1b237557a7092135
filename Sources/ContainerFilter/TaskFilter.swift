@preconcurrency import Glibc
import BPFKit
import BPFSupport

/// A filter problem, said in one line that names the cause and the remedy.
public struct FilterError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The two pinned-map filters, with bcc's layouts.
public enum FilterMapKind: Sendable {
    case cgroup
    case mntns

    public var option: String { self == .cgroup ? "--cgroupmap" : "--mntnsmap" }
    /// The map's name inside every bpfbox BPF object.
    public var objectMapName: String { self == .cgroup ? "cgroup_filter" : "mntns_filter" }
    public var keySize: UInt32 { 8 }
    public var valueSize: UInt32 { self == .cgroup ? 8 : 4 }
    var keyMeaning: String { self == .cgroup ? "u64 cgroup id" : "u64 mount namespace id" }
    var valueMeaning: String { self == .cgroup ? "u64" : "u32" }

    /// The name bpfbox and the bpftool hints give maps of this layout.
    public var mapName: String { self == .cgroup ? "cgroupset" : "mntnsset" }
    /// The word for this layout in `bpfbox filter --type`.
    public var typeName: String { self == .cgroup ? "cgroup" : "mntns" }

    /// The bpftool command that creates a map of this layout at `path`.
    public func createCommand(_ path: String) -> String {
        "bpftool map create \(path) type hash key 8 value \(valueSize) entries 1024 name \(mapName)"
    }

    /// Opens the map pinned at `path` and checks that it has this layout.
    public func openPinned(_ given: String) throws(FilterError) -> BPFMap {
        let label = "\(option) \(given)"
        let (map, info, path) = try Self.openHash(given, label: label, expected: layout, create: createCommand)
        guard info.keySize == keySize else {
            throw FilterError("\(label): map has key size \(info.keySize), expected \(keySize) (\(keyMeaning)); remove it (rm \(path)) and recreate it with: \(createCommand(path))")
        }
        guard info.valueSize == valueSize else {
            let other: FilterMapKind = self == .cgroup ? .mntns : .cgroup
            if info.valueSize == other.valueSize {
                throw FilterError("\(label): map has value size \(info.valueSize), expected \(valueSize) (\(valueMeaning)); it has the \(other.option) layout: give it to \(other.option), or make a \(option) map with: \(createCommand("/sys/fs/bpf/NAME"))")
            }
            throw FilterError("\(label): map has value size \(info.valueSize), expected \(valueSize) (\(valueMeaning)); remove it (rm \(path)) and recreate it with: \(createCommand(path))")
        }
        return map
    }

    /// The layout a pinned map has, when it is one of the two filter layouts.
    public static func of(_ info: MapInfo) -> FilterMapKind? {
        guard info.type == MapInfo.hashType, info.keySize == 8 else { return nil }
        return [FilterMapKind.cgroup, .mntns].first { $0.valueSize == info.valueSize }
    }

    /// Opens the pinned hash map at `given`; `expected` describes the layout wanted, `create`
    /// says how to make one at a path.
    static func openHash(_ given: String, label: String, expected layout: String,
                         create: (String) -> String) throws(FilterError) -> (map: BPFMap, info: MapInfo, path: String) {
        var path = given
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        var st = stat()
        if stat(path, &st) != 0 {
            let code = errno
            if code == ENOENT {
                let dir = parentDirectory(path)
                var dirStat = stat()
                if stat(dir, &dirStat) != 0, dir.hasPrefix("/sys/fs/bpf/") {
                    throw FilterError("\(label): no such map, and its directory \(dir) does not exist; create one with: mkdir -p \(dir) && \(create(path))")
                }
                if stat(dir, &dirStat) != 0 || !Mounts.isOnBPFFS(dir) {
                    throw FilterError("\(label): no such map, and \(dir) is not on a BPF filesystem; pin maps under /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf if it is not mounted), e.g. \(create("/sys/fs/bpf/NAME"))")
                }
                throw FilterError("\(label): no map is pinned there; create one with: \(create(path))")
            }
            throw FilterError("\(label): \(BPFError.errnoText(code))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let example = Mounts.isOnBPFFS(path) ? path + "/NAME" : "/sys/fs/bpf/NAME"
            throw FilterError("\(label): is a directory, not a pinned map; give the map's path, e.g. \(create(example))")
        }
        guard Mounts.isOnBPFFS(path) else {
            throw FilterError("\(label): not on a BPF filesystem (bpffs); pin the map under /sys/fs/bpf, e.g. \(create("/sys/fs/bpf/NAME"))")
        }
        let map: BPFMap
        do {
            map = try BPFMap.openPinned(path)
        } catch {
            if error.errno == EACCES || error.errno == EPERM {
                throw FilterError("\(label): no permission to open the pinned map (\(BPFError.errnoText(error.errno))); run as root (or with CAP_BPF)")
            }
            throw FilterError("\(label): not a pinned BPF object (the kernel says: \(BPFError.errnoText(error.errno))); expected a map with \(layout)")
        }
        let info: MapInfo
        do {
            guard map.isMap else { throw BPFError(operation: "check", errno: EINVAL) }
            info = try map.info()
        } catch {
            throw FilterError("\(label): the pinned object is not a BPF map (\(map.objectKind)); expected \(layout)")
        }
        guard info.type == MapInfo.hashType else {
            throw FilterError("\(label): map type is \(info.typeName), expected \(layout)")
        }
        return (map, info, path)
    }

    var layout: String { "hash, key 8 bytes (\(keyMeaning)), value \(valueSize) bytes" }
    static var filterLayouts: String { "hash, key 8 bytes, value 8 (--cgroupmap) or 4 bytes (--mntnsmap)" }
}

func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let dir = String(path[..<slash])
    return dir.isEmpty ? "/" : dir
}

/// What every tracing applet filters on in the kernel, before an event is built:
/// process id, uid, and the container maps (AND when several are given).
public struct TaskFilter: Sendable {
    public var pid: UInt32?
    public var uid: UInt32?
    public var cgroupMapPath: String?
    public var mntnsMapPath: String?
    /// Trace only this process and the processes it forks (a command bpfbox started).
    public var tree: UInt32?
    /// --cgroup, --container: cgroups whose tasks (their own and their descendants') are kept.
    public var subtrees: [CgroupSubtree] = []
    /// --mntns-of: mount namespaces whose tasks are kept.
    public var mountNamespaces: [UInt64] = []

    public init(pid: UInt32? = nil, uid: UInt32? = nil, cgroupMapPath: String? = nil, mntnsMapPath: String? = nil,
                tree: UInt32? = nil) {
        self.tree = tree
        self.pid = pid
        self.uid = uid
        self.cgroupMapPath = cgroupMapPath
        self.mntnsMapPath = mntnsMapPath
    }

    /// Opens and checks the pinned maps. Done before anything is loaded, so that a wrong map is
    /// reported as such, never as a verifier failure.
    public func openMaps() throws(FilterError) -> OpenedTaskFilter {
        OpenedTaskFilter(filter: self,
                         cgroupMap: try cgroupMapPath.map { (p) throws(FilterError) in try FilterMapKind.cgroup.openPinned(p) },
                         mntnsMap: try mntnsMapPath.map { (p) throws(FilterError) in try FilterMapKind.mntns.openPinned(p) })
    }
}

public struct OpenedTaskFilter {
    public let filter: TaskFilter
    public let cgroupMap: BPFMap?
    public let mntnsMap: BPFMap?

    /// Configures `object` (before load): the filter constants and the pinned maps.
    public func apply(to object: BPFObject) throws(BPFError) {
        var config = bpfbox_filter_config()
        if let pid = filter.pid { config.tgid = pid; config.by_tgid = 1 }
        if let uid = filter.uid { config.uid = uid; config.by_uid = 1 }
        if let cgroupMap {
            try object.map(FilterMapKind.cgroup.objectMapName).reuse(cgroupMap)
            config.by_cgroup = 1
        }
        if let mntnsMap {
            try object.map(FilterMapKind.mntns.objectMapName).reuse(mntnsMap)
            config.by_mntns = 1
        }
        if filter.tree != nil { config.by_tree = 1 }
        config.subtrees = UInt8(filter.subtrees.count)
        if !filter.subtrees.isEmpty && !KernelFeatures.tracingHasAncestorCgroupHelper { config.walk_ancestors = 1 }
        withUnsafeMutableBytes(of: &config.subtree_level) { levels in
            withUnsafeMutableBytes(of: &config.subtree_id) { ids in
                for (index, subtree) in filter.subtrees.enumerated() {
                    levels.storeBytes(of: subtree.level, toByteOffset: index * 4, as: UInt32.self)
                    ids.storeBytes(of: subtree.id, toByteOffset: index * 8, as: UInt64.self)
                }
            }
        }
        config.namespaces = UInt8(filter.mountNamespaces.count)
        withUnsafeMutableBytes(of: &config.mntns_id) { ids in
            for (index, id) in filter.mountNamespaces.enumerated() {
                ids.storeBytes(of: id, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        // The followers cost a program run per fork and exit: load them only when they are used.
        for name in ["bpfbox_follow_fork", "bpfbox_follow_exit"] {
            if let follower = try? object.program(name) { follower.autoload = filter.tree != nil }
        }
        try object.setConstant("bpfbox_filter_cfg", config)
    }

    /// After load: seeds the process tree with the started command (before it runs).
    public func seed(_ object: BPFObject) throws(BPFError) {
        guard let root = filter.tree else { return }
        try object.map("traced_tgids").opened().update(root, UInt8(1))
    }
}

/// A cgroup-v2 directory selected with its descendants: its id and its depth below the root.
public struct CgroupSubtree: Sendable, Equatable {
    public let path: String   // relative to the cgroup2 mount
    public let id: UInt64
    public let level: UInt32  // 0 for the root

    public init(path: String, id: UInt64) {
        self.path = path
        self.id = id
        level = UInt32(path.split(separator: "/").count)
    }

    /// At most this many subtrees, and this many mount namespaces, per run.
    public static let limit = Int(BPFBOX_MAX_SELECTORS)
}
