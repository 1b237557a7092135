@preconcurrency import Glibc
import BPFSupport

/// cgroup v2 and mount-namespace identities, read from /proc and the cgroup2 mount.
public enum CgroupV2 {
    /// Where cgroup2 is mounted (from /proc/self/mountinfo): /sys/fs/cgroup on unified hosts,
    /// /sys/fs/cgroup/unified on hybrid ones.
    public static func mountPoint(mountinfo: String? = nil) -> String? {
        let text = mountinfo ?? (readFile("/proc/self/mountinfo") ?? "")
        for line in text.split(separator: "\n") {
            guard let dash = line.firstRange(of: " - ") else { continue }
            let before = line[..<dash.lowerBound].split(separator: " ")
            let after = line[dash.upperBound...].split(separator: " ")
            guard before.count >= 5, after.first == "cgroup2" else { continue }
            return unescapeMountField(String(before[4]))
        }
        return nil
    }

    /// The cgroup id of a cgroup2 directory: its inode number, which is what
    /// bpf_get_current_cgroup_id() returns for tasks in it.
    public static func id(ofDirectory path: String) throws(FilterError) -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FilterError("\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw FilterError("\(path) is not a directory") }
        var fs = statfs()
        guard statfs(path, &fs) == 0, UInt(bitPattern: Int(fs.f_type)) == 0x6367_7270 else {
            throw FilterError("\(path) is not on cgroup v2 (cgroup2 is mounted at \(mountPoint() ?? "no place"))")
        }
        return UInt64(st.st_ino)
    }

    /// The cgroup2 path of a process relative to the cgroup2 mount ("/user.slice/...").
    public static func path(ofPID pid: Int32) -> String? {
        guard let text = readFile("/proc/\(pid)/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    public static func unescapeMountField(_ field: String) -> String {
        var out = [UInt8]()
        let bytes = Array(field.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(value)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public enum MountNamespace {
    /// The mount-namespace inode of a process (what --mntnsmap keys hold).
    public static func id(ofPID pid: Int32) throws(FilterError) -> UInt64 {
        var st = stat()
        guard stat("/proc/\(pid)/ns/mnt", &st) == 0 else {
            throw FilterError("process \(pid): cannot read its mount namespace: \(String(cString: strerror(errno)))")
        }
        return UInt64(st.st_ino)
    }
}

/// The text of a (small, /proc or /sys) file, at most `limit` bytes of it; nil when it cannot be read.
public func readFile(_ path: String, limit: Int = .max) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while data.count < limit {
        let n = read(fd, &chunk, min(chunk.count, limit - data.count))
        if n <= 0 { break }
        data += chunk[0..<n]
    }
    return String(decoding: data, as: UTF8.self)
}

extension CgroupV2 {
    /// Every cgroup under the cgroup2 mount: id -> path relative to the mount ("/" for the root).
    public static func tree(mount: String) -> [UInt64: String] {
        var result: [UInt64: String] = [:]
        func walk(_ relative: String, depth: Int) {
            let full = relative == "/" ? mount : mount + relative
            var st = stat()
            guard stat(full, &st) == 0 else { return }
            result[UInt64(st.st_ino)] = relative
            guard depth < 64, let dir = opendir(full) else { return }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                guard entry.pointee.d_type == DT_DIR else { continue }
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                walk(relative == "/" ? "/" + name : relative + "/" + name, depth: depth + 1)
            }
        }
        walk("/", depth: 0)
        return result
    }

    /// The path of a cgroup2 directory relative to the mount.
    public static func relativePath(_ path: String, mount: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        let full = String(cString: resolved)
        if full == mount { return "/" }
        guard full.hasPrefix(mount + "/") else { return nil }
        return String(full.dropFirst(mount.count))
    }
}

/// A process as `filter list` shows it.
public struct ProcessEntry: Sendable, Equatable {
    public let pid: Int32
    public let comm: String

    /// The process's name (`/proc/<pid>/comm`), nil when it is gone.
    public static func comm(of pid: Int32, proc: String = "/proc") -> String? {
        readFile("\(proc)/\(pid)/comm", limit: 64).map { String($0.prefix { $0 != "\n" }) }
    }
}

extension MountNamespace {
    /// Every process of the machine by mount namespace, pids ascending.
    public static func processes(proc: String = "/proc") -> [UInt64: [ProcessEntry]] {
        var result: [UInt64: [ProcessEntry]] = [:]
        for pid in FileSystem.entries(proc).compactMap({ Int32($0) }).sorted() {
            var st = stat()
            guard stat("\(proc)/\(pid)/ns/mnt", &st) == 0, let comm = ProcessEntry.comm(of: pid, proc: proc) else { continue }
            result[UInt64(st.st_ino), default: []].append(ProcessEntry(pid: pid, comm: comm))
        }
        return result
    }
}
