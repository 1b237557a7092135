@preconcurrency import CLibbpf
@preconcurrency import Glibc

/// The kernel's description of a map.
public struct MapInfo: Sendable, Equatable {
    public let type: UInt32
    public let keySize: UInt32
    public let valueSize: UInt32
    public let maxEntries: UInt32
    public let id: UInt32
    public let name: String

    public var typeName: String { MapInfo.typeName(type) }

    public static func typeName(_ type: UInt32) -> String {
        if let cName = libbpf_bpf_map_type_str(bpf_map_type(type)) { return String(cString: cName) }
        return "type \(type)"
    }
    public static var hashType: UInt32 { BPF_MAP_TYPE_HASH.rawValue }
}

/// A map reached through a file descriptor: a pinned map, or an object's map after load.
public final class BPFMap {
    public let fd: Int32
    public let label: String
    private let ownsDescriptor: Bool
    private let owner: AnyObject?

    init(fd: Int32, label: String, owns: Bool, owner: AnyObject? = nil) {
        self.fd = fd
        self.label = label
        self.ownsDescriptor = owns
        self.owner = owner
    }

    deinit { if ownsDescriptor { close(fd) } }

    /// Opens the map pinned at `path` (bpf_obj_get).
    public static func openPinned(_ path: String) throws(BPFError) -> BPFMap {
        let fd = try libbpfCall("bpf_obj_get", subject: path) { bpf_obj_get(path) }
        return BPFMap(fd: fd, label: path, owns: true)
    }

    /// Creates a map (bpf_map_create). It lives while a descriptor or a pin refers to it.
    public static func create(type: UInt32, name: String, keySize: UInt32, valueSize: UInt32,
                              maxEntries: UInt32) throws(BPFError) -> BPFMap {
        let fd = try libbpfCall("bpf_map_create", subject: name) {
            bpf_map_create(bpf_map_type(type), name, keySize, valueSize, maxEntries, nil)
        }
        return BPFMap(fd: fd, label: name, owns: true)
    }

    /// What the descriptor refers to: "bpf-map", "bpf-prog", "bpf-link" ... (from /proc/self/fd).
    public var objectKind: String {
        var buffer = [CChar](repeating: 0, count: 128)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return "unknown" }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.hasPrefix("anon_inode:") ? String(target.dropFirst("anon_inode:".count)) : target
    }

    /// Whether the descriptor is a map (a pinned path may hold a program or a link instead).
    public var isMap: Bool { objectKind == "bpf-map" }

    /// Pins the map at `path` (on bpffs).
    public func pin(_ path: String) throws(BPFError) {
        let fd = self.fd
        try libbpfCall("bpf_obj_pin", subject: path) { bpf_obj_pin(fd, path) }
    }

    /// Type, key and value sizes, as the kernel reports them (EINVAL: not a map).
    public func info() throws(BPFError) -> MapInfo {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let fd = self.fd
        try libbpfCall("bpf_obj_get_info_by_fd", subject: label) { bpf_obj_get_info_by_fd(fd, &info, &length) }
        let name = withUnsafeBytes(of: info.name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return MapInfo(type: info.type, keySize: info.key_size, valueSize: info.value_size,
                       maxEntries: info.max_entries, id: info.id, name: name)
    }

    public func lookup<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, as _: Value.Type = Value.self) -> Value? {
        var key = key
        var value = unsafe_zeroed(Value.self)
        let ret = bpf_map_lookup_elem(fd, &key, &value)
        return ret == 0 ? value : nil
    }

    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, _ value: Value) throws(BPFError) {
        var key = key, value = value
        let fd = self.fd
        try libbpfCall("bpf_map_update_elem", subject: label) { bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)) }
    }

    /// Removes `key`; false when it was not there.
    @discardableResult
    public func delete<Key: BitwiseCopyable>(_ key: Key) throws(BPFError) -> Bool {
        var key = key
        let fd = self.fd
        do {
            try libbpfCall("bpf_map_delete_elem", subject: label) { bpf_map_delete_elem(fd, &key) }
            return true
        } catch where error.errno == ENOENT {
            return false
        }
    }

    /// Every key, in the kernel's order.
    public func keys<Key: BitwiseCopyable>(_: Key.Type = Key.self) -> [Key] {
        var keys: [Key] = []
        var current = unsafe_zeroed(Key.self)
        var next = unsafe_zeroed(Key.self)
        var ret = bpf_map_get_next_key(fd, nil, &next)
        while ret == 0 {
            keys.append(next)
            current = next
            ret = bpf_map_get_next_key(fd, &current, &next)
            if keys.count > 1 << 24 { break }
        }
        return keys
    }

    /// The sum over CPUs of a per-CPU u64 slot.
    public func perCPUSum(_ index: UInt32) -> UInt64 {
        let cpus = Int(max(libbpf_num_possible_cpus(), 1))
        var values = [UInt64](repeating: 0, count: cpus)
        var key = index
        guard bpf_map_lookup_elem(fd, &key, &values) == 0 else { return 0 }
        return values.reduce(0, &+)
    }
}

@inline(__always)
func unsafe_zeroed<T: BitwiseCopyable>(_: T.Type) -> T {
    withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { buffer in
        let raw = UnsafeMutableRawPointer(buffer.baseAddress!)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        return raw.load(as: T.self)
    }
}

/// A map of a BPFObject: configurable before load, usable as a BPFMap after.
public struct ObjectMap {
    let object: BPFObject
    let handle: OpaquePointer
    public let name: String

    public func setMaxEntries(_ count: UInt32) throws(BPFError) {
        let handle = self.handle
        try libbpfCall("bpf_map__set_max_entries", subject: "\(object.name).\(name)") {
            bpf_map__set_max_entries(handle, count)
        }
    }

    /// Makes the object use `map` (for instance a pinned one) instead of creating its own.
    public func reuse(_ map: BPFMap) throws(BPFError) {
        let handle = self.handle
        try libbpfCall("bpf_map__reuse_fd", subject: map.label) { bpf_map__reuse_fd(handle, map.fd) }
    }

    /// The loaded map. Valid while the object lives.
    public func opened() throws(BPFError) -> BPFMap {
        let fd = bpf_map__fd(handle)
        guard fd >= 0 else {
            throw BPFError(operation: "bpf_map__fd", subject: "\(object.name).\(name)", errno: EBADF,
                           remedy: "the object is not loaded")
        }
        return BPFMap(fd: fd, label: "\(object.name).\(name)", owns: false, owner: object)
    }
}

extension BPFMap {
    /// Looks `key` up into `values` (sized by the caller to the map's value size); false if absent.
    public func lookup<Key: BitwiseCopyable, Element: BitwiseCopyable>(_ key: Key, into values: inout [Element]) -> Bool {
        var key = key
        return values.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &key, $0.baseAddress) } == 0
    }
}

extension BPFMap {
    /// Reads and removes every entry of a hash map: in batches where the kernel has them
    /// (5.6+), else key by key. An update that lands after an entry was taken starts a new one,
    /// so nothing is counted twice or lost between two drains.
    public func drain<Key: BitwiseCopyable, Value: BitwiseCopyable>(_: Key.Type, _: Value.Type) -> [(Key, Value)] {
        var result: [(Key, Value)] = []
        let batch = 256
        var keys = [Key](repeating: unsafe_zeroed(Key.self), count: batch)
        var values = [Value](repeating: unsafe_zeroed(Value.self), count: batch)
        var inBatch = UInt64(0), outBatch = UInt64(0)
        var first = true
        var opts = bpf_map_batch_opts()
        opts.sz = MemoryLayout<bpf_map_batch_opts>.size
        while true {
            var count = UInt32(batch)
            let fd = self.fd
            let isFirst = first
            errno = 0
            let ret: Int32 = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    withUnsafeMutablePointer(to: &inBatch) { inPointer in
                        bpf_map_lookup_and_delete_batch(fd, isFirst ? nil : UnsafeMutableRawPointer(inPointer), &outBatch,
                                                        k.baseAddress, v.baseAddress, &count, &opts)
                    }
                }
            }
            let code: Int32 = ret < 0 ? (errno != 0 ? errno : -ret) : 0
            if ret < 0 && code != ENOENT {
                if first && (code == EINVAL || code == ENOTSUP || code == EOPNOTSUPP) { return drainByKey() }
                break
            }
            for i in 0..<Int(count) { result.append((keys[i], values[i])) }
            if code == ENOENT { break }
            inBatch = outBatch
            first = false
        }
        return result
    }

    private func drainByKey<Key: BitwiseCopyable, Value: BitwiseCopyable>() -> [(Key, Value)] {
        var result: [(Key, Value)] = []
        for key in keys(Key.self) {
            var k = key
            var value = unsafe_zeroed(Value.self)
            if bpf_map_lookup_and_delete_elem(fd, &k, &value) == 0 {
                result.append((key, value))
            } else if let value: Value = lookup(key) {
                _ = try? delete(key)
                result.append((key, value))
            }
        }
        return result
    }
}
