import BPFSupport

/// libbpf's log: printed to stderr with `verbose`, otherwise kept and attached to errors.
public enum LibbpfLog {
    public static func configure(verbose: Bool) {
        bpfsupport_set_log(verbose ? 1 : 0)
    }
}

func takeLibbpfLog() -> String {
    guard let text = bpfsupport_take_log() else { return "" }
    return String(cString: text)
}
