@testable import Applets
import BPFSupport
import XCTest

/// Inputs that scripts/fuzz.sh found to crash a decoder, kept as regression tests.
final class FuzzFindingsTests: XCTestCase {
    private func sockmapEvent(_ fill: (inout sockmap_event) -> Void) -> Sockmap.Event? {
        var event = sockmap_event()
        fill(&event)
        return withUnsafeBytes(of: event) { Sockmap.Event($0) }
    }

    /// A family that does not fit 16 bits trapped ("Not enough bits to represent the passed value").
    func testSockmapEventWithAWideFamily() throws {
        let event = try XCTUnwrap(sockmapEvent { $0.key.family = 0xFFFF_FFFF; $0.reason = SOCKMAP_ADDED.rawValue })
        _ = Sockmap.Renderer(json: false).render(event, wallNs: 0, cgroup: nil, peerIsLocal: false)
        _ = Sockmap.Renderer(json: true).render(event, wallNs: 0, cgroup: nil, peerIsLocal: false)
    }

    /// -Int32.min overflowed.
    func testSockmapEventWithTheSmallestError() throws {
        let event = try XCTUnwrap(sockmapEvent { $0.key.family = 2; $0.reason = SOCKMAP_ADD_FAILED.rawValue; $0.error = .min })
        XCTAssertEqual(event.kind, .refused(errno: .min))
        _ = Sockmap.Renderer(json: true).render(event, wallNs: 0, cgroup: nil, peerIsLocal: false)
    }

    /// An open's return value of Int64.min overflowed when ERR was computed (-ret).
    func testOpenSnoopEventWithTheSmallestReturnValue() throws {
        let task = TaskInfo(timestampNs: 0, cgroupID: 0, mntnsID: 0, pid: 1, tid: 1, uid: 0, gid: 0, comm: [])
        let event = OpenSnoop.Event(task: task, ret: .min, path: Array("x".utf8))
        for arguments in [[], ["--json"]] {
            let renderer = OpenSnoop.Renderer(config: try OpenSnoop.Config(OpenSnoop.spec.parse(arguments)), clock: nil)
            XCTAssertNotNil(renderer.render(event))
        }
    }
}
