@preconcurrency import Glibc

/// Every applet of bpfbox. Dispatch, `--list`, `install`, the tools/ symlinks and the tests that
/// check each applet's documents all read this one list.
public struct Applet: Sendable {
    public enum Kind: Sendable { case tracing, support }
    public let name: String
    public let summary: String
    public let kind: Kind
    /// Built when first asked for: running one applet initializes no other applet's options.
    private let makeSpec: @Sendable () -> CommandSpec?
    public var spec: CommandSpec? { makeSpec() }
    public let main: @Sendable ([String]) -> Int32

    init(name: String, summary: String, kind: Kind, spec: @autoclosure @escaping @Sendable () -> CommandSpec?,
         main: @escaping @Sendable ([String]) -> Int32) {
        self.name = name
        self.summary = summary
        self.kind = kind
        makeSpec = spec
        self.main = main
    }

    /// The man page's file name in man/man8: the tool's own name for a tracing applet (as bcc's
    /// tools have), `bpfbox-NAME.8` for a support applet, whose name alone would be too generic.
    public var manPage: String { kind == .tracing ? "\(name).8" : "bpfbox-\(name).8" }

    /// Whether the applet gets a link of its own name (installed, packaged, completed): the
    /// tracing applets; a support applet is run as `bpfbox NAME`.
    public var isLinked: Bool { kind == .tracing }
}

public enum Registry {
    public static let version = "0.1.0"

    public static let applets: [Applet] = [
        Applet(name: "execsnoop", summary: "trace new processes (execve, execveat)", kind: .tracing,
               spec: ExecSnoop.spec, main: ExecSnoop.main),
        Applet(name: "opensnoop", summary: "trace file opens (open, openat, openat2, creat)", kind: .tracing,
               spec: OpenSnoop.spec, main: OpenSnoop.main),
        Applet(name: "capable", summary: "trace capability checks", kind: .tracing,
               spec: Capable.spec, main: Capable.main),
        Applet(name: "tcpconnect", summary: "trace active TCP connects", kind: .tracing,
               spec: TcpConnect.spec, main: TcpConnect.main),
        Applet(name: "tcptop", summary: "summarize TCP traffic by connection and process", kind: .tracing,
               spec: TcpTop.spec, main: TcpTop.main),
        Applet(name: "skbcount", summary: "count packets and bytes per cgroup", kind: .tracing,
               spec: SkbCount.spec, main: SkbCount.main),
        Applet(name: "sockmap", summary: "splice local TCP connections of a cgroup socket to socket", kind: .tracing,
               spec: Sockmap.spec, main: Sockmap.main),
        Applet(name: "filter", summary: "create, fill and list the container filter maps; an OCI hook", kind: .support,
               spec: Filter.spec, main: Filter.main),
        Applet(name: "doctor", summary: "check what this machine offers bpfbox", kind: .support,
               spec: Doctor.spec, main: Doctor.main),
        Applet(name: "install", summary: "install bpfbox, its applet links and man pages", kind: .support,
               spec: Install.spec, main: Install.main),
        Applet(name: "completions", summary: "print the bash, zsh or fish completion script", kind: .support,
               spec: Completions.spec, main: Completions.main),
    ]

    public static func applet(named name: String) -> Applet? { applets.first { $0.name == name } }

    static var listing: String {
        let width = (applets.map(\.name.count).max() ?? 0) + 2
        return applets.map { "  " + $0.name.padding(width) + $0.summary }.joined(separator: "\n")
    }

    /// The options of `bpfbox` itself (before an applet name), for the shell completions.
    public static let topLevelOptions = [
        OptionSpec("l", "list", help: "list the applets"),
        OptionSpec("V", "version", help: "print the version"),
        OptionSpec("h", "help", help: "describe bpfbox and list the applets"),
    ]

    static let usage = """
        usage: bpfbox APPLET [ARGS...]     or a link named after the applet
               bpfbox --list | --version | --help
        """
}

/// The multi-call entry point: dispatch on basename(argv[0]), else on the first argument.
public func bpfboxMain(_ argv: [String]) -> Int32 {
    let invoked = argv.first.map { String($0.split(separator: "/").last ?? "") } ?? "bpfbox"
    if let applet = Registry.applet(named: invoked) {
        return applet.main(Array(argv.dropFirst()))
    }
    guard invoked.hasPrefix("bpfbox") else {
        printError("bpfbox: unknown applet '\(Escape.terminal(invoked))'; applets:\n\(Registry.listing)")
        return 64
    }
    let arguments = Array(argv.dropFirst())
    guard let first = arguments.first else {
        printError(Registry.usage + "\n\napplets:\n" + Registry.listing)
        return 2
    }
    let out = Output()
    switch first {
    case "--list", "-l":
        for applet in Registry.applets { out.line(applet.name) }
        out.flush()
        return 0
    case "--version", "-V":
        out.line("bpfbox \(Registry.version)")
        out.flush()
        return 0
    case "--help", "-h", "help":
        out.line(Registry.usage + "\n\napplets:\n" + Registry.listing + "\n\n'bpfbox APPLET --help' describes an applet.")
        out.flush()
        return 0
    default:
        if let applet = Registry.applet(named: first) {
            return applet.main(Array(arguments.dropFirst()))
        }
        printError("bpfbox: unknown applet '\(Escape.terminal(first))'; applets:\n\(Registry.listing)")
        return 64
    }
}
