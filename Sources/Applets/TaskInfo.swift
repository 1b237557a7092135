import BPFSupport

/// The `struct bpfbox_task` that starts every per-task event: who, where, when.
public struct TaskInfo: Equatable, Sendable {
    public var timestampNs: UInt64
    public var cgroupID: UInt64
    public var mntnsID: UInt64
    public var pid: UInt32
    public var tid: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var comm: Comm

    public static let size = MemoryLayout<bpfbox_task>.size

    public init(timestampNs: UInt64 = 0, cgroupID: UInt64 = 0, mntnsID: UInt64 = 0, pid: UInt32 = 0,
                tid: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0, comm: [UInt8] = []) {
        self.timestampNs = timestampNs
        self.cgroupID = cgroupID
        self.mntnsID = mntnsID
        self.pid = pid
        self.tid = tid
        self.uid = uid
        self.gid = gid
        self.comm = Comm(comm)
    }

    /// Decodes the task at `offset` of a sample; the caller has checked that it fits.
    init(_ raw: UnsafeRawBufferPointer, at offset: Int) {
        func field<T: BitwiseCopyable>(_ path: KeyPath<bpfbox_task, T>) -> T {
            raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<bpfbox_task>.offset(of: path)!, as: T.self)
        }
        timestampNs = field(\.ts_ns)
        cgroupID = field(\.cgroup_id)
        mntnsID = field(\.mntns_id)
        pid = field(\.pid)
        tid = field(\.tid)
        uid = field(\.uid)
        gid = field(\.gid)
        let commOffset = offset + MemoryLayout<bpfbox_task>.offset(of: \bpfbox_task.comm)!
        comm = Comm(raw[commOffset..<(commOffset + Int(BPFBOX_COMM_LEN))].prefix { $0 != 0 })
    }

    /// Time fields first, then identity: time, timestamp, pid, tid, uid, gid, comm.
    func addIdentity(to j: inout JSONLine, clock: EventClock?) {
        if let clock {
            j.key("time")
            j.out.append(UInt8(ascii: "\""))
            TimeText.appendISO8601(wallNs: clock.wallClock(timestampNs), to: j.out)
            j.out.append(UInt8(ascii: "\""))
            j.add("timestamp", clock.elapsed(timestampNs))
        } else {
            j.add("timestamp", Double(timestampNs) / 1e9)
        }
        j.add("pid", pid)
        j.add("tid", tid)
        j.add("uid", uid)
        j.add("gid", gid)
        j.add("comm", bytes: comm)
    }

    /// Where: cgroup_id, mntns_id, and with --containers the container (last in every event's JSON).
    func addPlace(to j: inout JSONLine, containers: ContainerLabels<UInt64>?) {
        j.add("cgroup_id", cgroupID)
        j.add("mntns_id", mntnsID)
        containers?.add(cgroupID, to: &j)
    }
}

/// A task's comm (at most BPFBOX_COMM_LEN bytes, without its NUL), kept inline: decoding an
/// event allocates nothing for it.
public struct Comm: RandomAccessCollection, Hashable, Sendable, CustomStringConvertible {
    private var storage: (UInt64, UInt64) = (0, 0)
    public private(set) var count: Int = 0

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        withUnsafeMutableBytes(of: &storage) { raw in
            for byte in bytes.prefix(raw.count) {
                raw[count] = byte
                count += 1
            }
        }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(i: Int) -> UInt8 {
        precondition(i >= 0 && i < count, "index out of range")
        return withUnsafeBytes(of: storage) { $0[i] }
    }

    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        try withUnsafeBytes(of: storage) { raw in
            try body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count))
        }
    }

    public static func == (a: Comm, b: Comm) -> Bool { a.count == b.count && a.storage == b.storage }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0)
        hasher.combine(storage.1)
    }

    public var description: String { String(decoding: self, as: UTF8.self) }
}

/// Converts bpf_ktime_get_ns() values to wall-clock time and seconds since start.
public protocol EventClock: AnyObject {
    func wallClock(_ monotonicNs: UInt64) -> Int64
    func elapsed(_ monotonicNs: UInt64) -> Double
}

extension Tracer: EventClock {}

/// Columns every per-task applet shares, built the same way everywhere.
enum TaskColumns {
    static func clock<Row>(_ clock: EventClock?, _ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column("TIME", width: 8) { row in
            clock.map { TimeText.clock(wallNs: $0.wallClock(task(row).timestampNs)) } ?? "00:00:00"
        }
    }

    static func seconds<Row>(_ clock: EventClock?, header: String = "TIME(s)", width: Int = 8, decimals: Int = 3,
                             _ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column(header, width: width, write: { row, out in
            let ts = task(row).timestampNs
            out.append(fixed: clock?.elapsed(ts) ?? Double(ts) / 1e9, decimals: decimals)
        })
    }

    static func uid<Row>(_ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column("UID", width: 6, write: { row, out in out.append(decimal: task(row).uid) })
    }

    static func comm<Row>(_ header: String = "COMM", _ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column(header, width: 16, write: { row, out in Escape.appendTerminal(task(row).comm, to: out) })
    }
}
