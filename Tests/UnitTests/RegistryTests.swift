import Applets
import XCTest

final class RegistryTests: XCTestCase {
    func testAppletNamesAreUnique() {
        let names = Registry.applets.map(\.name)
        XCTAssertFalse(names.isEmpty)
        XCTAssertEqual(Set(names).count, names.count, "duplicate applet names: \(names)")
    }

    func testAppletNamesAreUsableAsLinks() {
        for applet in Registry.applets {
            XCTAssertFalse(applet.name.isEmpty)
            XCTAssertFalse(applet.name.contains("/"), applet.name)
            XCTAssertFalse(applet.name.hasPrefix("bpfbox"), "\(applet.name) would be taken for bpfbox itself")
            XCTAssertFalse(applet.name.hasPrefix("-"), applet.name)
        }
    }

    func testLookupAndSpecNames() {
        for applet in Registry.applets {
            XCTAssertEqual(Registry.applet(named: applet.name)?.name, applet.name)
            if let spec = applet.spec {
                XCTAssertEqual(spec.name, applet.name, "the usage line must name the applet as it is invoked")
            }
        }
        XCTAssertNil(Registry.applet(named: "nosuch"))
        XCTAssertTrue(Registry.applets.contains { $0.name == "execsnoop" && $0.kind == .tracing })
    }

    func testUnknownAppletLinkExits64() {
        XCTAssertEqual(bpfboxMain(["/x/nosuch"]), 64)
    }

    func testUnknownAppletArgumentExits64() {
        XCTAssertEqual(bpfboxMain(["bpfbox", "nosuch"]), 64)
        XCTAssertEqual(bpfboxMain(["/usr/local/bin/bpfbox", "--nosuch"]), 64)
    }

    func testVersion() {
        XCTAssertEqual(bpfboxMain(["bpfbox", "--version"]), 0)
        XCTAssertFalse(Registry.version.isEmpty)
    }

    func testNoAppletIsAUsageError() {
        XCTAssertEqual(bpfboxMain(["bpfbox"]), 2)
    }

    func testUsageErrorsOfAnAppletExit2() {
        // Parsing fails before anything needs privileges or loads BPF.
        XCTAssertEqual(bpfboxMain(["execsnoop", "--bogus"]), 2)
        XCTAssertEqual(bpfboxMain(["/usr/sbin/execsnoop", "-u", "nosuchuser123"]), 2)
        XCTAssertEqual(bpfboxMain(["bpfbox", "execsnoop", "--max-args", "0"]), 2)
        XCTAssertEqual(bpfboxMain(["./tools/execsnoop", "unexpected"]), 2)
    }
}
