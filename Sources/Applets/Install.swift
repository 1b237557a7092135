@preconcurrency import Glibc

/// `bpfbox install`: copies the running binary to PREFIX/bin, links every applet to it, and
/// installs the man pages found beside the binary's source tree (or given by --man-dir).
public enum Install {
    public static let spec = CommandSpec(
        name: "install",
        summary: "Install bpfbox, a link per applet, and the man pages.",
        options: [
            OptionSpec(nil, "prefix", value: "DIR", help: "installation prefix (default /usr/local)"),
            OptionSpec(nil, "man-dir", value: "DIR", help: "where the man8 pages are (default: found from the binary)"),
            OptionSpec(nil, "no-man", help: "do not install man pages"),
        ]
    )

    public static func main(_ arguments: [String]) -> Int32 {
        let parsed: ParsedOptions
        do {
            parsed = try spec.parse(arguments)
        } catch {
            printError(spec.usageLine)
            printError("install: error: \(error.description)")
            return 2
        }
        if parsed.has("help") { print(spec.helpText, terminator: ""); return 0 }
        if let extra = parsed.positionals.first {
            printError(spec.usageLine)
            printError("install: error: unexpected argument '\(extra)'")
            return 2
        }
        let prefix = parsed.value("prefix") ?? "/usr/local"
        let bin = prefix + "/bin"
        guard let exe = realPath("/proc/self/exe") else {
            printError("install: cannot find the running binary (/proc/self/exe)")
            return 1
        }
        do {
            try makeDirectories(bin)
            let target = bin + "/bpfbox"
            if realPath(target) != exe { try copyFile(exe, to: target, mode: 0o755) }
            var linked: [String] = []
            for applet in Registry.applets where applet.kind == .tracing {
                let link = bin + "/" + applet.name
                unlink(link)
                guard symlink("bpfbox", link) == 0 else { throw RuntimeFailure("cannot link \(link): \(String(cString: strerror(errno)))") }
                linked.append(applet.name)
            }
            print("installed \(target) and links: \(linked.joined(separator: " "))")
            if !parsed.has("no-man") {
                let source = parsed.value("man-dir") ?? findManDirectory(from: exe)
                guard let source else {
                    printError("install: man pages not found beside the binary; pass --man-dir DIR (a man/man8 directory) or --no-man")
                    return 1
                }
                let destination = prefix + "/share/man/man8"
                try makeDirectories(destination)
                var pages: [String] = []
                for applet in Registry.applets {
                    let name = applet.manPage
                    guard access("\(source)/\(name)", R_OK) == 0 else { continue }
                    try copyFile("\(source)/\(name)", to: "\(destination)/\(name)", mode: 0o644)
                    pages.append(name)
                }
                print("installed man pages in \(destination): \(pages.joined(separator: " "))")
            }
            return 0
        } catch {
            printError("install: \(error)")
            return 1
        }
    }

    static func findManDirectory(from exe: String) -> String? {
        var dir = exe
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            dir = String(dir[..<slash])
            let candidate = dir + "/man/man8"
            if access(candidate + "/execsnoop.8", R_OK) == 0 { return candidate }
        }
        return nil
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw RuntimeFailure("cannot create \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    static func copyFile(_ source: String, to destination: String, mode: mode_t) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw RuntimeFailure("cannot read \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let temporary = destination + ".tmp-install"
        let output = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard output >= 0 else { throw RuntimeFailure("cannot write \(destination): \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n == 0 { break }
            guard n > 0, write(output, buffer, n) == n else {
                close(output)
                unlink(temporary)
                throw RuntimeFailure("copying \(source) to \(destination) failed: \(String(cString: strerror(errno)))")
            }
        }
        fchmod(output, mode)
        close(output)
        guard rename(temporary, destination) == 0 else {
            throw RuntimeFailure("cannot replace \(destination): \(String(cString: strerror(errno)))")
        }
    }
}
