import ContainerFilter

extension Filter {
    /// `filter list`: every key, with what it is now.
    struct List {
        /// One key and what it resolves to.
        struct Row {
            let key: UInt64
            /// The cgroup's path (cgroup maps), nil when no cgroup has this id any more.
            let cgroup: String?
            /// The processes in the namespace (mntns maps).
            let processes: [ProcessEntry]
            let container: Container?
            let stale: Bool
        }

        let map: FilterMap
        let json: Bool

        func rows() -> [Row] {
            let resolver = ContainerResolver()
            if map.kind == .cgroup {
                let tree = resolver.roots.cgroup.map { CgroupV2.tree(mount: $0) } ?? [:]
                return map.keys.map { key in
                    let path = tree[key]
                    return Row(key: key, cgroup: path, processes: [], container: path.flatMap { resolver.resolve(cgroupPath: $0) },
                               stale: path == nil)
                }
            }
            let namespaces = MountNamespace.processes()
            return map.keys.map { key in
                let processes = namespaces[key] ?? []
                return Row(key: key, cgroup: nil, processes: processes,
                           container: processes.lazy.compactMap { resolver.resolve(pid: $0.pid) }.first, stale: processes.isEmpty)
            }
        }

        var table: Table<Row> {
            let cgroups = map.kind == .cgroup
            return Table([
                Column(cgroups ? "CGROUP_ID" : "MNTNS_ID", width: 18) { String($0.key) },
                Column("CONTAINER", width: 30) { $0.container.map { Escape.terminal($0.label) } ?? "-" },
                Column(cgroups ? "CGROUP" : "PROCESSES", width: 0) { row in
                    if row.stale { return cgroups ? "(stale: no such cgroup)" : "(stale: no process in it)" }
                    if cgroups { return Escape.terminal(row.cgroup ?? "") }
                    let shown = row.processes.prefix(4).map { "\($0.pid) \(Escape.terminal($0.comm))" }.joined(separator: ", ")
                    return row.processes.count > 4 ? shown + " (+\(row.processes.count - 4) more)" : shown
                },
            ])
        }

        func jsonLine(_ row: Row) -> String {
            var line = JSONLine()
            line.add("map", map.path)
            line.add("type", map.kind.typeName)
            line.add("key", row.key)
            line.add("stale", row.stale)
            if map.kind == .cgroup {
                line.add("cgroup", row.cgroup)
            } else {
                line.addRaw("processes", "[" + row.processes.map { process in
                    var entry = JSONLine()
                    entry.add("pid", process.pid)
                    entry.add("comm", process.comm)
                    return entry.line
                }.joined(separator: ",") + "]")
            }
            line.addRaw("container", row.container.map(Self.json) ?? "null")
            return line.line
        }

        static func json(_ container: Container) -> String {
            var line = JSONLine()
            line.add("id", container.id)
            line.add("short_id", container.shortID)
            line.add("name", container.name)
            line.add("runtime", container.runtime.rawValue)
            line.add("cgroup", container.cgroupPath)
            line.add("pod_uid", container.podUID)
            line.add("pod_name", container.podName)
            line.add("pod_namespace", container.podNamespace)
            return line.line
        }

        func render(to output: Output) {
            let rows = rows()
            if json {
                for row in rows { output.line(jsonLine(row)) }
                return
            }
            let table = self.table
            output.line(table.header)
            for row in rows { output.line(table.row(row)) }
        }
    }
}
