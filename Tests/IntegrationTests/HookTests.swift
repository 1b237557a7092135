import BPFKit
import Foundation
import XCTest

/// Hooks chosen at load time: --verbose names them, and a kernel that offers none of an
/// applet's ways to hook an event gets one line that says which were tried.
final class HookTests: XCTestCase {
    override func setUpWithError() throws { try requireRoot() }

    /// Starts `arguments` and returns the line in which --verbose names the attached hooks.
    private func hooksLine(_ applet: String, _ arguments: [String]) throws -> String? {
        let tool = try Tool([applet] + arguments)
        defer { tool.stop() }
        let line = tool.stderr.wait(timeout: 30) { $0.hasPrefix("\(applet): hooks: ") }
        if line == nil { tool.reportMiss() }
        return line
    }

    func testVerboseNamesTheTracepointsWhereTheKernelHasThem() throws {
        let capable = try XCTUnwrap(try hooksLine("capable", ["-v"]))
        if try Mounts.hasTracepoint("capability", "cap_capable") {
            XCTAssertEqual(capable, "capable: hooks: tp/capability/cap_capable")
        } else {
            XCTAssertTrue(capable.contains("/cap_capable"), capable)
        }
        let tcptop = try XCTUnwrap(try hooksLine("tcptop", ["--verbose", "-C"]))
        if try Mounts.hasTracepoint("sock", "sock_send_length") {
            XCTAssertEqual(tcptop, "tcptop: hooks: tp/sock/sock_send_length, tp/sock/sock_recv_length")
        } else {
            XCTAssertTrue(tcptop.contains("/tcp_sendmsg") && tcptop.contains("/tcp_recvmsg"), tcptop)
        }
        let execsnoop = try XCTUnwrap(try hooksLine("execsnoop", ["--verbose"]))
        XCTAssertTrue(execsnoop.contains("tp/syscalls/sys_enter_execve"), execsnoop)
    }

    /// Without the tracepoint capable takes fexit; where the kernel refuses trampolines at load
    /// (lockdown) it opens the object again for kprobes, and without kprobes it says what it tried.
    func testFallbackWithoutTheTracepoint() throws {
        setenv("BPFBOX_REFUSE_HOOKS", "tracepoint", 1)
        defer { unsetenv("BPFBOX_REFUSE_HOOKS") }
        let tool = try Tool(["capable", "-v"])
        let line = try XCTUnwrap(tool.stderr.wait(timeout: 30) { $0.hasPrefix("capable: hooks: ") || $0.contains("no way to hook") })
        let status = tool.stop()
        if line.hasPrefix("capable: hooks: ") {
            XCTAssertTrue(line == "capable: hooks: fexit/cap_capable"
                          || line == "capable: hooks: kprobe/cap_capable, kretprobe/cap_capable", line)
            return
        }
        XCTAssertEqual(status, 1)
        XCTAssertEqual(tool.stderr.all.filter { !$0.hasPrefix("libbpf: ") && !$0.contains("refused at load") }, [line])
        XCTAssertTrue(line.hasPrefix("capable: this kernel offers no way to hook cap_capable: tried tracepoint capability/cap_capable (refused), fentry cap_capable ("), line)
        XCTAssertFalse(KernelFeatures.hasKprobes, "kprobes exist, yet capable did not use them: \(line)")
    }
}
