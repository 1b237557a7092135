import Applets
import ContainerFilter
import BPFSupport
import Foundation
import XCTest

/// Golden headers, rows and JSON of the applets besides execsnoop, from hand-made events.
final class AppletRenderingTests: XCTestCase {
    private func parse(_ spec: CommandSpec, _ arguments: [String]) throws -> ParsedOptions {
        try spec.parse(arguments)
    }

    private let task = TaskInfo(timestampNs: 12_345_678_901_234, cgroupID: 4_294_967_297, mntnsID: 4_026_531_841,
                                pid: 4242, tid: 4243, uid: 1000, gid: 100, comm: Array("worker".utf8))

    private func assertValidJSON(_ line: String, file: StaticString = #filePath, line number: UInt = #line) {
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "not JSON: \(line)", file: file, line: number)
    }

    // MARK: opensnoop

    func testOpenSnoop() throws {
        let opened = OpenSnoop.Event(task: task, ret: 3, flags: 0o2000000, path: Array("/etc/passwd".utf8))
        let failed = OpenSnoop.Event(task: task, ret: -2, flags: 0o101, mode: 0o644, syscall: 2,
                                     path: Array("missing\u{1B}[2J".utf8))
        let relative = OpenSnoop.Event(task: task, ret: 4, path: Array("data/x".utf8),
                                       directory: [Array("srv".utf8), Array("app".utf8)])
        var text = ""
        for arguments in [[], ["-T", "-U", "-e"], ["-t", "4243"]] {
            let renderer = OpenSnoop.Renderer(config: try OpenSnoop.Config(parse(OpenSnoop.spec, arguments)), clock: nil)
            text += "# opensnoop \(arguments.joined(separator: " "))\n" + renderer.table.header + "\n"
            for e in [opened, failed, relative] { text += renderer.render(e)! + "\n" }
        }
        let json = OpenSnoop.Renderer(config: try OpenSnoop.Config(parse(OpenSnoop.spec, ["--json"])), clock: nil)
        for e in [opened, failed, relative] {
            let line = json.render(e)!
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "opensnoop")
        XCTAssertEqual(String(decoding: relative.displayPath, as: UTF8.self), "/srv/app/data/x")
        XCTAssertEqual(OpenSnoop.flagList(0o2000101), ["O_WRONLY", "O_CLOEXEC", "O_CREAT"])
    }

    // MARK: capable

    func testCapable() throws {
        let allowed = Capable.Event(task: task, cap: 13, ret: 0, euid: 0, userns: 4_026_531_837)
        let denied = Capable.Event(task: task, cap: 0, ret: -1, euid: 1000, userns: 4_026_531_837)
        let future = Capable.Event(task: task, cap: 41, ret: 0)
        var text = ""
        for arguments in [[], ["-x"]] {
            let renderer = Capable.Renderer(config: try Capable.Config(parse(Capable.spec, arguments)), clock: nil)
            text += "# capable \(arguments.joined(separator: " "))\n" + renderer.table.header + "\n"
            for e in [allowed, denied, future] { text += renderer.render(e).joined(separator: "\n") + "\n" }
        }
        let json = Capable.Renderer(config: try Capable.Config(parse(Capable.spec, ["--json"])), clock: nil)
        for e in [allowed, denied] {
            let line = json.render(e)[0]
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "capable")
    }

    /// On a hook that sees cap_capable's option word (fexit, kprobe): AUDIT, and INSETID with -x.
    func testCapableWithOptions() throws {
        let audited = Capable.Event(task: task, cap: 13, ret: 0, euid: 0, opts: 0, userns: 4_026_531_837)
        let quiet = Capable.Event(task: task, cap: 4, ret: -1, euid: 1000, opts: UInt32(CAPABLE_OPT_NOAUDIT | CAPABLE_OPT_INSETID),
                                  userns: 4_026_531_837)
        XCTAssertTrue(audited.audit)
        XCTAssertFalse(quiet.audit)
        XCTAssertTrue(quiet.insetid)
        var text = ""
        for arguments in [[], ["-x"], ["--json"]] {
            let renderer = Capable.Renderer(config: try Capable.Config(parse(Capable.spec, arguments)), clock: nil,
                                            optionsKnown: true)
            text += "# capable \(arguments.joined(separator: " ")) (option word known)\n"
            if arguments != ["--json"] { text += renderer.table.header + "\n" }
            for e in [audited, quiet] { text += renderer.render(e).joined(separator: "\n") + "\n" }
        }
        assertSnapshot(text, named: "capable_options")
        XCTAssertEqual(Capable.name(40), "CAP_CHECKPOINT_RESTORE")
        XCTAssertEqual(Capable.name(41), "CAP_41")
        XCTAssertEqual(Capable.name(-1), "CAP_-1")
    }

    // MARK: tcpconnect

    func testTcpConnect() throws {
        let v4 = TcpConnect.Event(task: task, family: 2, saddr: [127, 0, 0, 1] + Array(repeating: 0, count: 12),
                                  daddr: [10, 1, 2, 3] + Array(repeating: 0, count: 12), sport: 51234, dport: 443,
                                  latencyNs: 1_234_567)
        let mapped = TcpConnect.Event(task: task, family: 10, saddr: Array(repeating: 0, count: 10) + [255, 255, 127, 0, 0, 1],
                                      daddr: Array(repeating: 0, count: 10) + [255, 255, 127, 0, 0, 1],
                                      sport: 40000, dport: 8080, outcome: 1, error: 111, latencyNs: 42_000)
        let v6 = TcpConnect.Event(task: task, family: 10, saddr: Array(repeating: 0, count: 15) + [1],
                                  daddr: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [7],
                                  sport: 33333, dport: 22, outcome: 2, error: 110, latencyNs: 3_000_000_000)
        var text = ""
        for arguments in [[], ["-t", "-U", "-L"], ["--latency"]] {
            let renderer = TcpConnect.Renderer(config: try TcpConnect.Config(parse(TcpConnect.spec, arguments)), clock: nil)
            text += "# tcpconnect \(arguments.joined(separator: " "))\n" + renderer.table.header + "\n"
            for e in [v4, mapped, v6] { text += renderer.table.row(e) + "\n" }
        }
        let json = TcpConnect.Renderer(config: try TcpConnect.Config(parse(TcpConnect.spec, ["--json"])), clock: nil)
        for e in [v4, mapped, v6] {
            let line = json.json(e)
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "tcpconnect")
    }

    // MARK: tcptop

    func testTcpTop() throws {
        let rows = [
            TcpTop.Row(pid: 10, comm: Array("nginx".utf8), family: 2, laddr: [127, 0, 0, 1] + Array(repeating: 0, count: 12),
                       lport: 80, raddr: [127, 0, 0, 1] + Array(repeating: 0, count: 12), rport: 50000,
                       sent: 10 * 1024 * 1024, received: 2048, cgroupID: 7),
            TcpTop.Row(pid: 11, comm: Array("curl".utf8), family: 2, laddr: [127, 0, 0, 1] + Array(repeating: 0, count: 12),
                       lport: 50000, raddr: [127, 0, 0, 1] + Array(repeating: 0, count: 12), rport: 80,
                       sent: 2048, received: 10 * 1024 * 1024, cgroupID: 7),
            TcpTop.Row(pid: 12, comm: Array("sshd".utf8), family: 10, laddr: Array(repeating: 0, count: 15) + [1], lport: 22,
                       raddr: Array(repeating: 0, count: 15) + [1], rport: 60000, sent: 4096, received: 1024),
        ]
        var text = ""
        for arguments in [["-S"], ["-S", "-s", "received", "-r", "1"], ["-S", "-4"]] {
            let renderer = TcpTop.Renderer(config: try TcpTop.Config(parse(TcpTop.spec, arguments)), clock: nil)
            text += "# tcptop \(arguments.joined(separator: " "))\n"
            text += renderer.render(rows, clear: false, now: 0).joined(separator: "\n") + "\n"
        }
        let json = TcpTop.Renderer(config: try TcpTop.Config(parse(TcpTop.spec, ["--json"])), clock: nil)
        for line in json.render(rows, clear: false, now: 0) {
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "tcptop")
        let cleared = TcpTop.Renderer(config: try TcpTop.Config(parse(TcpTop.spec, [])), clock: nil)
        let first = try XCTUnwrap(cleared.render([], clear: true, now: 0).first)
        XCTAssertTrue(first.hasPrefix("\u{1B}[H\u{1B}[2J00:00:00 loadavg: "), first)
    }

    // MARK: skbcount

    func testSkbCount() throws {
        let rows = [
            SkbCount.Row(cgroup: "/system.slice/nginx.service", rxPackets: 120, rxBytes: 150_000, txPackets: 90, txBytes: 2_000_000),
            SkbCount.Row(cgroup: "/kubepods/pod1/\u{1B}[31mevil", rxPackets: 1, rxBytes: 60, txPackets: 0, txBytes: 0),
        ]
        var text = ""
        for arguments in [[], ["--cumulative"]] {
            let renderer = SkbCount.Renderer(config: try SkbCount.Config(parse(SkbCount.spec, arguments)))
            text += "# skbcount \(arguments.joined(separator: " "))\n"
            text += renderer.render(rows, clear: false, now: 0).joined(separator: "\n") + "\n"
        }
        let json = SkbCount.Renderer(config: try SkbCount.Config(parse(SkbCount.spec, ["--json"])))
        for line in json.render(rows, clear: false, now: 0) {
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "skbcount")
    }

    // MARK: sockmap

    func testSockmap() throws {
        let loopback = [UInt8]([127, 0, 0, 1]) + Array(repeating: 0, count: 12)
        let client = Sockmap.Endpoint(family: 2, address: loopback, port: 41000)
        let server = Sockmap.Endpoint(family: 2, address: loopback, port: 8080)
        let remote = Sockmap.Endpoint(family: 10, address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1], port: 443)
        let sample = Sockmap.Sample(sockets: 4, delta: Sockmap.Counters(socketsAdded: 2, messagesRedirected: 1500,
                                                                        bytesRedirected: 6_144_000, messagesPassed: 3, bytesPassed: 300))
        let totals = Sockmap.Counters(socketsAdded: 6, socketsRefused: 1, messagesRedirected: 3000, bytesRedirected: 12_288_000,
                                      messagesPassed: 3, bytesPassed: 300)
        let events = [
            Sockmap.Event(kind: .tracked, local: client, remote: server, timestampNs: 0, cgroupID: 7),
            Sockmap.Event(kind: .refused(errno: 7), local: server, remote: client, timestampNs: 0, cgroupID: 7),
            Sockmap.Event(kind: .peerMissing, local: client, remote: remote, timestampNs: 0, cgroupID: 0),
        ]
        var text = ""
        for (name, renderer) in [("sockmap", Sockmap.Renderer(json: false)),
                                 ("sockmap --apply-bytes 65536", Sockmap.Renderer(json: false, countsBytes: false)),
                                 ("sockmap --json", Sockmap.Renderer(json: true))] {
            text += "# \(name)\n"
            var lines = renderer.json ? [] : [renderer.header]
            lines.append(renderer.render(sample, wallNs: 0))
            lines += events.enumerated().map { index, event in
                renderer.render(event, wallNs: 0, cgroup: index < 2 ? "/app\u{1B}[2J" : nil, peerIsLocal: index == 1)
            }
            lines += renderer.preexisting([(client, server)], wallNs: 0)
            lines.append(renderer.totals(totals))
            for line in lines where renderer.json { assertValidJSON(line) }
            text += lines.joined(separator: "\n") + "\n"
        }
        assertSnapshot(text, named: "sockmap")
    }

    func testSockmapReadsEstablishedConnectionsFromProcNet() {
        let tcp = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0
               1: 0100007F:A028 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1
            """
        let tcp6 = """
              sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 00000000000000000000000001000000:01BB 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 20 4 30 10 -1
               1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A028 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 20 4 30 10 -1
            """
        let v4 = Preexisting.parse(tcp, family: 2)
        XCTAssertEqual(v4.map(\.inode), [2222], "only ESTABLISHED entries")
        XCTAssertEqual(v4.first.map { "\($0.local.text) \($0.remote.text)" }, "127.0.0.1:41000 127.0.0.1:8080")
        let v6 = Preexisting.parse(tcp6, family: 10)
        XCTAssertEqual(v6.map { "\($0.local.text) \($0.remote.text) \($0.inode)" },
                       ["[::1]:443 [::1]:50000 3333", "127.0.0.1:8080 127.0.0.1:41000 4444"])
        XCTAssertEqual(v6.last?.local.family, 2, "v4-mapped entries are keyed as IPv4, as the BPF side does")
    }

    // MARK: --containers

    func testContainersColumnAndJSON() throws {
        let web = Container(id: "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa99", name: "web",
                            runtime: .docker, cgroupPath: "/system.slice/docker-4f3c2b1a0e9d.scope")
        let pod = Container(id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", runtime: .cri,
                            cgroupPath: "/kubepods/burstable/pod11/0123456789ab", podUID: "11")
        var resolved: [UInt64] = []
        let labels = ContainerLabels<UInt64> { id in
            resolved.append(id)
            return id == 7 ? web : id == 8 ? pod : nil
        }
        var host = task, inWeb = task, inPod = task
        host.cgroupID = 1
        inWeb.cgroupID = 7
        inPod.cgroupID = 8
        let renderer = OpenSnoop.Renderer(config: try OpenSnoop.Config(parse(OpenSnoop.spec, ["--containers"])), clock: nil,
                                          containers: labels)
        let events = [host, inWeb, inPod, inWeb].map { OpenSnoop.Event(task: $0, ret: 3, path: Array("/etc/hosts".utf8)) }
        var text = renderer.table.header + "\n"
        text += events.map(renderer.table.row).joined(separator: "\n") + "\n"
        for event in events.prefix(3) {
            let line = renderer.json(event)
            assertValidJSON(line)
            text += line + "\n"
        }
        assertSnapshot(text, named: "containers")
        XCTAssertEqual(resolved, [1, 7, 8], "each cgroup is resolved once")
    }
}
