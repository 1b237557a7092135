@preconcurrency import Glibc
import ContainerFilter

/// TCP connections already established by the processes of some cgroups: sockmap sees only the
/// connections made after it attached, and says so for these (--verbose).
public enum Preexisting {
    public typealias Connection = (local: Sockmap.Endpoint, remote: Sockmap.Endpoint)

    /// The established TCP connections of the processes in `paths` (relative to `mount`) and
    /// their descendant cgroups.
    static func connections(inCgroups paths: [String], mount: String) -> [Connection] {
        var pids: [Int32] = []
        for path in paths { collectPIDs(mount + (path == "/" ? "" : path), into: &pids) }
        var inodes: Set<UInt64> = []
        var tables: [Int32] = []          // one process per network namespace
        var namespaces: Set<UInt64> = []
        for pid in pids {
            let found = socketInodes(pid)
            guard !found.isEmpty else { continue }
            inodes.formUnion(found)
            var st = stat()
            if stat("/proc/\(pid)/ns/net", &st) == 0, namespaces.insert(UInt64(st.st_ino)).inserted { tables.append(pid) }
        }
        var result: [Connection] = []
        for pid in tables {
            for (file, family) in [("tcp", NetAddress.inet), ("tcp6", NetAddress.inet6)] {
                guard let text = readFile("/proc/\(pid)/net/\(file)") else { continue }
                result += parse(text, family: family).filter { inodes.contains($0.inode) }.map { ($0.local, $0.remote) }
            }
        }
        return result
    }

    /// Entries of /proc/net/tcp or tcp6 in state ESTABLISHED (01).
    public static func parse(_ text: String, family: UInt16) -> [(local: Sockmap.Endpoint, remote: Sockmap.Endpoint, inode: UInt64)] {
        var entries: [(Sockmap.Endpoint, Sockmap.Endpoint, UInt64)] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9, fields[3] == "01",
                  let local = endpoint(fields[1], family: family), let remote = endpoint(fields[2], family: family),
                  let inode = UInt64(fields[9]) else { continue }
            entries.append((local, remote, inode))
        }
        return entries
    }

    /// "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6): the address is printed as
    /// 32-bit words in host order.
    static func endpoint(_ field: Substring, family: UInt16) -> Sockmap.Endpoint? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = Array(parts[0])
        guard hex.count == 8 || hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for word in stride(from: 0, to: hex.count, by: 8) {
            guard let value = UInt32(String(hex[word..<word + 8]), radix: 16) else { return nil }
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        bytes += [UInt8](repeating: 0, count: 16 - bytes.count)
        // Fold v4-mapped IPv6 into IPv4, as the BPF side keys them.
        if family == NetAddress.inet6 && NetAddress.isV4Mapped(bytes) {
            return Sockmap.Endpoint(family: NetAddress.inet, address: Array(bytes[12..<16]) + [UInt8](repeating: 0, count: 12), port: port)
        }
        return Sockmap.Endpoint(family: family, address: bytes, port: port)
    }

    private static func collectPIDs(_ directory: String, into pids: inout [Int32]) {
        if let text = readFile(directory + "/cgroup.procs") {
            pids += text.split(separator: "\n").compactMap { Int32($0) }
        }
        for name in FileSystem.entries(directory) {
            var st = stat()
            let child = directory + "/" + name
            if lstat(child, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { collectPIDs(child, into: &pids) }
        }
    }

    private static func socketInodes(_ pid: Int32) -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        let dir = "/proc/\(pid)/fd"
        for name in FileSystem.entries(dir) {
            var buffer = [CChar](repeating: 0, count: 64)
            let n = readlink(dir + "/" + name, &buffer, buffer.count - 1)
            guard n > 0 else { continue }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("socket:["), let inode = UInt64(target.dropFirst(8).dropLast()) { inodes.insert(inode) }
        }
        return inodes
    }
}
