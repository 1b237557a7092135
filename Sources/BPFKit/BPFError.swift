@preconcurrency import Glibc

/// A failed BPF operation: which libbpf or kernel call, on what, the errno, and what to do.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let subject: String?
    public let errno: Int32
    public let remedy: String?
    /// libbpf's warnings around the failure (shown in full with --verbose).
    public let log: String

    public init(operation: String, subject: String? = nil, errno: Int32, remedy: String? = nil, log: String = "") {
        self.operation = operation
        self.subject = subject
        self.errno = errno
        self.remedy = remedy ?? BPFError.defaultRemedy(operation: operation, errno: errno)
        self.log = log
    }

    public var description: String {
        var text = subject.map { "\($0): " } ?? ""
        text += "\(operation) failed: \(BPFError.errnoText(errno))"
        if let remedy { text += "; \(remedy)" }
        return text
    }

    public static func errnoText(_ code: Int32) -> String {
        guard let cString = strerror(code) else { return "errno \(code)" }
        return String(cString: cString)
    }

    static func defaultRemedy(operation: String, errno code: Int32) -> String? {
        switch code {
        case EPERM where geteuid() != 0, EACCES where geteuid() != 0:
            return "run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"
        case EPERM where operation.contains("attach"):
            return "the kernel refused this program type (lockdown?); run with --verbose for details"
        case EACCES where operation.contains("load"), EINVAL where operation.contains("load"):
            return "the kernel's verifier rejected a program; run with --verbose for libbpf's log"
        case ENOMEM:
            return "the kernel is short of memory for BPF maps"
        default:
            return nil
        }
    }
}

/// Every libbpf call goes through one of these two helpers, which turn libbpf's two error
/// styles (a negative errno, or NULL with errno set) into a BPFError naming the call.
@inline(__always)
@discardableResult
func libbpfCall(_ operation: String, subject: String? = nil, _ body: () -> Int32) throws(BPFError) -> Int32 {
    errno = 0
    let ret = body()
    if ret < 0 {
        let code = ret == -1 && errno != 0 ? errno : -ret
        throw BPFError(operation: operation, subject: subject, errno: code, log: takeLibbpfLog())
    }
    return ret
}

@inline(__always)
func libbpfPointer<T>(_ operation: String, subject: String? = nil, _ body: () -> T?) throws(BPFError) -> T {
    errno = 0
    guard let value = body() else {
        let code = errno != 0 ? errno : EINVAL
        throw BPFError(operation: operation, subject: subject, errno: code, log: takeLibbpfLog())
    }
    return value
}
