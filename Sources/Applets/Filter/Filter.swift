@preconcurrency import Glibc
import BPFKit
import ContainerFilter

/// `bpfbox filter`: creates, fills, lists and removes the pinned maps of `--cgroupmap` and
/// `--mntnsmap` (bcc's layouts), from cgroups, processes and containers; and serves as an OCI
/// hook that puts each new container into the maps and takes it out when it is gone.
public enum Filter {
    public static let spec = CommandSpec(
        name: "filter",
        summary: "Manage the container filter maps of --cgroupmap and --mntnsmap; an OCI hook.",
        synopsis: [
            "create PATH --type cgroup|mntns [--entries N]",
            "add|del PATH --cgroup DIR|--pid PID|--container ID|--id ID...",
            "list PATH [--json]",
            "destroy PATH",
            "oci-hook prestart|poststop [--cgroupmap PATH] [--mntnsmap PATH]",
        ],
        positionals: [("SUBCOMMAND", "create, add, del, list, destroy or oci-hook"),
                      ("PATH", "the map, pinned on bpffs (/sys/fs/bpf/...)")],
        positionalChoices: subcommands,
        options: [
            OptionSpec("t", "type", value: "TYPE", help: "create: cgroup (keys are cgroup-v2 ids, for --cgroupmap) or mntns (mount namespace ids, for --mntnsmap)",
                       choices: ["cgroup", "mntns"]),
            OptionSpec(nil, "entries", value: "N", help: "create: the most keys the map holds (default 1024)"),
            OptionSpec(nil, "cgroup", value: "DIR", help: "add/del: a cgroup-v2 directory, absolute or relative to the cgroup2 mount (cgroup maps)"),
            OptionSpec("p", "pid", value: "PID", help: "add/del: the cgroup, or the mount namespace, of this process"),
            OptionSpec("c", "container", value: "ID|NAME", help: "add/del: the cgroup, or the mount namespace, of this container (a unique prefix of its id or name will do)"),
            OptionSpec(nil, "id", value: "ID", help: "add/del: this key itself (decimal, or hex with 0x), e.g. a stale one that list shows"),
            OptionSpec(nil, "json", help: "list: one JSON object per key (NDJSON)"),
            OptionSpec(nil, "cgroupmap", value: "PATH", help: "oci-hook: the cgroup map to put the container's cgroup into"),
            OptionSpec(nil, "mntnsmap", value: "PATH", help: "oci-hook: the mount namespace map to put the container's mount namespace into"),
            OptionSpec(nil, "strict", help: "oci-hook: exit 1 on bad input or a missing map (which fails the container's start) instead of saying so and exiting 0"),
            OptionSpec(nil, "state-dir", value: "DIR", help: "oci-hook: where prestart notes the ids it added, for poststop (default \(OCIHookRecord.defaultDirectory))"),
        ],
        examples: [
            ("filter create /sys/fs/bpf/cg --type cgroup", "an empty map for --cgroupmap"),
            ("filter add /sys/fs/bpf/cg --container web", "the cgroup of container web"),
            ("filter add /sys/fs/bpf/ns --pid 4242", "the mntns of pid 4242"),
            ("filter list /sys/fs/bpf/cg", "what each key is now"),
            ("filter del /sys/fs/bpf/cg --id 4294967345", "remove a stale key"),
        ]
    )

    /// The options each subcommand takes.
    static let optionsOf: [String: Set<String>] = [
        "create": ["type", "entries"],
        "add": selectorOptions,
        "del": selectorOptions,
        "list": ["json"],
        "destroy": [],
        "oci-hook": ["cgroupmap", "mntnsmap", "strict", "state-dir"],
    ]
    static let selectorOptions: Set<String> = ["cgroup", "pid", "container", "id"]
    static let subcommands = ["create", "add", "del", "list", "destroy", "oci-hook"]

    public static func main(_ arguments: [String]) -> Int32 {
        let status = run(arguments)
        // A hook with arguments it cannot use must not fail the container's start either.
        if status == 2 && arguments.first == "oci-hook" && !arguments.contains("--strict") {
            printError("filter oci-hook: the container goes on without the hook (--strict fails it instead)")
            return 0
        }
        return status
    }

    static func run(_ arguments: [String]) -> Int32 {
        runTracingApplet("filter", spec: spec, arguments: arguments) { parsed in
            let subcommand = try Self.subcommand(parsed)
            if subcommand == "oci-hook" { return try OCIHook(parsed).run() }
            guard let path = parsed.positionals.dropFirst().first else {
                throw UsageError("filter \(subcommand) needs the PATH of the map")
            }
            if let extra = parsed.positionals.dropFirst(2).first { throw UsageError("unexpected argument '\(extra)'") }
            let output = Output()
            defer { output.flush() }
            switch subcommand {
            case "create": try create(path, parsed, output)
            case "add", "del": try change(path, adding: subcommand == "add", parsed, output)
            case "list": List(map: try FilterMap.open(path), json: parsed.has("json")).render(to: output)
            default: try destroy(path, output)
            }
            return 0
        }
    }

    /// The subcommand, after checking that every option given belongs to it.
    static func subcommand(_ parsed: ParsedOptions) throws(UsageError) -> String {
        guard let word = parsed.positionals.first else {
            throw UsageError("a subcommand is needed: \(subcommands.joined(separator: ", "))")
        }
        guard let allowed = optionsOf[word] else {
            throw UsageError("unknown subcommand '\(Escape.terminal(word))' (subcommands: \(subcommands.joined(separator: ", ")))")
        }
        for name in parsed.values.keys.sorted() where name != "help" && !allowed.contains(name) {
            throw UsageError("--\(name) does not apply to 'filter \(word)'")
        }
        return word
    }

    // MARK: - create, destroy

    static func create(_ path: String, _ parsed: ParsedOptions, _ output: Output) throws {
        guard let type = parsed.value("type") else { throw UsageError("filter create needs --type cgroup or --type mntns") }
        let kind: FilterMapKind
        switch type {
        case "cgroup": kind = .cgroup
        case "mntns": kind = .mntns
        default: throw UsageError("--type: '\(Escape.terminal(type))' is neither cgroup nor mntns")
        }
        let entries = try parsed.value("entries").map { (text) throws(UsageError) in
            try ParseValue.positiveInt(text, option: "--entries", max: 1 << 24)
        } ?? 1024
        let (map, created) = try FilterMap.create(path, kind: kind, entries: UInt32(entries))
        let layout = "a \(kind.typeName) map for \(kind.option) (hash, key u64, value \(kind == .cgroup ? "u64" : "u32"))"
        if created {
            output.line("created \(map.path): \(layout), \(map.info.maxEntries) entries")
        } else {
            output.line("\(map.path): already \(layout), \(map.info.maxEntries) entries, \(map.keys.count) in use; kept it")
        }
    }

    static func destroy(_ path: String, _ output: Output) throws {
        let map = try FilterMap.open(path)
        let count = map.keys.count
        guard unlink(map.path) == 0 else {
            throw RuntimeFailure("\(map.path): cannot remove the pin: \(BPFError.errnoText(errno))")
        }
        output.line("removed \(map.path) (a \(map.kind.typeName) map with \(count) keys); tools that still use it keep it until they exit")
    }

    // MARK: - add, del

    static func change(_ path: String, adding: Bool, _ parsed: ParsedOptions, _ output: Output) throws {
        guard selectorOptions.contains(where: parsed.has) else {
            throw UsageError("filter \(adding ? "add" : "del") needs at least one of --cgroup DIR, --pid PID, --container ID|NAME, --id ID")
        }
        let map = try FilterMap.open(path)
        let keys = Keys(kind: map.kind)
        var targets: [Keys.Target] = []
        for id in parsed.all("id") { targets.append(try keys.raw(id)) }
        for dir in parsed.all("cgroup") { targets.append(try keys.cgroup(dir)) }
        for pid in parsed.all("pid") { targets.append(try keys.process(try ParseValue.pid(pid, option: "--pid"))) }
        for query in parsed.all("container") { targets.append(try keys.container(query)) }
        for target in targets {
            let what = "\(target.key) (\(target.meaning))"
            if adding {
                output.line(try map.add(target.key) ? "added \(what) to \(map.path)" : "\(what) is already in \(map.path)")
            } else {
                output.line(try map.remove(target.key) ? "removed \(what) from \(map.path)" : "\(what) was not in \(map.path)")
            }
        }
    }

    /// Turns the selectors into keys of a map of `kind`.
    struct Keys {
        struct Target {
            let key: UInt64
            let meaning: String
        }

        let kind: FilterMapKind
        let resolver = ContainerResolver()

        var mount: String {
            get throws {
                guard let mount = resolver.roots.cgroup else {
                    throw RuntimeFailure("no cgroup2 file system is mounted; mount one: mount -t cgroup2 none /sys/fs/cgroup")
                }
                return mount
            }
        }

        func raw(_ text: String) throws -> Target {
            let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let value else { throw UsageError("--id: '\(Escape.terminal(text))' is not a number (decimal, or hex with 0x)") }
            return Target(key: value, meaning: "given as a number")
        }

        func cgroup(_ dir: String) throws -> Target {
            guard kind == .cgroup else {
                throw RuntimeFailure("--cgroup \(Escape.terminal(dir)): this is a mntns map, whose keys are mount namespaces; select with --pid or --container")
            }
            let mount = try self.mount
            var st = stat()
            let full = dir.hasPrefix("/") && stat(dir, &st) == 0 ? dir : mount + "/" + dir.trimmingSlashes
            guard stat(full, &st) == 0 else {
                throw RuntimeFailure("--cgroup \(Escape.terminal(dir)): no such cgroup (\(Escape.terminal(full)) does not exist; the cgroup2 mount is \(mount))")
            }
            let id = try CgroupV2.id(ofDirectory: full)
            return Target(key: id, meaning: "cgroup \(Escape.terminal(CgroupV2.relativePath(full, mount: mount) ?? full))")
        }

        func process(_ pid: UInt32) throws -> Target {
            let pid = Int32(pid)
            guard let comm = ProcessEntry.comm(of: pid) else { throw RuntimeFailure("--pid \(pid): no such process") }
            let who = "pid \(pid) (\(Escape.terminal(comm)))"
            if kind == .mntns { return Target(key: try MountNamespace.id(ofPID: pid), meaning: "mount namespace of \(who)") }
            guard let path = resolver.cgroupPath(ofPID: pid) else {
                throw RuntimeFailure("--pid \(pid): its cgroup-v2 path is unknown (no 0:: line in /proc/\(pid)/cgroup)")
            }
            return Target(key: try CgroupV2.id(ofDirectory: try mount + path), meaning: "cgroup \(Escape.terminal(path)) of \(who)")
        }

        func container(_ query: String) throws -> Target {
            let container = try resolver.find(query)
            let who = "container \(Escape.terminal(container.label))"
            if kind == .mntns {
                guard let pid = container.initPID else {
                    throw RuntimeFailure("--container \(Escape.terminal(query)): \(who) has no process (is it running?), hence no mount namespace")
                }
                return Target(key: try MountNamespace.id(ofPID: pid), meaning: "mount namespace of \(who), pid \(pid)")
            }
            let full = try mount + (container.cgroupPath == "/" ? "" : container.cgroupPath)
            var st = stat()
            guard stat(full, &st) == 0 else {
                throw RuntimeFailure("--container \(Escape.terminal(query)): \(who) has no cgroup at \(Escape.terminal(full)) (is it running?)")
            }
            return Target(key: try CgroupV2.id(ofDirectory: full), meaning: "cgroup \(Escape.terminal(container.cgroupPath)) of \(who)")
        }
    }
}
