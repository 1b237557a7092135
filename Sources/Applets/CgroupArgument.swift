@preconcurrency import Glibc
import ContainerFilter

/// A cgroup-v2 directory named on the command line (`-c PATH`), resolved once.
struct SelectedCgroup: Equatable {
    let path: String      // relative to the cgroup2 mount ("/" for the root)
    let id: UInt64

    /// Resolves `given` (a directory under the cgroup2 mount); errors name `option`.
    init(_ given: String, option: String, mount: String) throws {
        var st = stat()
        guard stat(given, &st) == 0 else {
            throw RuntimeFailure("\(option) \(given): no such cgroup (\(String(cString: strerror(errno)))); give a cgroup-v2 directory under \(mount)")
        }
        do throws(FilterError) { id = try CgroupV2.id(ofDirectory: given) } catch { throw RuntimeFailure("\(option) \(error.description)") }
        guard let path = CgroupV2.relativePath(given, mount: mount) else {
            throw RuntimeFailure("\(option) \(given): not under the cgroup2 mount \(mount)")
        }
        self.path = path
    }

    init(path: String, id: UInt64) {
        self.path = path
        self.id = id
    }

    /// The cgroup2 root.
    static func root(mount: String) throws -> SelectedCgroup {
        do throws(FilterError) { return SelectedCgroup(path: "/", id: try CgroupV2.id(ofDirectory: mount)) } catch {
            throw RuntimeFailure(error.description)
        }
    }

    /// Opens the directory (for attaching programs to it).
    func open(mount: String) throws -> Int32 {
        let fd = Glibc.open(mount + (path == "/" ? "" : path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeFailure("cannot open the cgroup \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Whether the directory is gone (or is another cgroup of the same name now).
    func removed(mount: String) -> Bool {
        guard let now = try? CgroupV2.id(ofDirectory: mount + (path == "/" ? "" : path)) else { return true }
        return now != id
    }

    func contains(_ other: String) -> Bool {
        path == "/" || other == path || other.hasPrefix(path + "/")
    }

    /// The cgroups of `all` that no other one contains (where programs are attached).
    static func outermost(_ all: [SelectedCgroup]) -> [SelectedCgroup] {
        all.filter { candidate in !all.contains { $0.path != candidate.path && $0.contains(candidate.path) } }
    }
}

/// The cgroup2 mount, or the failure that says how to get one.
func cgroup2Mount() throws -> String {
    guard let mount = CgroupV2.mountPoint() else {
        throw RuntimeFailure("no cgroup2 file system is mounted; mount one: mount -t cgroup2 none /sys/fs/cgroup")
    }
    return mount
}

/// Says once, on stderr, that an attached cgroup was removed: its programs went with it, so the
/// run goes on without it (rather than showing zeros as if nothing happened there).
final class RemovedCgroups {
    private var watched: [SelectedCgroup]
    private let applet: String
    private let mount: String

    init(_ attached: [SelectedCgroup], applet: String, mount: String) {
        watched = attached
        self.applet = applet
        self.mount = mount
    }

    func check() {
        watched.removeAll { cgroup in
            guard cgroup.removed(mount: mount) else { return false }
            printError("\(applet): the cgroup \(Escape.terminal(cgroup.path)) was removed; nothing more is seen of it")
            return true
        }
    }
}
