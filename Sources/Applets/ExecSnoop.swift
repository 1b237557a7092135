@preconcurrency import Glibc
import BPFKit
import BPFObjects
import BPFSupport
import ContainerFilter

/// execsnoop: trace new processes (execve and execveat), as bcc's execsnoop.
public enum ExecSnoop {
    public static let spec = CommandSpec(
        name: "execsnoop",
        summary: "Trace exec() syscalls (execve and execveat).",
        options: [
            OptionSpec("T", "time", help: "include a time column (HH:MM:SS)"),
            OptionSpec("t", "timestamp", help: "include a timestamp column (seconds since start)"),
            OptionSpec("x", "fails", help: "include failed exec()s"),
            OptionSpec("u", "uid", value: "UID", help: "trace this UID or user name only (0 and root work)"),
            OptionSpec("q", "quote", help: "add quotemarks (\") around arguments"),
            OptionSpec("n", "name", value: "NAME", help: "only print commands whose name matches this regex"),
            OptionSpec("l", "line", value: "LINE", help: "only print commands whose arguments match this regex"),
            OptionSpec("U", "print-uid", help: "print a UID column"),
            OptionSpec(nil, "max-args", value: "N", help: "maximum number of arguments shown (default 20)"),
            OptionSpec("P", "ppid", value: "PPID", help: "trace this parent PID only"),
        ] + TracingOptions.specs,
        examples: [
            ("execsnoop", "trace all exec() syscalls"),
            ("execsnoop -x", "include failed exec()s"),
            ("execsnoop -T -U", "with a time and a UID column"),
            ("execsnoop -u 0", "only commands run by root"),
            ("execsnoop -n main", "only commands named like \"main\""),
            ("execsnoop -l tpkg", "only arguments matching \"tpkg\""),
            ("execsnoop -P 181", "only children of process 181"),
            ("execsnoop --cgroupmap /sys/fs/bpf/set", "only cgroups in this map"),
            ("execsnoop --mntnsmap /sys/fs/bpf/ns", "only mount namespaces in this map"),
            ("execsnoop --json | jq .", "one JSON object per exec"),
        ]
    )

    public struct Config {
        public var time = false
        public var timestamp = false
        public var fails = false
        public var uid: UInt32?
        public var quote = false
        public var name: Regex<AnyRegexOutput>?
        public var line: Regex<AnyRegexOutput>?
        public var printUID = false
        public var maxArgs = 20
        public var ppid: UInt32?
        public var tracing: TracingOptions

        public init(_ parsed: ParsedOptions) throws(UsageError) {
            guard parsed.positionals.isEmpty else {
                throw UsageError("unexpected argument '\(parsed.positionals[0])'")
            }
            time = parsed.has("time")
            timestamp = parsed.has("timestamp")
            fails = parsed.has("fails")
            if let text = parsed.value("uid") { uid = try Users.uid(text, option: "-u/--uid") }
            quote = parsed.has("quote")
            if let text = parsed.value("name") { name = try ParseValue.regex(text, option: "-n/--name") }
            if let text = parsed.value("line") { line = try ParseValue.regex(text, option: "-l/--line") }
            printUID = parsed.has("print-uid")
            if let text = parsed.value("max-args") {
                maxArgs = try ParseValue.positiveInt(text, option: "--max-args", max: 4096)
            }
            if let text = parsed.value("ppid") { ppid = try ParseValue.pid(text, option: "-P/--ppid") }
            tracing = try TracingOptions(parsed)
        }
    }

    public static func main(_ arguments: [String]) -> Int32 {
        runTracingApplet("execsnoop", spec: spec, arguments: arguments) { parsed in
            let config = try Config(parsed)
            let filter = TaskFilter(uid: config.uid, cgroupMapPath: config.tracing.cgroupMap,
                                    mntnsMapPath: config.tracing.mntnsMap)
            let tracer = try Tracer(.execsnoop, filter: filter, options: config.tracing) { object in
                var cfg = execsnoop_config()
                if let ppid = config.ppid { cfg.ppid = ppid; cfg.by_ppid = 1 }
                cfg.include_failed = config.fails ? 1 : 0
                try object.setConstant("execsnoop_cfg", cfg)
                // execveat is recent on some architectures: trace it where the kernel has it.
                try object.skipMissingTracepoints { $0.name.hasSuffix("execveat") }
            }
            let renderer = Renderer(config: config, clock: tracer, containers: config.tracing.showContainers ? .host() : nil)
            return try tracer.stream(applet: "execsnoop", json: config.tracing.json, header: renderer.table.header,
                                     decode: Event.init(_:reusing:), write: renderer.write)
        }
    }

    /// One exec, decoded from a ring-buffer sample.
    public struct Event: Equatable {
        public var task: TaskInfo
        public var ppid: UInt32
        public var retval: Int32
        public var flags: UInt32
        public var filename: [UInt8]
        /// argv as the program sees it, argv[0] first.
        public var argv: [[UInt8]]

        public var argvTruncated: Bool { flags & UInt32(EXECSNOOP_F_ARGV_TRUNCATED.rawValue) != 0 }
        public var isExecveat: Bool { flags & UInt32(EXECSNOOP_F_EXECVEAT.rawValue) != 0 }
        public var isScript: Bool { flags & UInt32(EXECSNOOP_F_SCRIPT.rawValue) != 0 }

        /// The arguments the caller passed after argv[0]. For a script the kernel's argv is
        /// [interpreter, (its argument,) script, args...]: the caller's start after the script.
        public var callerArguments: ArraySlice<[UInt8]> {
            if isScript, let index = argv.indices.dropFirst().prefix(2).first(where: { argv[$0] == filename }) {
                return argv[(index + 1)...]
            }
            return argv.dropFirst()
        }

        /// Bytes before `args` (Swift does not import an array that large; args follows args_size).
        public static let headerSize = MemoryLayout<execsnoop_event>.offset(of: \execsnoop_event.args_size)! + 4

        public init(task: TaskInfo, ppid: UInt32, retval: Int32, flags: UInt32 = 0, filename: [UInt8], argv: [[UInt8]]) {
            self.task = task
            self.ppid = ppid
            self.retval = retval
            self.flags = flags
            self.filename = filename
            self.argv = argv
        }

        /// Decodes a sample; nil when it is shorter than its header says (never reads past it).
        public init?(_ raw: UnsafeRawBufferPointer) {
            var none: Event?
            self.init(raw, reusing: &none)
        }

        /// Decodes a sample into the storage of `previous` (taken, left nil): a steady stream of
        /// events then allocates nothing for filenames and arguments.
        public init?(_ raw: UnsafeRawBufferPointer, reusing previous: inout Event?) {
            guard raw.count >= Event.headerSize else { return nil }
            func field<T: BitwiseCopyable>(_ path: KeyPath<execsnoop_event, T>) -> T {
                raw.loadUnaligned(fromByteOffset: MemoryLayout<execsnoop_event>.offset(of: path)!, as: T.self)
            }
            let argsSize = Int(field(\.args_size))
            let filenameSize = Int(field(\.filename_size))
            guard argsSize <= raw.count - Event.headerSize, filenameSize <= argsSize else { return nil }
            task = TaskInfo(raw, at: MemoryLayout<execsnoop_event>.offset(of: \execsnoop_event.task)!)
            ppid = field(\.ppid)
            retval = field(\.retval)
            flags = field(\.flags)
            let args = raw[Event.headerSize..<(Event.headerSize + argsSize)]
            filename = previous?.filename ?? []
            argv = previous?.argv ?? []
            previous = nil
            filename.removeAll(keepingCapacity: true)
            filename.append(contentsOf: args.prefix(filenameSize).prefix { $0 != 0 })
            // Each argument ends with a NUL; a last one may be cut off without its NUL.
            var used = 0
            var start = args.startIndex + filenameSize
            while start < args.endIndex {
                let end = args[start...].firstIndex(of: 0) ?? args.endIndex
                if used < argv.count {
                    argv[used].removeAll(keepingCapacity: true)
                    argv[used].append(contentsOf: args[start..<end])
                } else {
                    argv.append(Array(args[start..<end]))
                }
                used += 1
                start = end + 1
            }
            argv.removeLast(argv.count - used)
        }
    }

    /// Columns and JSON of execsnoop; one specification for header and rows.
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
            if config.time { columns.append(TaskColumns.clock(clock) { $0.task }) }
            if config.timestamp { columns.append(TaskColumns.seconds(clock) { $0.task }) }
            if let containers { columns.append(containers.column { $0.task.cgroupID }) }
            if config.printUID { columns.append(TaskColumns.uid { $0.task }) }
            let quote = config.quote, maxArgs = config.maxArgs
            columns += [
                TaskColumns.comm("PCOMM") { $0.task },
                Column("PID", width: 7, write: { e, out in out.append(decimal: e.task.pid) }),
                Column("PPID", width: 7, write: { e, out in out.append(decimal: e.ppid) }),
                Column("RET", width: 3, .right, write: { e, out in out.append(decimal: e.retval) }),
                Column("ARGS", width: 0, write: { e, out in Renderer.appendArgs(e, quote: quote, maxArgs: maxArgs, escape: true, to: out) }),
            ]
            table = Table(columns)
        }

        /// bcc's ARGS: the filename, then argv[1...], at most maxArgs of them, " ..." when cut.
        public static func argsText(_ e: Event, quote: Bool, maxArgs: Int, escape: Bool) -> String {
            let out = ByteBuffer()
            appendArgs(e, quote: quote, maxArgs: maxArgs, escape: escape, to: out)
            return out.string()
        }

        /// `argsText`, written at the end of `out`.
        static func appendArgs(_ e: Event, quote: Bool, maxArgs: Int, escape: Bool, to out: ByteBuffer) {
            let rest = e.callerArguments
            appendWord(e.filename, quote: quote, escape: escape, to: out)
            for word in rest.prefix(maxArgs) {
                out.append(UInt8(ascii: " "))
                appendWord(word, quote: quote, escape: escape, to: out)
            }
            if rest.count > maxArgs || e.argvTruncated { out.append(" ...") }
        }

        private static func appendWord(_ word: [UInt8], quote: Bool, escape: Bool, to out: ByteBuffer) {
            if quote { out.append(UInt8(ascii: "\"")) }
            let start = out.count
            if escape { Escape.appendTerminal(word, to: out) } else { out.append(contentsOf: word) }
            if quote {
                // -q: a quote inside the word gets a backslash.
                if out.bytes[start...].contains(UInt8(ascii: "\"")) {
                    let text = Array(out.bytes[start...])
                    out.truncate(to: start)
                    for byte in text {
                        if byte == UInt8(ascii: "\"") { out.append(UInt8(ascii: "\\")) }
                        out.append(byte)
                    }
                }
                out.append(UInt8(ascii: "\""))
            }
        }

        /// Whether the user-space filters (-n, -l) keep `e`.
        func selects(_ e: Event) -> Bool {
            if let name = config.name, (try? name.firstMatch(in: String(decoding: e.task.comm, as: UTF8.self))) == nil {
                return false
            }
            if let line = config.line {
                let text = Renderer.argsText(e, quote: config.quote, maxArgs: config.maxArgs, escape: false)
                if (try? line.firstMatch(in: text)) == nil { return false }
            }
            return true
        }

        /// The line for `e`, or nil when a user-space filter (-n, -l) drops it.
        public func render(_ e: Event) -> String? {
            let out = ByteBuffer(capacity: 256)
            return write(e, to: out) ? out.string() : nil
        }

        /// The line for `e` written at the end of `out` (without its newline); false when a
        /// user-space filter drops it.
        public func write(_ e: Event, to out: ByteBuffer) -> Bool {
            guard selects(e) else { return false }
            if config.tracing.json { json(e, into: out) } else { table.row(e, into: out) }
            return true
        }

        public func json(_ e: Event) -> String {
            let out = ByteBuffer(capacity: 512)
            json(e, into: out)
            return out.string()
        }

        func json(_ e: Event, into out: ByteBuffer) {
            var j = JSONLine(into: out)
            e.task.addIdentity(to: &j, clock: clock)
            j.add("ppid", e.ppid)
            j.add("ret", e.retval)
            j.add("errno", ErrnoName.of(e.retval))
            if e.isExecveat { j.add("syscall", literal: "execveat") } else { j.add("syscall", literal: "execve") }
            j.add("filename", bytes: e.filename)
            j.add("argv", byteStrings: e.argv)
            j.add("argv_truncated", e.argvTruncated)
            j.add("script", e.isScript)
            e.task.addPlace(to: &j, containers: containers)
            j.finish()
        }
    }
}
