// render-bench: user-space cost per event, decode and render, columns and JSON, to /dev/null.
//
//   swift build -c release --product render-bench && .build/release/render-bench [N [CASE]]
//
// CASE keeps only the cases whose name contains it ("json", "opensnoop json").
//
// Builds one realistic ring-buffer sample per applet (the C structs the BPF side fills), then N
// times: decode it as the tracer does, render it (table row or JSON) and hand the line to an
// Output on /dev/null (flushed every 60 KiB, as in a run). Prints ns per event and events per
// second for each case, and a JSON line with every figure (for bench scripts).
@preconcurrency import Glibc
import Applets
import BPFSupport

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func fill(_ task: inout bpfbox_task, comm: String) {
    task.ts_ns = 123_456_789_012
    task.cgroup_id = 4_294_967_297
    task.mntns_id = 4_026_531_841
    task.pid = 4242
    task.tid = 4243
    task.uid = 1000
    task.gid = 1000
    withUnsafeMutableBytes(of: &task.comm) { raw in
        for (i, b) in comm.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
    }
}

func openSample() -> [UInt8] {
    var e = opensnoop_event()
    fill(&e.task, comm: "nginx")
    e.ret = 7
    e.flags = 0o2000000
    e.dfd = -100
    let path = Array("/usr/share/nginx/html/assets/app.3f9a2c.js\0".utf8)
    e.path_size = UInt32(path.count)
    // The data follows pad (the header's static assertion); Swift does not import the array.
    let dataOffset = MemoryLayout<opensnoop_event>.offset(of: \opensnoop_event.pad)! + 4
    return withUnsafeBytes(of: &e) { Array($0.prefix(dataOffset)) } + path
}

func execSample() -> [UInt8] {
    var e = execsnoop_event()
    fill(&e.task, comm: "curl")
    e.ppid = 4000
    let filename = Array("/usr/bin/curl\0".utf8)
    let argv = Array("curl\0-s\0-o\0/dev/null\0https://example.com/api/v1/items?page=2\0".utf8)
    e.filename_size = UInt32(filename.count)
    e.args_size = UInt32(filename.count + argv.count)
    let argsOffset = MemoryLayout<execsnoop_event>.offset(of: \execsnoop_event.args_size)! + 4
    return withUnsafeBytes(of: &e) { Array($0.prefix(argsOffset)) } + filename + argv
}

let n = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 200_000
let devNull = open("/dev/null", O_WRONLY)
let open_ = openSample(), exec_ = execSample()

/// The tracer's clock, as in a run: JSON events carry the wall-clock time and seconds since start.
final class BenchClock: EventClock {
    func wallClock(_ monotonicNs: UInt64) -> Int64 { 1_795_000_000_000_000_000 + Int64(monotonicNs) }
    func elapsed(_ monotonicNs: UInt64) -> Double { Double(monotonicNs) / 1e9 }
}
let clock = BenchClock()

func renderer<R>(_ make: () throws -> R) -> R { try! make() }
let openTable = renderer { OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse([])), clock: clock) }
let openJSON = renderer { OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse(["--json"])), clock: clock) }
let execTable = renderer { ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse([])), clock: clock) }
let execJSON = renderer { ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse(["--json"])), clock: clock) }

// As in a run: each event is decoded into the storage of the one before.
nonisolated(unsafe) var lastOpen: OpenSnoop.Event?
nonisolated(unsafe) var lastExec: ExecSnoop.Event?

let cases: [(String, [UInt8], (UnsafeRawBufferPointer, Output) -> Void)] = [
    ("opensnoop table", open_, { raw, out in
        if let e = OpenSnoop.Event(raw, reusing: &lastOpen) { openTable.write(e, to: out.buffer); out.endLine(); lastOpen = e }
    }),
    ("opensnoop json", open_, { raw, out in
        if let e = OpenSnoop.Event(raw, reusing: &lastOpen) { openJSON.write(e, to: out.buffer); out.endLine(); lastOpen = e }
    }),
    ("execsnoop table", exec_, { raw, out in
        if let e = ExecSnoop.Event(raw, reusing: &lastExec) { if execTable.write(e, to: out.buffer) { out.endLine() }; lastExec = e }
    }),
    ("execsnoop json", exec_, { raw, out in
        if let e = ExecSnoop.Event(raw, reusing: &lastExec) { if execJSON.write(e, to: out.buffer) { out.endLine() }; lastExec = e }
    }),
]

let only = CommandLine.arguments.dropFirst(2).first
var summary: [String] = []
for (name, sample, body) in cases where only.map({ name.contains($0) }) ?? true {
    let out = Output(fd: devNull)
    sample.withUnsafeBytes { raw in
        for _ in 0..<min(n / 10, 10_000) { body(raw, out) } // warm-up
        out.flush()
        let start = now()
        for _ in 0..<n { body(raw, out) }
        out.flush()
        let ns = Double(now() - start) / Double(n)
        let label = name + String(repeating: " ", count: max(0, 16 - name.count))
        print("\(label) \(Int(ns.rounded())) ns/event, \(Int((1e9 / ns).rounded())) events/s")
        summary.append("\"\(name)\":\(Int(ns.rounded()))")
    }
}
print("{\"n\":\(n),\"ns_per_event\":{\(summary.joined(separator: ","))}}")
