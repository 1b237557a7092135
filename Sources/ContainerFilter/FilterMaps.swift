@preconcurrency import Glibc
import BPFKit

/// A pinned filter map (bcc's `--cgroupmap` or `--mntnsmap` layout), opened by path, whose
/// layout tells what its keys are. What `bpfbox filter` creates, fills and lists.
public struct FilterMap {
    public let path: String
    public let kind: FilterMapKind
    public let map: BPFMap
    public let info: MapInfo

    /// How to make a filter map at `path` (for error messages).
    public static func createHint(_ path: String) -> String {
        "bpfbox filter create \(path) --type cgroup|mntns"
    }

    /// Opens the map pinned at `given`; its layout must be one of the two filter layouts.
    public static func open(_ given: String) throws(FilterError) -> FilterMap {
        let (map, info, path) = try FilterMapKind.openHash(given, label: given, expected: FilterMapKind.filterLayouts,
                                                           create: createHint)
        guard let kind = FilterMapKind.of(info) else {
            throw FilterError("\(given): map has key size \(info.keySize) and value size \(info.valueSize), expected \(FilterMapKind.filterLayouts); it is not a filter map")
        }
        return FilterMap(path: path, kind: kind, map: map, info: info)
    }

    /// Creates a map of `kind` pinned at `given`, making its directory on bpffs if needed. A map
    /// of the same layout already pinned there is kept (`created` is false); any other is refused.
    public static func create(_ given: String, kind: FilterMapKind,
                              entries: UInt32) throws(FilterError) -> (map: FilterMap, created: Bool) {
        var path = given
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        var st = stat()
        if lstat(path, &st) == 0 {
            let existing = try open(path)
            guard existing.kind == kind else {
                throw FilterError("\(path): a map of the other layout (\(existing.kind.typeName), value \(existing.info.valueSize) bytes) is pinned there; remove it with: bpfbox filter destroy \(path), or choose another path")
            }
            return (existing, false)
        }
        try makeDirectory(parentDirectory(path), for: path)
        let map: BPFMap
        do {
            map = try BPFMap.create(type: MapInfo.hashType, name: kind.mapName, keySize: kind.keySize,
                                    valueSize: kind.valueSize, maxEntries: entries)
            try map.pin(path)
        } catch {
            throw FilterError(error.description)
        }
        return (try open(path), true)
    }

    /// Makes `dir` and its missing parents, which must be on bpffs (mounting bpffs at
    /// /sys/fs/bpf when `dir` is under it and nothing is mounted there).
    private static func makeDirectory(_ dir: String, for path: String) throws(FilterError) {
        if dir == "/sys/fs/bpf" || dir.hasPrefix("/sys/fs/bpf/") {
            do { try Mounts.ensureBPFFS() } catch { throw FilterError(error.description) }
        }
        var missing: [String] = []
        var existing = dir
        var st = stat()
        while stat(existing, &st) != 0 {
            missing.append(existing)
            existing = parentDirectory(existing)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR, Mounts.isOnBPFFS(existing) else {
            throw FilterError("\(path): not on a BPF filesystem (\(existing) is not bpffs); pin filter maps under /sys/fs/bpf, e.g. bpfbox filter create /sys/fs/bpf/\(FilterMapKind.cgroup.mapName) --type cgroup")
        }
        for directory in missing.reversed() where mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw FilterError("\(path): cannot create the directory \(directory): \(BPFError.errnoText(errno))")
        }
    }

    /// Adds `key` (a zero value, as bcc's documentation does); false when it was there already.
    public func add(_ key: UInt64) throws(FilterError) -> Bool {
        if contains(key) { return false }
        do {
            if kind == .cgroup { try map.update(key, UInt64(0)) } else { try map.update(key, UInt32(0)) }
        } catch where error.errno == E2BIG {
            throw FilterError("\(path): the map is full (\(info.maxEntries) entries); remove stale ids (bpfbox filter list \(path)) or create a larger one (--entries)")
        } catch {
            throw FilterError(error.description)
        }
        return true
    }

    /// Removes `key`; false when it was not there.
    public func remove(_ key: UInt64) throws(FilterError) -> Bool {
        do { return try map.delete(key) } catch { throw FilterError(error.description) }
    }

    public func contains(_ key: UInt64) -> Bool {
        // A u64 buffer holds either value size.
        map.lookup(key, as: UInt64.self) != nil
    }

    /// The keys, in ascending order.
    public var keys: [UInt64] { map.keys(UInt64.self).sorted() }
}
