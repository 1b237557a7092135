@preconcurrency import CLibbpf
@preconcurrency import Glibc

/// A BPF ring buffer consumer. Each sample is handed to `handler` as a read-only buffer that is
/// valid only during the call: decode or copy it before returning.
public final class RingBuffer {
    private final class Context {
        let handler: (UnsafeRawBufferPointer) -> Void
        init(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) { self.handler = handler }
    }

    private let handle: OpaquePointer
    private let context: Context
    private let map: BPFMap

    public init(map: BPFMap, handler: @escaping (UnsafeRawBufferPointer) -> Void) throws(BPFError) {
        self.map = map
        context = Context(handler)
        let ctx = Unmanaged.passUnretained(context).toOpaque()
        let fd = map.fd
        handle = try libbpfPointer("ring_buffer__new", subject: map.label) {
            ring_buffer__new(fd, { ctx, data, size in
                guard let ctx, let data else { return 0 }
                let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
                context.handler(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }, ctx, nil)
        }
    }

    deinit { ring_buffer__free(handle) }

    /// Waits up to `timeoutMs` for samples and consumes them; returns how many. A signal
    /// interrupting the wait is not an error (returns 0).
    @discardableResult
    public func poll(timeoutMs: Int32) throws(BPFError) -> Int {
        let ret = ring_buffer__poll(handle, timeoutMs)
        if ret == -EINTR { return 0 }
        if ret < 0 { throw BPFError(operation: "ring_buffer__poll", subject: map.label, errno: -ret) }
        return Int(ret)
    }

    /// Consumes what is there without waiting.
    @discardableResult
    public func drain() -> Int {
        max(Int(ring_buffer__consume(handle)), 0)
    }
}
