@preconcurrency import Glibc

/// A command started stopped: forked at once (so its pid can be traced from its first
/// instruction), and exec'd only when `release()` is called, after the tracer is attached.
final class HeldCommand {
    let pid: pid_t
    private var gate: Int32
    private(set) var status: Int32?

    init(_ argv: [String], option: String = "--exec") throws {
        guard let program = argv.first else { throw UsageError("\(option) needs a command") }
        guard HeldCommand.resolve(program) != nil else {
            throw RuntimeFailure("\(option) \(program): no such command (not an executable file, nor one on the PATH)")
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw RuntimeFailure("pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // Everything the child needs is prepared before fork.
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let failure = Array("cannot run \(program): ".utf8)
        let child = fork()
        if child == 0 {
            close(fds[1])
            var byte: UInt8 = 0
            let n = read(fds[0], &byte, 1)
            if n == 1 {
                signal(SIGPIPE, SIG_DFL) // bpfbox ignores it; the command gets the default back
                execvp(cArgs[0]!, cArgs)
                let code = errno
                _ = failure.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                if let text = strerror(code) { _ = write(2, text, strlen(text)) }
                _ = write(2, "\n", 1)
            }
            _exit(127)
        }
        guard child > 0 else {
            close(fds[0]); close(fds[1])
            throw RuntimeFailure("fork: \(String(cString: strerror(errno)))")
        }
        close(fds[0])
        pid = child
        gate = fds[1]
    }

    /// The file execvp would run for `program`, or nil.
    static func resolve(_ program: String) -> String? {
        func runnable(_ candidate: String) -> Bool {
            var st = stat()
            return stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
        }
        if program.contains("/") { return runnable(program) ? program : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + program
            if runnable(candidate) { return candidate }
        }
        return nil
    }

    /// Lets the command run.
    func release() {
        var byte: UInt8 = 1
        _ = write(gate, &byte, 1)
        close(gate)
        gate = -1
    }

    /// Whether the command has exited (reaps it).
    var exited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = raw
            return true
        }
        return false
    }

    deinit {
        if gate >= 0 { close(gate) } // the child sees EOF and exits without running the command
        if status == nil { var raw: Int32 = 0; waitpid(pid, &raw, WNOHANG) }
    }
}
