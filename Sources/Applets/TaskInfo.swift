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
    public var comm: [UInt8]

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
        self.comm = comm
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
        comm = Array(raw[commOffset..<(commOffset + Int(BPFBOX_COMM_LEN))].prefix { $0 != 0 })
    }

    /// Time fields first, then identity: time, timestamp, pid, tid, uid, gid, comm.
    func addIdentity(to j: inout JSONLine, clock: EventClock?) {
        if let clock {
            j.add("time", TimeText.iso8601(wallNs: clock.wallClock(timestampNs)))
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
        Column(header, width: width) { row in
            let ts = task(row).timestampNs
            return formatFixed(clock?.elapsed(ts) ?? Double(ts) / 1e9, decimals: decimals)
        }
    }

    static func uid<Row>(_ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column("UID", width: 6) { String(task($0).uid) }
    }

    static func comm<Row>(_ header: String = "COMM", _ task: @escaping (Row) -> TaskInfo) -> Column<Row> {
        Column(header, width: 16) { Escape.terminal(task($0).comm) }
    }
}
