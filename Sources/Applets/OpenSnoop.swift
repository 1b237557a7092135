@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter

/// opensnoop: trace open(), openat(), openat2() and creat(), as bcc's opensnoop.
public enum OpenSnoop {
    public static let spec = CommandSpec(
        name: "opensnoop",
        summary: "Trace open() syscalls (open, openat, openat2, creat).",
        options: [
            OptionSpec("T", "timestamp", help: "include a timestamp column (seconds since start)"),
            OptionSpec("U", "print-uid", help: "print a UID column"),
            OptionSpec("x", "failed", help: "only show failed opens"),
            OptionSpec("p", "pid", value: "PID", help: "trace this PID only"),
            OptionSpec("t", "tid", value: "TID", help: "trace this TID only"),
            OptionSpec("u", "uid", value: "UID", help: "trace this UID or user name only"),
            OptionSpec("d", "duration", value: "SECS", help: "total duration of the trace in seconds"),
            OptionSpec("n", "name", value: "NAME", help: "only trace process names containing NAME (checked in the kernel)"),
            OptionSpec("e", "extended_fields", help: "show extended fields: FLAGS (octal) and MODE"),
            OptionSpec("f", "flag_filter", value: "FLAG", help: "only opens with this flag, e.g. O_WRONLY or O_CREAT (repeatable; any matches)",
                       choices: flagNames.map(\.name)),
            OptionSpec("F", "full-path", help: "show the absolute path of relative names (resolved in the kernel)"),
            OptionSpec(nil, "exec", value: "CMD", help: "run CMD ARGS... and trace only it and its children"),
        ] + TracingOptions.specs,
        examples: [
            ("opensnoop", "trace all open() syscalls"),
            ("opensnoop -T", "with a timestamp column"),
            ("opensnoop -U", "with a UID column"),
            ("opensnoop -x", "only failed opens"),
            ("opensnoop -p 181", "only PID 181"),
            ("opensnoop -t 123", "only TID 123"),
            ("opensnoop -u 1000", "only UID 1000"),
            ("opensnoop -d 10", "trace for 10 seconds only"),
            ("opensnoop -n main", "only process names containing \"main\""),
            ("opensnoop -e", "show extended fields"),
            ("opensnoop -f O_WRONLY -f O_RDWR", "only opens for writing"),
            ("opensnoop -F", "absolute paths for relative names"),
            ("opensnoop --exec make -j2", "only make and its children"),
            ("opensnoop --cgroupmap /sys/fs/bpf/set", "only cgroups in this map"),
        ],
        stopAfter: ["exec"]
    )

    /// Open flag names and values (x86 and most architectures).
    static let flagTable: [(name: StaticString, value: UInt64)] = [
        ("O_RDONLY", 0), ("O_WRONLY", 0o1), ("O_RDWR", 0o2),
        ("O_CREAT", 0o100), ("O_EXCL", 0o200), ("O_NOCTTY", 0o400), ("O_TRUNC", 0o1000),
        ("O_APPEND", 0o2000), ("O_NONBLOCK", 0o4000), ("O_DSYNC", 0o10000), ("O_ASYNC", 0o20000),
        ("O_DIRECT", 0o40000), ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000),
        ("O_NOFOLLOW", 0o400000), ("O_NOATIME", 0o1000000), ("O_CLOEXEC", 0o2000000),
        ("O_SYNC", 0o4010000), ("O_PATH", 0o10000000), ("O_TMPFILE", 0o20200000),
    ]
    public static let flagNames: [(name: String, value: UInt64)] = flagTable.map { ("\($0.name)", $0.value) }
    static let accessModes = ["O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2]
    static let syscallNames = ["open", "openat", "openat2", "creat"]

    public struct Config {
        public var timestamp = false
        public var printUID = false
        public var failed = false
        public var pid: UInt32?
        public var tid: UInt32?
        public var uid: UInt32?
        public var duration: Double?
        public var name: String?
        public var extended = false
        public var accessModes: UInt8 = 0
        public var flagValues: [UInt64] = []
        public var fullPath = false
        public var command: [String] = []
        public var tracing: TracingOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            timestamp = parsed.has("timestamp")
            printUID = parsed.has("print-uid")
            failed = parsed.has("failed")
            if let text = parsed.value("pid") { pid = try ParseValue.pid(text, option: "-p/--pid") }
            if let text = parsed.value("tid") { tid = try ParseValue.pid(text, option: "-t/--tid") }
            if let text = parsed.value("uid") { uid = try Users.uid(text, option: "-u/--uid") }
            if let text = parsed.value("duration") {
                guard let seconds = Double(text), seconds > 0, seconds < 1e9 else {
                    throw UsageError("-d/--duration: '\(text)' is not a positive number of seconds")
                }
                duration = seconds
            }
            name = parsed.value("name")
            if let name, name.isEmpty || name.utf8.count > Int(BPFBOX_COMM_LEN) - 1 {
                throw UsageError("-n/--name: '\(name)' must be 1 to \(BPFBOX_COMM_LEN - 1) bytes (a process name is at most that long)")
            }
            extended = parsed.has("extended_fields")
            for text in parsed.all("flag_filter") {
                let upper = text.uppercased()
                let key = upper.hasPrefix("O_") ? upper : "O_" + upper
                if let mode = OpenSnoop.accessModes[key] {
                    accessModes |= UInt8(1 << mode)
                } else if let flag = OpenSnoop.flagNames.first(where: { $0.name == key }) {
                    if !flagValues.contains(flag.value) { flagValues.append(flag.value) }
                } else {
                    throw UsageError("-f/--flag_filter: unknown flag '\(text)' (known: \(OpenSnoop.flagNames.map(\.name).joined(separator: ", ")))")
                }
            }
            guard flagValues.count <= Int(OPENSNOOP_FLAG_FILTERS) else {
                throw UsageError("-f/--flag_filter: at most \(OPENSNOOP_FLAG_FILTERS) flags besides the access modes")
            }
            fullPath = parsed.has("full-path")
            if let program = parsed.value("exec") {
                command = [program] + parsed.positionals
            } else if let extra = parsed.positionals.first {
                throw UsageError("unexpected argument '\(extra)'")
            }
            if !command.isEmpty && pid != nil {
                throw UsageError("--exec and -p/--pid cannot be combined")
            }
            tracing = try TracingOptions(parsed)
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("opensnoop", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let held = config.command.isEmpty ? nil : try HeldCommand(config.command)
            let filter = TaskFilter(pid: config.pid, uid: config.uid, cgroupMapPath: config.tracing.cgroupMap,
                                    mntnsMapPath: config.tracing.mntnsMap, tree: held.map { UInt32($0.pid) })
            let tracer = try Tracer(.opensnoop, filter: filter, options: config.tracing) { object in
                var cfg = opensnoop_config()
                if let tid = config.tid { cfg.tid = tid; cfg.by_tid = 1 }
                cfg.failed_only = config.failed ? 1 : 0
                cfg.full_path = config.fullPath ? 1 : 0
                cfg.accmodes = config.accessModes
                cfg.nflags = UInt32(config.flagValues.count)
                if let name = config.name {
                    cfg.name_len = UInt32(name.utf8.count)
                    withUnsafeMutableBytes(of: &cfg.name) { raw in
                        for (i, byte) in name.utf8.enumerated() { raw[i] = byte }
                    }
                }
                withUnsafeMutableBytes(of: &cfg.flag_values) { raw in
                    for (i, value) in config.flagValues.enumerated() {
                        raw.storeBytes(of: value, toByteOffset: i * 8, as: UInt64.self)
                    }
                }
                try object.setConstant("opensnoop_cfg", cfg)
                // open(2) and creat(2) do not exist on every architecture: trace what the kernel has.
                try object.skipMissingTracepoints { $0.tracepoint?.category == "syscalls" }
            }
            let renderer = Renderer(config: config, clock: tracer, containers: config.tracing.showContainers ? .host() : nil)
            return try tracer.stream(applet: "opensnoop", json: config.tracing.json, header: renderer.table.header,
                                     duration: config.duration, before: { held?.release() },
                                     until: { held?.exited ?? false }, decode: Event.init(_:reusing:),
                                     write: { renderer.write($0, to: $1); return true })
        }
    }

    /// One open, decoded from a ring-buffer sample.
    public struct Event: Equatable {
        public var task: TaskInfo
        public var ret: Int64
        public var flags: UInt64
        public var mode: UInt64
        public var resolve: UInt64
        public var dirfd: Int32
        public var syscall: UInt32
        public var eventFlags: UInt32
        public var path: [UInt8]
        /// -F: the directory names from the root down to the path's directory (nil: not resolved).
        public var directory: [[UInt8]]?

        public static let headerSize = MemoryLayout<opensnoop_event>.offset(of: \opensnoop_event.pad)! + 4

        public init(task: TaskInfo, ret: Int64, flags: UInt64 = 0, mode: UInt64 = 0, resolve: UInt64 = 0,
                    dirfd: Int32 = -100, syscall: UInt32 = 1, path: [UInt8], directory: [[UInt8]]? = nil) {
            self.task = task
            self.ret = ret
            self.flags = flags
            self.mode = mode
            self.resolve = resolve
            self.dirfd = dirfd
            self.syscall = syscall
            self.eventFlags = 0
            self.path = path
            self.directory = directory
        }

        public init?(_ raw: UnsafeRawBufferPointer) {
            var none: Event?
            self.init(raw, reusing: &none)
        }

        /// Decodes a sample into the storage of `previous` (taken, left nil): a steady stream of
        /// events then allocates nothing for its paths.
        public init?(_ raw: UnsafeRawBufferPointer, reusing previous: inout Event?) {
            guard raw.count >= Event.headerSize else { return nil }
            func field<T: BitwiseCopyable>(_ path: KeyPath<opensnoop_event, T>) -> T {
                raw.loadUnaligned(fromByteOffset: MemoryLayout<opensnoop_event>.offset(of: path)!, as: T.self)
            }
            let pathSize = Int(field(\.path_size)), dirSize = Int(field(\.dir_size))
            guard pathSize <= raw.count - Event.headerSize, dirSize <= Int(OPENSNOOP_DIR_MAX) else { return nil }
            task = TaskInfo(raw, at: MemoryLayout<opensnoop_event>.offset(of: \opensnoop_event.task)!)
            ret = field(\.ret)
            flags = field(\.flags)
            mode = field(\.mode)
            resolve = field(\.resolve)
            dirfd = field(\.dfd)
            syscall = field(\.syscall)
            eventFlags = field(\.event_flags)
            let data = raw[Event.headerSize...]
            path = previous?.path ?? []
            previous = nil
            path.removeAll(keepingCapacity: true)
            path.append(contentsOf: data.prefix(pathSize).prefix { $0 != 0 })
            let resolved = eventFlags & UInt32(OPENSNOOP_F_DIR_ABSOLUTE.rawValue | OPENSNOOP_F_DIR_TRUNCATED.rawValue) != 0
            if resolved && pathSize <= Int(OPENSNOOP_PATH_MAX) {
                // Fixed slots after the path area, leaf first.
                let slots = Int(OPENSNOOP_PATH_MAX)
                guard dirSize % Int(OPENSNOOP_NAME_MAX) == 0, slots + dirSize <= raw.count - Event.headerSize else {
                    return nil
                }
                var names: [[UInt8]] = []
                var offset = data.startIndex + slots
                while offset < data.startIndex + slots + dirSize {
                    let slot = data[offset..<(offset + Int(OPENSNOOP_NAME_MAX))]
                    names.append(Array(slot.prefix { $0 != 0 }))
                    offset += Int(OPENSNOOP_NAME_MAX)
                }
                directory = names.filter { !$0.isEmpty }.reversed() // empty: a mount point was crossed
            } else {
                directory = nil
            }
        }

        public var fd: Int64 { ret >= 0 ? ret : -1 }
        public var error: Int64 { ret >= 0 ? 0 : 0 &- ret } // wraps: Int64.min is no errno, and must not trap
        public var directoryTruncated: Bool { eventFlags & UInt32(OPENSNOOP_F_DIR_TRUNCATED.rawValue) != 0 }
        /// The path filled the event's buffer and the kernel refused it as too long: what is
        /// shown is its first OPENSNOOP_PATH_MAX - 1 bytes.
        public var pathTruncated: Bool { ret == -Int64(ENAMETOOLONG) && path.count >= Int(OPENSNOOP_PATH_MAX) - 1 }

        /// The path as passed, or with -F the absolute path it names.
        public var displayPath: [UInt8] {
            guard let directory, path.first != UInt8(ascii: "/") else { return path }
            var full: [UInt8] = directoryTruncated ? Array("...".utf8) : []
            for name in directory { full += [UInt8(ascii: "/")] + name }
            if directory.isEmpty && !directoryTruncated { full = [] }
            var relative = path[...]
            while relative.starts(with: Array("./".utf8)) { relative = relative.dropFirst(2) }
            if relative.elementsEqual(Array(".".utf8)) { return full.isEmpty ? Array("/".utf8) : full }
            return full + [UInt8(ascii: "/")] + relative
        }

        /// Whether MODE means something: O_CREAT or O_TMPFILE.
        public var hasMode: Bool { flags & 0o100 != 0 || flags & 0o20200000 == 0o20200000 }
    }

    /// Columns and JSON of opensnoop.
    public struct Renderer {
        public let config: Config
        let clock: EventClock?
        let containers: ContainerLabels<UInt64>?
        public let table: Table<Event>

        public init(config: Config, clock: EventClock?, containers: ContainerLabels<UInt64>? = nil) {
            self.config = config
            self.clock = clock
            self.containers = containers
            var columns: [Column<Event>] = []
            if config.timestamp {
                columns.append(TaskColumns.seconds(clock, width: 14, decimals: 9) { $0.task })
            }
            if let containers { columns.append(containers.column { $0.task.cgroupID }) }
            if config.printUID { columns.append(TaskColumns.uid { $0.task }) }
            let byTID = config.tid != nil
            columns += [
                Column(byTID ? "TID" : "PID", width: 6, write: { e, out in out.append(decimal: byTID ? e.task.tid : e.task.pid) }),
                TaskColumns.comm { $0.task },
                Column("FD", width: 4, .right, write: { e, out in out.append(decimal: e.fd) }),
                Column("ERR", width: 3, .right, write: { e, out in out.append(decimal: e.error) }),
            ]
            if config.extended {
                columns.append(Column("FLAGS", width: 8, write: { e, out in out.append(octal: e.flags, width: 8) }))
                columns.append(Column("MODE", width: 4, write: { e, out in
                    if e.hasMode { out.append(octal: e.mode, width: 4) } else { out.append(UInt8(ascii: "-")) }
                }))
            }
            columns.append(Column("PATH", width: 0, write: { e, out in
                Escape.appendTerminal(e.displayPath, to: out)
                if e.pathTruncated { out.append(" ...") }
            }))
            table = Table(columns)
        }

        public func render(_ e: Event) -> String? {
            let out = ByteBuffer(capacity: 256)
            write(e, to: out)
            return out.string()
        }

        /// The line for `e`, written at the end of `out` (without its newline).
        public func write(_ e: Event, to out: ByteBuffer) {
            if config.tracing.json { json(e, into: out) } else { table.row(e, into: out) }
        }

        public func json(_ e: Event) -> String {
            let out = ByteBuffer(capacity: 512)
            json(e, into: out)
            return out.string()
        }

        func json(_ e: Event, into out: ByteBuffer) {
            var j = JSONLine(into: out)
            e.task.addIdentity(to: &j, clock: clock)
            j.add("fd", e.fd)
            j.add("ret", e.ret)
            j.add("errno", e.ret < 0 && e.ret > -4096 ? ErrnoName.name(Int32(-e.ret)) : nil)
            j.add("syscall", Int(e.syscall) < OpenSnoop.syscallNames.count ? OpenSnoop.syscallNames[Int(e.syscall)] : "unknown")
            j.add("flags", e.flags)
            j.key("flag_names")
            OpenSnoop.appendFlagList(e.flags, to: out)
            if e.hasMode { j.add("mode", e.mode) } else { j.add("mode", nil as String?) }
            j.add("resolve", e.resolve)
            j.add("dirfd", e.dirfd)
            j.add("path", bytes: e.path)
            if e.directory != nil { j.add("full_path", bytes: e.displayPath) }
            if e.pathTruncated { j.add("path_truncated", true) }
            e.task.addPlace(to: &j, containers: containers)
            j.finish()
        }
    }

    /// The names of the flags set in `flags`, access mode first.
    public static func flagList(_ flags: UInt64) -> [String] {
        var names = [["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][Int(flags & 3)]]
        var rest = flags & ~3
        for (name, value) in flagNames.reversed() where value > 3 && rest & value == value {
            names.append(name)
            rest &= ~value
        }
        if rest != 0 { names.append("0" + String(rest, radix: 8)) }
        return names
    }

    /// `flagList` as a JSON array, written at the end of `out` without building the list.
    static func appendFlagList(_ flags: UInt64, to out: ByteBuffer) {
        switch flags & 3 {
        case 0: out.append("[\"O_RDONLY\"")
        case 1: out.append("[\"O_WRONLY\"")
        case 2: out.append("[\"O_RDWR\"")
        default: out.append("[\"O_ACCMODE\"")
        }
        var rest = flags & ~3
        for (name, value) in flagTable.reversed() where value > 3 && rest & value == value {
            out.append(",\"")
            out.append(name)
            out.append(UInt8(ascii: "\""))
            rest &= ~value
        }
        if rest != 0 {
            out.append(",\"0")
            out.append(octal: rest, width: 0)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "]"))
    }
}
