// The event path of opensnoop and execsnoop, one step at a time, on realistic samples: what
// bench/render measures end to end, taken apart. Every benchmark writes into a reused buffer,
// as the tracer does.
import Applets
import Benchmark
import BPFSupport

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

func openSample(_ path: String) -> [UInt8] {
    var e = opensnoop_event()
    fill(&e.task, comm: "nginx")
    e.ret = 7
    e.flags = 0o2000000
    e.dfd = -100
    let data = Array(path.utf8) + [0]
    e.path_size = UInt32(data.count)
    return withUnsafeBytes(of: &e) { Array($0.prefix(OpenSnoop.Event.headerSize)) } + data
}

func execSample() -> [UInt8] {
    var e = execsnoop_event()
    fill(&e.task, comm: "curl")
    e.ppid = 4000
    let filename = Array("/usr/bin/curl\0".utf8)
    let argv = Array("curl\0-s\0-o\0/dev/null\0https://example.com/api/v1/items?page=2\0".utf8)
    e.filename_size = UInt32(filename.count)
    e.args_size = UInt32(filename.count + argv.count)
    return withUnsafeBytes(of: &e) { Array($0.prefix(ExecSnoop.Event.headerSize)) } + filename + argv
}

/// The tracer's clock, as in a run.
final class Clock: EventClock {
    func wallClock(_ monotonicNs: UInt64) -> Int64 { 1_795_000_000_000_000_000 + Int64(monotonicNs) }
    func elapsed(_ monotonicNs: UInt64) -> Double { Double(monotonicNs) / 1e9 }
}

let clock = Clock()
let open = openSample("/usr/share/nginx/html/assets/app.3f9a2c.js")
let hostile = openSample("/tmp/\u{1b}[2J\u{7f}caf\u{e9}-\"quoted\"\\-\u{85}-日本")
let exec = execSample()
let openJSON = OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse(["--json"])), clock: clock)
let openTable = OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse(["-T", "-U", "-e"])), clock: clock)
let execJSON = ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse(["--json"])), clock: clock)
let execTable = ExecSnoop.Renderer(config: try ExecSnoop.Config(ExecSnoop.spec.parse(["-T", "-U"])), clock: clock)
let out = ByteBuffer(capacity: 1 << 16)
nonisolated(unsafe) var lastOpen: OpenSnoop.Event?
nonisolated(unsafe) var lastExec: ExecSnoop.Event?

func decodeOpen(_ sample: [UInt8]) -> OpenSnoop.Event {
    let e = sample.withUnsafeBytes { OpenSnoop.Event($0, reusing: &lastOpen) }!
    lastOpen = e
    return e
}

func decodeExec() -> ExecSnoop.Event {
    let e = exec.withUnsafeBytes { ExecSnoop.Event($0, reusing: &lastExec) }!
    lastExec = e
    return e
}

/// Keeps a result alive so that the optimizer cannot drop the work.
@inline(never) func keep<T>(_ value: T) { withExtendedLifetime(value) {} }

let opened = decodeOpen(open), execed = decodeExec()

benchmark("opensnoop decode") { keep(decodeOpen(open)) }
benchmark("opensnoop json (written)") { out.removeAll(); openJSON.write(opened, to: out) }
benchmark("opensnoop columns -T -U -e (written)") { out.removeAll(); openTable.write(opened, to: out) }
benchmark("opensnoop decode + json") { out.removeAll(); openJSON.write(decodeOpen(open), to: out) }
benchmark("opensnoop decode + json, hostile path") { out.removeAll(); openJSON.write(decodeOpen(hostile), to: out) }
benchmark("execsnoop decode") { keep(decodeExec()) }
benchmark("execsnoop json (written)") { out.removeAll(); keep(execJSON.write(execed, to: out)) }
benchmark("execsnoop columns -T -U (written)") { out.removeAll(); keep(execTable.write(execed, to: out)) }
benchmark("escape for a terminal, 64 bytes") {
    out.removeAll()
    Escape.appendTerminal(hostile[OpenSnoop.Event.headerSize...], to: out)
}
benchmark("integer, 12 digits") { out.removeAll(); out.append(decimal: UInt64(123_456_789_012)) }

Benchmark.main()
