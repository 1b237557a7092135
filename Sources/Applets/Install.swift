@preconcurrency import Glibc

/// `bpfbox install`: copies the running binary to PREFIX/bin, links every applet to it, installs
/// the man pages found beside the binary (a source tree's man/man8, or a release tarball's
/// share/man/man8; or --man-dir), and writes the shell completions where bash, zsh and fish look.
public enum Install {
    public static let spec = CommandSpec(
        name: "install",
        summary: "Install bpfbox, a link per applet, the man pages and the shell completions.",
        options: [
            OptionSpec(nil, "prefix", value: "DIR", help: "installation prefix (default /usr/local)"),
            OptionSpec(nil, "man-dir", value: "DIR", help: "where the man8 pages are (default: found from the binary)"),
            OptionSpec(nil, "no-man", help: "do not install man pages"),
            OptionSpec(nil, "no-completions", help: "do not install the bash, zsh and fish completions"),
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
            for applet in Registry.applets where applet.isLinked {
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
            if !parsed.has("no-completions") {
                try installCompletions(prefix: prefix)
                print("installed completions for bash, zsh and fish in \(prefix)/share")
            }
            return 0
        } catch {
            printError("install: \(error)")
            return 1
        }
    }

    /// Where each shell finds a command's completions under PREFIX/share; bash and fish look a
    /// command up by its name, so each applet link gets a link NAME+suffix to the script.
    static let completionFiles: [(shell: String, path: String, linkSuffix: String?)] = [
        ("bash", "bash-completion/completions/bpfbox", ""),
        ("zsh", "zsh/site-functions/_bpfbox", nil),
        ("fish", "fish/vendor_completions.d/bpfbox.fish", ".fish"),
    ]

    static func installCompletions(prefix: String) throws {
        for (shell, path, linkSuffix) in completionFiles {
            let file = prefix + "/share/" + path
            let slash = file.lastIndex(of: "/")!
            let directory = String(file[..<slash])
            try makeDirectories(directory)
            try writeFile(file, Array((Completions.script(for: shell) ?? "").utf8), mode: 0o644)
            guard let linkSuffix else { continue }
            for applet in Registry.applets where applet.isLinked {
                let link = directory + "/" + applet.name + linkSuffix
                unlink(link)
                guard symlink(String(file[file.index(after: slash)...]), link) == 0 else {
                    throw RuntimeFailure("cannot link \(link): \(String(cString: strerror(errno)))")
                }
            }
        }
    }

    /// man/man8 of a source tree, or share/man/man8 of a release tarball, above the binary.
    static func findManDirectory(from exe: String) -> String? {
        var dir = exe
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            dir = String(dir[..<slash])
            for candidate in [dir + "/man/man8", dir + "/share/man/man8"] where access(candidate + "/execsnoop.8", R_OK) == 0 {
                return candidate
            }
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
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n == 0 { break }
            guard n > 0 else { throw RuntimeFailure("cannot read \(source): \(String(cString: strerror(errno)))") }
            bytes += buffer[..<n]
        }
        try writeFile(destination, bytes, mode: mode)
    }

    /// Writes a file whole: to a temporary name beside it, then renamed over it.
    static func writeFile(_ destination: String, _ bytes: [UInt8], mode: mode_t) throws {
        let temporary = destination + ".tmp-install"
        let output = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard output >= 0 else { throw RuntimeFailure("cannot write \(destination): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(output, raw.baseAddress! + offset, raw.count - offset)
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
        fchmod(output, mode)
        close(output)
        guard written else {
            unlink(temporary)
            throw RuntimeFailure("writing \(destination) failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, destination) == 0 else {
            throw RuntimeFailure("cannot replace \(destination): \(String(cString: strerror(errno)))")
        }
    }
}
