import Applets
import Foundation
import XCTest

/// `bpfbox completions bash|zsh|fish`: every applet, option and link is in each script, and the
/// shells that are installed load the scripts and complete with them.
final class CompletionsTests: XCTestCase {
    private var linked: [String] { Registry.applets.filter(\.isLinked).map(\.name) }

    func testEveryScriptNamesEveryAppletOptionAndLink() throws {
        for shell in Completions.shells {
            let script = try XCTUnwrap(Completions.script(for: shell), shell)
            for applet in Registry.applets {
                XCTAssertTrue(script.contains(applet.name), "\(shell): no applet \(applet.name)")
                for option in applet.spec?.options ?? [] where !option.hidden {
                    // fish names a long option `-l NAME`, the others `--NAME`.
                    let spelled = shell == "fish" ? "-l \(option.long)" : "--\(option.long)"
                    XCTAssertTrue(script.contains(spelled), "\(shell): \(applet.name) lacks --\(option.long)")
                }
            }
            XCTAssertFalse(script.contains("--mntnsmap=[not applicable"), "\(shell): a hidden option is offered")
        }
    }

    /// The top-level options the scripts offer are the ones bpfbox takes.
    func testTopLevelOptionsAreAccepted() {
        for option in Registry.topLevelOptions {
            for flag in [option.short.map { "-\($0)" }, "--" + option.long].compactMap({ $0 }) {
                XCTAssertEqual(bpfboxMain(["bpfbox", flag]), 0, flag)
            }
        }
    }

    func testUnknownShellAndMissingShellAreUsageErrors() {
        XCTAssertNil(Completions.script(for: "tcsh"))
        XCTAssertEqual(bpfboxMain(["bpfbox", "completions"]), 2)
        XCTAssertEqual(bpfboxMain(["bpfbox", "completions", "tcsh"]), 2)
        XCTAssertEqual(bpfboxMain(["bpfbox", "completions", "bash", "zsh"]), 2)
    }

    /// bash sources the script, registers it for bpfbox and every link, and completes.
    func testBashCompletesAppletsOptionsAndValues() throws {
        let file = try write("bash")
        let links = linked.map { "complete -p \($0)" }.joined(separator: "\n")
        let result = try shell("/bin/bash", ["--norc", "--noprofile", "-c", """
            source \(file) || exit 1
            complete -p bpfbox
            \(links)
            comp() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _bpfbox; echo "$*: ${COMPREPLY[*]}"; }
            comp bpfbox exec
            comp bpfbox execsnoop --ui
            comp execsnoop --ui
            comp /usr/sbin/execsnoop -x
            comp tcptop --sort s
            comp bpfbox filter ''
            comp bpfbox completions ''
            comp opensnoop -f O_WRO
            """])
        XCTAssertEqual(result.status, 0, result.output)
        let lines = Set(result.output.split(separator: "\n").map(String.init))
        for name in ["bpfbox"] + linked {
            XCTAssertTrue(lines.contains("complete -F _bpfbox \(name)"), "bash does not complete \(name):\n\(result.output)")
        }
        for expected in ["bpfbox exec: execsnoop", "bpfbox execsnoop --ui: --uid", "execsnoop --ui: --uid",
                         "/usr/sbin/execsnoop -x: -x", "tcptop --sort s: sent",
                         "bpfbox filter : create add del list destroy oci-hook", "bpfbox completions : bash zsh fish",
                         "opensnoop -f O_WRO: O_WRONLY"] {
            XCTAssertTrue(lines.contains(expected), "bash: expected '\(expected)' in\n\(result.output)")
        }
    }

    /// zsh: the script parses, and sourced after compinit it registers bpfbox and every link.
    func testZshScriptParsesAndRegisters() throws {
        let zsh = try installed("zsh")
        let file = try write("zsh")
        let syntax = try shell(zsh, ["-n", file])
        XCTAssertEqual(syntax.status, 0, "zsh -n: \(syntax.output)")
        let names = (["bpfbox"] + linked).map { "$_comps[\($0)]" }.joined(separator: " ")
        let result = try shell(zsh, ["-f", "-c", "autoload -Uz compinit && compinit -u -D && source \(file) && print -r -- \(names)"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.split(separator: "\n").last.map(String.init),
                       Array(repeating: "_bpfbox", count: linked.count + 1).joined(separator: " "), result.output)
    }

    /// fish: the script parses, and fish's own completion engine completes with it.
    func testFishCompletesAppletsAndOptions() throws {
        let fish = try installed("fish")
        let file = try write("fish")
        let syntax = try shell(fish, ["--no-execute", file])
        XCTAssertEqual(syntax.status, 0, "fish --no-execute: \(syntax.output)")
        let result = try shell(fish, ["--no-config", "-c", """
            source \(file)
            complete -C 'bpfbox exec'
            complete -C 'execsnoop --ui'
            complete -C 'bpfbox tcptop --sort '
            complete -C 'bpfbox completions '
            """])
        XCTAssertEqual(result.status, 0, result.output)
        let words = Set(result.output.split(separator: "\n").map { String($0.split(separator: "\t").first ?? "") })
        for expected in ["execsnoop", "--uid", "all", "sent", "received", "bash", "zsh", "fish"] {
            XCTAssertTrue(words.contains(expected), "fish: expected \(expected) in\n\(result.output)")
        }
    }

    // MARK: helpers

    private func write(_ shell: String) throws -> String {
        let path = NSTemporaryDirectory() + "bpfbox-completions-\(UUID().uuidString).\(shell)"
        try XCTUnwrap(Completions.script(for: shell)).write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// The shell's path; a skip with the reason when it is not installed, a failure when
    /// BPFBOX_REQUIRE_TOOLS=1 (.ci/run installs zsh and fish).
    private func installed(_ name: String) throws -> String {
        for directory in ["/usr/bin", "/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        try requireTool(name, remedy: "apt-get install \(name)")
    }

    private func shell(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
