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
}
