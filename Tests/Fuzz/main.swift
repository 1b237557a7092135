// libFuzzer target for the event decoders and the option parser (scripts/fuzz.sh builds and runs
// it; it is not part of `swift build` or `swift test`).
//
// The first byte picks what is fuzzed; the rest is the input:
//   0-4  a ring-buffer sample for execsnoop, opensnoop, capable, tcpconnect or sockmap: decoded,
//        and what decodes is rendered as columns and as JSON (which must parse as one line)
//   5    an argument vector (NUL-separated) for every applet's option parser and Config
@testable import Applets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0] % 6
    // A copy of exactly the sample's size: AddressSanitizer catches a read past it.
    let body = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 8)
    defer { body.deallocate() }
    body.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    let raw = UnsafeRawBufferPointer(body)
    switch selector {
    case 0:
        if let e = ExecSnoop.Event(raw) { check(Fuzz.exec.render(e)); check(Fuzz.execJSON.render(e), json: true) }
    case 1:
        if let e = OpenSnoop.Event(raw) { check(Fuzz.open.render(e)); check(Fuzz.openJSON.render(e), json: true) }
    case 2:
        if let e = Capable.Event(raw) { Fuzz.capable.render(e).forEach { check($0) }; Fuzz.capableJSON.render(e).forEach { check($0, json: true) } }
    case 3:
        if let e = TcpConnect.Event(raw) { check(Fuzz.connect.table.row(e)); check(Fuzz.connectJSON.json(e), json: true) }
    case 4:
        if let e = Sockmap.Event(raw) {
            check(Sockmap.Renderer(json: false).render(e, wallNs: 0, cgroup: nil, peerIsLocal: false))
            check(Sockmap.Renderer(json: true).render(e, wallNs: 0, cgroup: nil, peerIsLocal: true), json: true)
        }
    default:
        let arguments = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        for applet in Registry.applets {
            _ = try? applet.spec?.parse(arguments)
        }
        _ = try? ExecSnoop.Config(ExecSnoop.spec.parse(arguments))
        _ = try? OpenSnoop.Config(OpenSnoop.spec.parse(arguments))
        _ = try? Capable.Config(Capable.spec.parse(arguments))
        _ = try? TcpConnect.Config(TcpConnect.spec.parse(arguments))
        _ = try? TcpTop.Config(TcpTop.spec.parse(arguments))
        _ = try? SkbCount.Config(SkbCount.spec.parse(arguments))
        _ = try? Sockmap.Config(Sockmap.spec.parse(arguments))
    }
    return 0
}

/// A rendered line is one line without raw control characters; JSON is one valid object.
func check(_ line: String?, json: Bool = false) {
    guard let line else { return }
    for scalar in line.unicodeScalars where scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) {
        fatalError("raw control character U+\(String(scalar.value, radix: 16)) in: \(line.debugDescription)")
    }
    if json && !(line.hasPrefix("{") && line.hasSuffix("}")) { fatalError("not a JSON object: \(line)") }
}

enum Fuzz {
    nonisolated(unsafe) static let exec = ExecSnoop.Renderer(config: try! ExecSnoop.Config(ExecSnoop.spec.parse(["-T", "-U"])), clock: nil)
    nonisolated(unsafe) static let execJSON = ExecSnoop.Renderer(config: try! ExecSnoop.Config(ExecSnoop.spec.parse(["--json"])), clock: nil)
    nonisolated(unsafe) static let open = OpenSnoop.Renderer(config: try! OpenSnoop.Config(OpenSnoop.spec.parse(["-e", "-U"])), clock: nil)
    nonisolated(unsafe) static let openJSON = OpenSnoop.Renderer(config: try! OpenSnoop.Config(OpenSnoop.spec.parse(["--json"])), clock: nil)
    nonisolated(unsafe) static let capable = Capable.Renderer(config: try! Capable.Config(Capable.spec.parse(["-x"])), clock: nil)
    nonisolated(unsafe) static let capableJSON = Capable.Renderer(config: try! Capable.Config(Capable.spec.parse(["--json"])), clock: nil)
    nonisolated(unsafe) static let connect = TcpConnect.Renderer(config: try! TcpConnect.Config(TcpConnect.spec.parse(["-L", "-U"])), clock: nil)
    nonisolated(unsafe) static let connectJSON = TcpConnect.Renderer(config: try! TcpConnect.Config(TcpConnect.spec.parse(["--json"])), clock: nil)
}
