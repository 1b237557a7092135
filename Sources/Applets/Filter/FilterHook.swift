@preconcurrency import Glibc
import BPFKit
import ContainerFilter

extension Filter {
    /// `filter oci-hook prestart|poststop`: an OCI hook (runc, crun, CRI-O hooks.d, a spec's
    /// `hooks`). prestart puts the new container's cgroup and mount namespace into the maps
    /// before its first process runs, and notes what it added; poststop removes exactly that.
    ///
    /// A hook runs inside the container's start: it must neither hang nor fail it because of
    /// bad input. stdin is read until the runtime closes it, for at most 5 s and 1 MiB; a
    /// problem is said in one line on stderr and the hook exits 0, unless `--strict`.
    struct OCIHook {
        enum Stage { case prestart, poststop }

        let stage: Stage
        let cgroupMap: String?
        let mntnsMap: String?
        let strict: Bool
        let stateDirectory: String

        static let inputLimit = 1 << 20
        static let inputTimeoutMs = 5000

        init(_ parsed: ParsedOptions) throws(UsageError) {
            let stages = "prestart (or createRuntime) or poststop"
            guard let word = parsed.positionals.dropFirst().first else { throw UsageError("filter oci-hook needs the hook: \(stages)") }
            switch word {
            case "prestart", "createRuntime": stage = .prestart
            case "poststop": stage = .poststop
            default: throw UsageError("filter oci-hook: unknown hook '\(Escape.terminal(word))'; give \(stages)")
            }
            if let extra = parsed.positionals.dropFirst(2).first { throw UsageError("unexpected argument '\(Escape.terminal(extra))'") }
            cgroupMap = parsed.value("cgroupmap")
            mntnsMap = parsed.value("mntnsmap")
            strict = parsed.has("strict")
            stateDirectory = parsed.value("state-dir") ?? OCIHookRecord.defaultDirectory
            if stage == .prestart && cgroupMap == nil && mntnsMap == nil {
                throw UsageError("filter oci-hook prestart needs --cgroupmap PATH, --mntnsmap PATH, or both")
            }
        }

        func run() -> Int32 {
            do {
                let state = try OCIState.parse(try Self.readInput())
                let file = OCIHookRecord.file(directory: stateDirectory, state: state)
                switch stage {
                case .prestart: try prestart(state, record: file)
                case .poststop: try poststop(state, record: file)
                }
                return 0
            } catch {
                printError("filter oci-hook: \(error)" + (strict ? "" : " (ignored: the container goes on; --strict fails it instead)"))
                return strict ? 1 : 0
            }
        }

        private func prestart(_ state: OCIState, record file: String) throws(FilterError) {
            guard let pid = state.pid else {
                throw FilterError("container \(state.id): the OCI state has no pid (status \(state.status ?? "unknown")); is this hook registered as prestart or createRuntime?")
            }
            var record = OCIHookRecord(entries: [])
            defer {
                // What was added is noted even when a later step fails, so that poststop removes it.
                if !record.entries.isEmpty { try? record.write(to: file) }
            }
            for (kind, path) in [(FilterMapKind.cgroup, cgroupMap), (.mntns, mntnsMap)] {
                guard let path else { continue }
                let map = try FilterMap.open(path)
                guard map.kind == kind else {
                    throw FilterError("\(kind.option) \(path): this is a \(map.kind.typeName) map; give it to \(map.kind.option)")
                }
                let key = try key(kind, pid: pid, container: state.id)
                if try map.add(key) { record.entries.append(.init(kind: kind, key: key, mapPath: map.path)) }
            }
        }

        private func key(_ kind: FilterMapKind, pid: Int32, container: String) throws(FilterError) -> UInt64 {
            if kind == .mntns { return try MountNamespace.id(ofPID: pid) }
            let resolver = ContainerResolver()
            guard let mount = resolver.roots.cgroup else { throw FilterError("no cgroup2 file system is mounted") }
            guard let path = resolver.cgroupPath(ofPID: pid) else {
                throw FilterError("container \(container): process \(pid) is gone, or has no cgroup-v2 path")
            }
            return try CgroupV2.id(ofDirectory: mount + (path == "/" ? "" : path))
        }

        private func poststop(_ state: OCIState, record file: String) throws(FilterError) {
            // No record: prestart added nothing for this container (or ran without this hook).
            guard let record = OCIHookRecord.read(from: file) else { return }
            var problems: [String] = []
            for entry in record.entries {
                do {
                    _ = try FilterMap.open(entry.mapPath).remove(entry.key)
                } catch {
                    problems.append(error.description)
                }
            }
            unlink(file)
            if let first = problems.first { throw FilterError("container \(state.id): \(first)") }
        }

        /// stdin until EOF, bounded in size and time.
        static func readInput() throws(FilterError) -> [UInt8] {
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            let deadline = monotonicNow() + UInt64(inputTimeoutMs) * 1_000_000
            while true {
                let now = monotonicNow()
                guard now < deadline else { throw FilterError("stdin was not closed within \(inputTimeoutMs / 1000) s: no OCI state") }
                var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, Int32((deadline - now) / 1_000_000 + 1))
                if ready < 0 && errno == EINTR { continue }
                guard ready > 0 else { continue }
                let n = read(0, &chunk, chunk.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return data }
                data += chunk[0..<n]
                guard data.count <= inputLimit else { throw FilterError("the OCI state on stdin is larger than \(inputLimit >> 20) MiB") }
            }
        }
    }
}
