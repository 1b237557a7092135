@preconcurrency import Glibc
import BPFKit
import BPFSupport
import BPFObjects
import ContainerFilter

/// An applet failure at run time: exit 1 with one line (cause and remedy).
public struct RuntimeFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The options every tracing applet takes, and what they turn into.
public struct TracingOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec(nil, "cgroupmap", value: "PATH", help: "trace only tasks whose cgroup-v2 id is a key of the hash map pinned at PATH (bcc layout)"),
        OptionSpec(nil, "mntnsmap", value: "PATH", help: "trace only tasks whose mount namespace id is a key of the hash map pinned at PATH (bcc layout)"),
        OptionSpec(nil, "cgroup", value: "DIR", help: "trace only tasks in this cgroup-v2 directory or below it (repeatable; a pod's cgroup selects all its containers)"),
        OptionSpec(nil, "container", value: "ID|NAME", help: "trace only this container's tasks (id, unique id prefix or name; repeatable)"),
        OptionSpec(nil, "mntns-of", value: "PID", help: "trace only tasks in the mount namespace of process PID (repeatable)"),
        OptionSpec(nil, "containers", help: "show the container of each event (CONTAINER column; a container object in JSON)"),
        OptionSpec(nil, "json", help: "print one JSON object per event (NDJSON)"),
        OptionSpec(nil, "verbose", help: "show libbpf's log"),
        OptionSpec(nil, "ringbuf-kb", value: "KB", help: "size of the event ring buffer in KiB (a power of two; default 1024)"),
    ]

    public var cgroupMap: String?
    public var mntnsMap: String?
    /// Direct selectors, resolved when the tracer starts (`selecting(_:)`).
    public var cgroups: [String]
    public var containers: [String]
    public var mntnsOf: [Int32] = []
    /// --containers: label events with their container.
    public var showContainers: Bool
    public var json: Bool
    public var verbose: Bool
    /// Say on stderr which hooks the programs use (--verbose).
    public var showHooks: Bool
    public var ringBufferBytes: UInt32?

    public init(_ parsed: ParsedOptions) throws(UsageError) {
        cgroupMap = parsed.value("cgroupmap")
        mntnsMap = parsed.value("mntnsmap")
        cgroups = parsed.all("cgroup")
        containers = parsed.all("container")
        for text in parsed.all("mntns-of") { mntnsOf.append(Int32(bitPattern: try ParseValue.pid(text, option: "--mntns-of"))) }
        showContainers = parsed.has("containers")
        json = parsed.has("json")
        verbose = parsed.has("verbose")
        showHooks = verbose
        if let kb = parsed.value("ringbuf-kb") {
            let value = try ParseValue.positiveInt(kb, option: "--ringbuf-kb", max: 1 << 20)
            guard value & (value - 1) == 0, value >= 4 else {
                throw UsageError("--ringbuf-kb: \(kb) is not a power of two of at least 4")
            }
            ringBufferBytes = UInt32(value * 1024)
        }
        if cgroups.count + containers.count > CgroupSubtree.limit {
            throw UsageError("--cgroup and --container: at most \(CgroupSubtree.limit) in all; list more cgroups in a --cgroupmap map")
        }
        if mntnsOf.count > CgroupSubtree.limit {
            throw UsageError("--mntns-of: at most \(CgroupSubtree.limit); list more namespaces in a --mntnsmap map")
        }
        if cgroupMap?.isEmpty == true { throw UsageError("--cgroupmap: the path is empty") }
        if mntnsMap?.isEmpty == true { throw UsageError("--mntnsmap: the path is empty") }
    }
}

extension TracingOptions {
    /// `filter` with the direct selectors added: --cgroup and --container as cgroup subtrees,
    /// --mntns-of as mount namespaces. Each one is checked now, with a line naming it on failure.
    public func selecting(_ filter: TaskFilter) throws -> TaskFilter {
        var filter = filter
        if !cgroups.isEmpty || !containers.isEmpty {
            let mount = try cgroup2Mount()
            for given in cgroups {
                let cgroup = try SelectedCgroup(given, option: "--cgroup", mount: mount)
                filter.subtrees.append(CgroupSubtree(path: cgroup.path, id: cgroup.id))
            }
            for cgroup in try containerCgroups(mount: mount) {
                filter.subtrees.append(CgroupSubtree(path: cgroup.path, id: cgroup.id))
            }
        }
        for pid in mntnsOf {
            guard kill(pid, 0) == 0 || errno == EPERM else {
                throw RuntimeFailure("--mntns-of \(pid): no such process (it may have exited); give the pid of a running process of the container")
            }
            do throws(FilterError) { filter.mountNamespaces.append(try MountNamespace.id(ofPID: pid)) } catch {
                throw RuntimeFailure("--mntns-of \(pid): \(error.description)")
            }
        }
        return filter
    }

    /// The cgroups of the --container selections.
    func containerCgroups(mount: String) throws -> [SelectedCgroup] {
        guard !containers.isEmpty else { return [] }
        let resolver = ContainerResolver()
        return try containers.map { query in
            let container: Container
            do throws(FilterError) { container = try resolver.find(query) } catch { throw RuntimeFailure("--container: \(error.description)") }
            return try SelectedCgroup(mount + container.cgroupPath, option: "--container \(query):", mount: mount)
        }
    }
}

/// A loaded and attached tracer: the object, its links, and its event ring.
public final class Tracer {
    public let object: BPFObject
    private var links: [AnyObject] = []
    private var ring: RingBuffer?
    private let lostMap: BPFMap?
    private var lostReported: UInt64 = 0
    public let startMonotonicNs: UInt64
    /// What a lost event means for this applet, and what helps (said with the count).
    public var lostExplanation = "ring buffer full; a larger --ringbuf-kb or a narrower filter helps"
    public let realtimeOffsetNs: Int64

    /// The variant kept for each of the applet's hooks on this kernel.
    public let hooks: [HookChoice]

    /// Opens `embedded`, applies the task filter (pinned maps checked before anything is loaded),
    /// lets `configure` set the applet's constants, keeps for each of `hooks` the best variant
    /// the kernel offers, then loads and attaches. When the kernel refuses a trampoline (fentry,
    /// fexit) at load, as under lockdown, the object is opened again without them.
    public init(_ embedded: EmbeddedObject, filter: TaskFilter, options: TracingOptions, attach: Bool = true,
                hooks: [Hook] = [], configure: (BPFObject) throws -> Void) throws {
        if let problem = Privileges.tracingProblem() {
            throw RuntimeFailure("\(problem): tracing needs root, or CAP_BPF with CAP_PERFMON; run it with sudo")
        }
        if access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            throw RuntimeFailure("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): bpfbox needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
        }
        if !KernelFeatures.hasRingBuffer {
            throw RuntimeFailure("this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8 and later): bpfbox needs Linux 5.8 or later, see docs/kernels.md")
        }
        LibbpfLog.configure(verbose: options.verbose)
        let opened: OpenedTaskFilter
        let selected = try options.selecting(filter)
        do { opened = try selected.openMaps() } catch { throw RuntimeFailure(error.description) }
        var refused = HookKind.refusedByEnvironment
        var object: BPFObject
        var choices: [HookChoice]
        while true {
            object = try BPFObject(embedded: embedded)
            try opened.apply(to: object)
            if let bytes = options.ringBufferBytes { try object.map("events").setMaxEntries(bytes) }
            try configure(object)
            do { choices = try object.chooseHooks(hooks, refusing: refused) } catch let error as HookUnavailable {
                throw RuntimeFailure(error.description)
            }
            do {
                try object.load()
                break
            } catch {
                guard choices.contains(where: { $0.variant.kind == .fentry }) else { throw error }
                refused.insert(.fentry)
                if options.showHooks { printError("\(embedded.name): fentry/fexit refused at load (\(error.description)); trying the next hook") }
            }
        }
        self.object = object
        self.hooks = choices
        showHooks = options.showHooks
        try opened.seed(object)
        if attach { links = try object.attachAll() }
        // Loading parsed the kernel's BTF (libbpf frees its copy after load): give what the
        // heap keeps of it back to the system, so that the steady state is below the peak.
        KernelFeatures.releaseKernelBTF()
        bpfsupport_trim_heap()
        lostMap = try? object.map("lost_events").opened()
        var mono = timespec(), real = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &real)
        startMonotonicNs = UInt64(mono.tv_sec) * 1_000_000_000 + UInt64(mono.tv_nsec)
        realtimeOffsetNs = (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
        if attach { announceHooks() }
        // From here a SIGINT or SIGTERM ends the run cleanly, even before the poll loop starts
        // (the header tells a caller that the tracer is attached).
        Signals.install()
    }

    private let showHooks: Bool

    /// With --verbose, says on stderr which hooks the loaded programs use, once they are
    /// attached (applets that attach programs themselves call it when they are done).
    public func announceHooks() {
        guard showHooks else { return }
        let sections = object.programs.filter(\.autoload).map(\.section)
        printError("\(object.name): hooks: \(sections.joined(separator: ", "))")
    }

    /// Keeps `attachment` (a BPFLink, a MapAttachment) attached as long as the tracer lives.
    public func keep(_ attachment: AnyObject) { links.append(attachment) }

    /// Starts consuming the `events` ring; `handler` sees each sample (valid during the call).
    public func onEvent(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        ring = try RingBuffer(map: try object.map("events").opened(), handler: handler)
    }

    /// The usual run of an event applet: the header (table mode), then every sample decoded by
    /// `decode` and turned into lines by `render` (none when a user-space filter drops it),
    /// until SIGINT/SIGTERM, `duration` or `finished`.
    public func stream<Event>(applet: String, json: Bool, header: String?, duration: Double? = nil,
                              before: () -> Void = {}, until finished: () -> Bool = { false },
                              decode: @escaping (UnsafeRawBufferPointer) -> Event?,
                              render: @escaping (Event) -> [String]) throws -> Int32 {
        let output = Output()
        if !json, let header { output.line(header) }
        output.flush()
        try onEvent { raw in
            guard let event = decode(raw) else { return }
            for line in render(event) { output.line(line) }
        }
        before()
        return try run(applet: applet, output: output, json: json, duration: duration, until: finished)
    }

    /// `stream` for applets that write one line per event straight into the output's buffer:
    /// `write` appends the line (without its newline) and returns false to drop the event.
    public func stream<Event>(applet: String, json: Bool, header: String?, duration: Double? = nil,
                              before: () -> Void = {}, until finished: () -> Bool = { false },
                              decode: @escaping (UnsafeRawBufferPointer, inout Event?) -> Event?,
                              write: @escaping (Event, ByteBuffer) -> Bool) throws -> Int32 {
        let output = Output()
        if !json, let header { output.line(header) }
        output.flush()
        let buffer = output.buffer
        // The last event is kept so that the next one is decoded into its storage.
        var last: Event?
        try onEvent { raw in
            guard let event = decode(raw, &last) else { return }
            let start = buffer.count
            if write(event, buffer) { output.endLine() } else { buffer.truncate(to: start) }
            last = consume event
        }
        before()
        return try run(applet: applet, output: output, json: json, duration: duration, until: finished)
    }

    /// Events the kernel side could not send since the last call.
    public func takeLost() -> UInt64 {
        guard let lostMap else { return 0 }
        let total = lostMap.perCPUSum(0)
        defer { lostReported = total }
        return total &- lostReported
    }

    public var totalLost: UInt64 { lostReported }

    /// Polls until SIGINT/SIGTERM, `duration`, or a closed stdout; flushes after every batch and
    /// reports lost events (stderr; also a JSON record in JSON mode).
    public func run(applet: String, output: Output, json: Bool, duration: Double? = nil,
                    until finished: () -> Bool = { false }) throws -> Int32 {
        Signals.install()
        let deadline = duration.map { monotonicNow() + UInt64($0 * 1e9) }
        var nextLostCheck = monotonicNow()
        while !Signals.stopRequested && !output.closed {
            // After a batch, let events gather for a millisecond: the kernel then wakes the reader
            // once per batch instead of once per event (an interrupt each, costly per event).
            if try (ring?.poll(timeoutMs: 100) ?? 0) > 0 { usleep(1000) }
            let now = monotonicNow()
            if now >= nextLostCheck {
                reportLost(applet: applet, output: output, json: json)
                nextLostCheck = now + 1_000_000_000
            }
            output.flush()
            if let deadline, now >= deadline { break }
            if finished() { break }
        }
        // Detached first: what the ring then holds is all there will be, and lost events are final.
        detach()
        ring?.drain()
        reportLost(applet: applet, output: output, json: json)
        output.flush()
        return 0
    }

    /// Detaches every program now, all at once: each classic tracepoint waits for an RCU grace
    /// period when it is released, so one after the other (as the kernel does at exit) opensnoop's
    /// dozen took up to a second; released on threads of their own, they share the wait.
    public func detach() {
        final class Holder: @unchecked Sendable {
            var object: AnyObject?
            init(_ object: AnyObject) { self.object = object }
        }
        // The holders own the last references: a link goes on the thread that drops it.
        let holders = links.count > 1 ? links.map { Unmanaged.passRetained(Holder($0)) } : []
        links = []
        var threads: [pthread_t] = []
        for holder in holders {
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                Unmanaged<Holder>.fromOpaque(raw!).takeRetainedValue().object = nil
                return nil
            }, holder.toOpaque())
            if started == 0 { threads.append(thread) } else { holder.release() }
        }
        for thread in threads { pthread_join(thread, nil) }
    }

    /// For summary applets: calls `tick` every `interval` seconds, `count` times (nil: until
    /// SIGINT/SIGTERM), and reports lost events after each.
    public func runIntervals(applet: String, output: Output, json: Bool, interval: Double, count: Int?,
                             tick: () throws -> Void) throws -> Int32 {
        Signals.install()
        var next = monotonicNow()
        var done = 0
        // A signal that came before the first interval still gets the interval under way printed.
        while !output.closed {
            next += UInt64(interval * 1e9)
            while !Signals.stopRequested {
                let now = monotonicNow()
                if now >= next { break }
                let wait = Int32(min((next - now) / 1_000_000 + 1, 200))
                if let ring { _ = try ring.poll(timeoutMs: wait) } else { _ = poll(nil, 0, wait) }
            }
            if Signals.stopRequested {
                detach()
                try tick() // the interval under way, as far as it got
                reportLost(applet: applet, output: output, json: json)
                break
            }
            try tick()
            reportLost(applet: applet, output: output, json: json)
            output.flush()
            done += 1
            if let count, done >= count { break }
        }
        output.flush()
        return 0
    }

    private func reportLost(applet: String, output: Output, json: Bool) {
        let lost = takeLost()
        guard lost > 0 else { return }
        printError("\(applet): \(lost) events lost (\(lostReported) in all): \(lostExplanation)")
        if json {
            var line = JSONLine()
            line.add("lost_events", lost)
            line.add("lost_events_total", lostReported)
            output.line(line.line)
        }
    }

    /// Wall-clock nanoseconds since the epoch for a bpf_ktime_get_ns() value.
    public func wallClock(_ monotonicNs: UInt64) -> Int64 { Int64(monotonicNs) + realtimeOffsetNs }
    /// Seconds since the tracer started.
    public func elapsed(_ monotonicNs: UInt64) -> Double {
        Double(Int64(monotonicNs) - Int64(startMonotonicNs)) / 1e9
    }
}

public func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// SIGINT and SIGTERM end a run cleanly; SIGPIPE is ignored (a closed stdout ends it instead).
/// Installed before anything is loaded, so that a signal during the start (loading takes up to a
/// second) ends the run at its first poll with exit 0 instead of killing the process.
enum Signals {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    nonisolated(unsafe) static var installed = false
    static var stopRequested: Bool { flag != 0 }

    static func install() {
        guard !installed else { return }
        installed = true
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in Signals.flag = 1 }
        sigemptyset(&action.sa_mask)
        // Reads and writes of the start are restarted; poll and epoll_wait still return EINTR.
        action.sa_flags = SA_RESTART
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        signal(SIGPIPE, SIG_IGN)
    }
}

/// Clock text for rows.
enum TimeText {
    /// HH:MM:SS in local time.
    static func clock(wallNs: Int64) -> String {
        var seconds = time_t(wallNs / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// RFC 3339 UTC with microseconds, for JSON.
    static func iso8601(wallNs: Int64) -> String {
        let out = ByteBuffer(capacity: 32)
        appendISO8601(wallNs: wallNs, to: out)
        return out.string()
    }

    /// `iso8601`, written at the end of `out`: arithmetic only (the civil date from the day
    /// number, proleptic Gregorian), no libc call and no allocation per event.
    static func appendISO8601(wallNs: Int64, to out: ByteBuffer) {
        let seconds = wallNs >= 0 ? wallNs / 1_000_000_000 : (wallNs - 999_999_999) / 1_000_000_000
        let micros = UInt64((wallNs - seconds * 1_000_000_000) / 1000)
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = UInt64(seconds - days * 86_400)
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        if year < 0 { out.append(UInt8(ascii: "-")) }
        out.append(zeroPadded: UInt64(abs(year)), width: 4)
        out.append(UInt8(ascii: "-"))
        out.append(zeroPadded: UInt64(month), width: 2)
        out.append(UInt8(ascii: "-"))
        out.append(zeroPadded: UInt64(day), width: 2)
        out.append(UInt8(ascii: "T"))
        out.append(zeroPadded: secondOfDay / 3600, width: 2)
        out.append(UInt8(ascii: ":"))
        out.append(zeroPadded: secondOfDay / 60 % 60, width: 2)
        out.append(UInt8(ascii: ":"))
        out.append(zeroPadded: secondOfDay % 60, width: 2)
        out.append(UInt8(ascii: "."))
        out.append(zeroPadded: micros, width: 6)
        out.append(UInt8(ascii: "Z"))
    }
}

/// errno names for the values the tracers report.
public enum ErrnoName {
    static let names: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
        9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY",
        17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE",
        24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 31: "EMLINK",
        36: "ENAMETOOLONG", 40: "ELOOP", 95: "EOPNOTSUPP", 110: "ETIMEDOUT", 111: "ECONNREFUSED",
        113: "EHOSTUNREACH", 104: "ECONNRESET", 122: "EDQUOT",
    ]
    public static func name(_ code: Int32) -> String { names[code] ?? "E\(code)" }
    /// The name for a negative return value (-errno); nil for a success.
    public static func of(_ ret: Int32) -> String? { ret < 0 && ret > -4096 ? name(-ret) : nil }
}

/// User names for -u.
public enum Users {
    /// A uid from a number or a user name.
    public static func uid(_ text: String, option: String) throws(UsageError) -> UInt32 {
        if let value = UInt32(text) { return value }
        guard let entry = getpwnam(text) else {
            throw UsageError("\(option): '\(text)' is neither a uid nor a known user name")
        }
        return entry.pointee.pw_uid
    }
}

/// Turns the errors of a tracing run into one line and an exit status.
public func runTracingApplet(_ name: String, spec: CommandSpec, arguments: [String],
                             body: (ParsedOptions) throws -> Int32) -> Int32 {
    Signals.install()
    do {
        let parsed = try spec.parse(arguments)
        if parsed.has("help") {
            let out = Output()
            out.line(spec.helpText.hasSuffix("\n") ? String(spec.helpText.dropLast()) : spec.helpText)
            out.flush()
            return 0
        }
        return try body(parsed)
    } catch let error as UsageError {
        printError(spec.usageLine)
        printError("\(name): error: \(error.description)")
        return 2
    } catch let error as RuntimeFailure {
        printError("\(name): \(error.description)")
        return 1
    } catch let error as BPFError {
        printError("\(name): \(error.description)")
        return 1
    } catch let error as FilterError {
        printError("\(name): \(error.description)")
        return 1
    } catch {
        printError("\(name): \(error)")
        return 1
    }
}
