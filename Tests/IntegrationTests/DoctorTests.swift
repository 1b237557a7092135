import Foundation
import XCTest
import ContainerFilter

/// `bpfbox doctor` reports this machine as it is, and changes nothing.
final class DoctorTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    private func checks(_ result: Completed) throws -> [String: [String: Any]] {
        var byName: [String: [String: Any]] = [:]
        for line in result.stdout.split(separator: "\n") {
            let object = try XCTUnwrap(jsonObject(String(line)), "not JSON: \(line)")
            byName[try XCTUnwrap(object["check"] as? String)] = object
        }
        return byName
    }

    private func mounts(of type: String) throws -> Int {
        try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n")
            .filter { $0.contains(" - \(type) ") }.count
    }

    func testReportsTheTrueStateAndChangesNothing() throws {
        let securityfsBefore = try mounts(of: "securityfs")
        let result = try runCommand(bpfboxPath, ["doctor", "--json"])
        let byName = try checks(result)
        XCTAssertEqual(try mounts(of: "securityfs"), securityfsBefore, "doctor left securityfs mounted")

        // Lockdown, read here the same way by hand.
        let lockdown = try runCommand("/usr/bin/unshare", ["-m", "sh", "-c",
            "mount -t securityfs none /sys/kernel/security 2>/dev/null; cat /sys/kernel/security/lockdown 2>/dev/null"])
        if let open = lockdown.stdout.firstIndex(of: "["), let close = lockdown.stdout.firstIndex(of: "]") {
            let mode = String(lockdown.stdout[lockdown.stdout.index(after: open)..<close])
            XCTAssertTrue((byName["lockdown"]?["detail"] as? String ?? "").hasPrefix(mode), "\(byName["lockdown"] ?? [:]) vs \(mode)")
            XCTAssertEqual(byName["lockdown"]?["status"] as? String, mode == "none" ? "ok" : "warn")
        }
        let kprobes = FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/kprobe/type")
        XCTAssertEqual(byName["kprobes"]?["status"] as? String, kprobes ? "ok" : "warn")

        let cgroup = try XCTUnwrap(byName["cgroup v2"]?["detail"] as? String)
        XCTAssertTrue(cgroup.hasPrefix(try XCTUnwrap(CgroupV2.mountPoint())), cgroup)
        XCTAssertEqual(cgroup.contains("hybrid"), try mounts(of: "cgroup") > 0, cgroup)

        for applet in ["execsnoop", "opensnoop", "capable", "tcpconnect", "tcptop", "skbcount", "sockmap"] {
            XCTAssertNotNil(byName[applet], "no check for \(applet)")
            XCTAssertEqual(byName[applet]?["applet"] as? String, applet)
        }
        // The applets run on this machine (the rest of the suite proves it): none may fail here.
        XCTAssertFalse(byName.values.contains { $0["status"] as? String == "fail" }, "\(byName.values.filter { $0["status"] as? String == "fail" })")
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testTracefsNotMountedIsReportedAndNotMounted() throws {
        // A private mount namespace without tracefs: doctor says so, and finds the tracepoints in BTF.
        let script = "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; "
            + "\(bpfboxPath) doctor --json; grep -c ' - tracefs ' /proc/self/mountinfo"
        let result = try runCommand("/usr/bin/unshare", ["-m", "--propagation", "private", "sh", "-c", script])
        var lines = result.stdout.split(separator: "\n").map(String.init)
        let after = lines.popLast()
        XCTAssertEqual(after, "0", "doctor mounted tracefs")
        let byName = try checks(Completed(status: result.status, stdout: lines.joined(separator: "\n"), stderr: result.stderr))
        XCTAssertEqual(byName["tracefs"]?["status"] as? String, "warn")
        XCTAssertEqual(byName["tracefs"]?["detail"] as? String, "not mounted")
        let capable = try XCTUnwrap(byName["capable"]?["detail"] as? String)
        XCTAssertTrue(capable.contains("read from BTF"), capable)
    }

    func testWithoutPrivilegesTheDoctorSaysHow() throws {
        let result = try runCommand("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                                                          "--inh-caps=-all", "--bounding-set=-all", bpfboxPath, "doctor"])
        XCTAssertEqual(result.status, 1, result.stdout)
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains("privileges") })
        XCTAssertTrue(line.hasPrefix("fail"), String(line))
        XCTAssertTrue(line.contains("run as root"), String(line))
    }
}
