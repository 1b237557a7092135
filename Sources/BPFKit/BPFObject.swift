@preconcurrency import CLibbpf
@preconcurrency import Glibc
import BPFObjects

/// An opened (then loaded) BPF object, from an object embedded at build time.
///
/// Order of use: `open` -> `setConstant` / `map(...).reuse` / `setMaxEntries` / `program(...).autoload`
/// -> `load()` -> `attach()`. Everything is released on deinit.
public final class BPFObject {
    public let name: String
    let handle: OpaquePointer
    private let image: UnsafeMutableRawPointer
    public private(set) var isLoaded = false

    public init(embedded: EmbeddedObject) throws(BPFError) {
        let bytes = embedded.bytes()
        guard !bytes.isEmpty, bytes.count == embedded.size else {
            throw BPFError(operation: "decode embedded object", subject: embedded.name, errno: EINVAL,
                           remedy: "the binary is damaged; rebuild it")
        }
        name = embedded.name
        // libbpf reads the ELF image until load finishes: keep a stable copy for the object's life.
        let image = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { image.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        self.image = image
        let (opened, code) = BPFObject.open(image: image, size: bytes.count, name: embedded.name)
        guard let opened else {
            image.deallocate()
            throw BPFError(operation: "bpf_object__open_mem", subject: embedded.name, errno: code, log: takeLibbpfLog())
        }
        handle = opened
    }

    private static func open(image: UnsafeMutableRawPointer, size: Int, name: String) -> (OpaquePointer?, Int32) {
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let cName = strdup(name)
        defer { free(cName) }
        opts.object_name = UnsafePointer(cName)
        errno = 0
        let handle = bpf_object__open_mem(image, size, &opts)
        return (handle, errno != 0 ? errno : EINVAL)
    }

    deinit {
        bpf_object__close(handle)
        image.deallocate()
    }

    // MARK: before load

    /// Writes `value` into the `const volatile` global `variable` (in .rodata) before load.
    /// The variable's size must equal the Swift type's size.
    public func setConstant<T: BitwiseCopyable>(_ variable: String, _ value: T) throws(BPFError) {
        precondition(!isLoaded, "constants are frozen at load")
        guard let slot = try constantSlot(variable) else {
            throw BPFError(operation: "find global", subject: "\(name).\(variable)", errno: ENOENT,
                           remedy: "this BPF object has no such variable")
        }
        guard slot.size == MemoryLayout<T>.size else {
            throw BPFError(operation: "set global", subject: "\(name).\(variable)", errno: EINVAL,
                           remedy: "size \(slot.size) in BPF, \(MemoryLayout<T>.size) in Swift: rebuild")
        }
        withUnsafeBytes(of: value) { slot.data.copyMemory(from: $0.baseAddress!, byteCount: slot.size) }
    }

    /// Whether the object declares the global `variable` in .rodata.
    public func hasConstant(_ variable: String) -> Bool {
        ((try? constantSlot(variable)) ?? nil) != nil
    }

    private func constantSlot(_ variable: String) throws(BPFError) -> (data: UnsafeMutableRawPointer, size: Int)? {
        guard let map = bpf_object__find_map_by_name(handle, ".rodata"),
              let btf = bpf_object__btf(handle) else { return nil }
        var dataSize = 0
        guard let constData = bpf_map__initial_value(map, &dataSize) else { return nil }
        let data = UnsafeMutableRawPointer(mutating: constData)
        let sectionID = btf__find_by_name_kind(btf, ".rodata", 15 /* BTF_KIND_DATASEC */)
        guard sectionID > 0, let section = btf__type_by_id(btf, UInt32(sectionID)) else { return nil }
        let count = Int(btf_vlen(section))
        guard let infos = btf_var_secinfos(section) else { return nil }
        for i in 0..<count {
            let info = infos[i]
            guard let varType = btf__type_by_id(btf, info.type),
                  let cName = btf__name_by_offset(btf, varType.pointee.name_off),
                  String(cString: cName) == variable else { continue }
            guard Int(info.offset) + Int(info.size) <= dataSize else { return nil }
            return (data + Int(info.offset), Int(info.size))
        }
        return nil
    }

    /// The map named `name` in this object.
    public func map(_ mapName: String) throws(BPFError) -> ObjectMap {
        let handle = self.handle
        let ptr = try libbpfPointer("bpf_object__find_map_by_name", subject: "\(name).\(mapName)") {
            bpf_object__find_map_by_name(handle, mapName)
        }
        return ObjectMap(object: self, handle: ptr, name: mapName)
    }

    /// Every program of the object, in section order.
    public var programs: [BPFProgram] {
        var result: [BPFProgram] = []
        var prog = bpf_object__next_program(handle, nil)
        while let p = prog {
            result.append(BPFProgram(object: self, handle: p))
            prog = bpf_object__next_program(handle, p)
        }
        return result
    }

    public func program(_ programName: String) throws(BPFError) -> BPFProgram {
        let handle = self.handle
        let ptr = try libbpfPointer("bpf_object__find_program_by_name", subject: "\(name).\(programName)") {
            bpf_object__find_program_by_name(handle, programName)
        }
        return BPFProgram(object: self, handle: ptr)
    }

    /// Turns off the programs of classic tracepoints this kernel lacks, among those `optional`
    /// accepts (a syscall missing on an architecture, say). Others stay on and fail clearly.
    public func skipMissingTracepoints(where optional: (BPFProgram) -> Bool) throws(BPFError) {
        for program in programs where program.autoload && optional(program) {
            if let tp = program.tracepoint, try !Mounts.hasTracepoint(tp.category, tp.name) {
                program.autoload = false
            }
        }
    }

    // MARK: load and attach

    public func load() throws(BPFError) {
        let handle = self.handle
        try libbpfCall("bpf_object__load", subject: name) { bpf_object__load(handle) }
        isLoaded = true
    }

    /// Attaches every program marked for autoload, by its section (tp/, raw_tp/, tp_btf/ ...).
    /// Classic tracepoints need tracefs: it is mounted first when missing.
    public func attachAll() throws(BPFError) -> [BPFLink] {
        var links: [BPFLink] = []
        for program in programs where program.autoload {
            if program.section.hasPrefix("tp/") || program.section.hasPrefix("tracepoint/") {
                try Mounts.ensureTracefs()
            }
            links.append(try program.attach())
        }
        return links
    }
}

/// A program of a BPFObject. Holds its object alive.
public struct BPFProgram {
    let object: BPFObject
    let handle: OpaquePointer

    public var name: String { String(cString: bpf_program__name(handle)) }
    public var section: String { String(cString: bpf_program__section_name(handle)) }

    /// Whether the program is loaded (and attached by attachAll). Set before load.
    public var autoload: Bool {
        get { bpf_program__autoload(handle) }
        nonmutating set { _ = bpf_program__set_autoload(handle, newValue) }
    }

    /// For `tp/<category>/<name>` sections: the tracepoint.
    public var tracepoint: (category: String, name: String)? {
        let parts = section.split(separator: "/")
        guard parts.count == 3, parts[0] == "tp" || parts[0] == "tracepoint" else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    /// Attaches a cgroup program (cgroup_skb, sock_ops ...) to the cgroup open at `cgroupFD`,
    /// through a BPF link: it detaches when the link is released or the process dies, and it
    /// runs beside programs others attached.
    public func attach(cgroupFD: Int32, cgroup: String) throws(BPFError) -> BPFLink {
        let handle = self.handle
        let link = try libbpfPointer("bpf_program__attach_cgroup", subject: "\(name) (\(cgroup))") {
            bpf_program__attach_cgroup(handle, cgroupFD)
        }
        return BPFLink(handle: link, object: object)
    }

    /// Attaches a cgroup iterator (iter/cgroup) that walks the descendants of the cgroup open at
    /// `cgroupFD`, parents first. Reading the link (once pinned: `cat PIN`) runs the program.
    public func attachCgroupIterator(cgroupFD: Int32, cgroup: String) throws(BPFError) -> BPFLink {
        var info = bpf_iter_link_info()
        info.cgroup.order = BPF_CGROUP_ITER_DESCENDANTS_PRE
        info.cgroup.cgroup_fd = UInt32(bitPattern: cgroupFD)
        var opts = bpf_iter_attach_opts()
        opts.sz = MemoryLayout<bpf_iter_attach_opts>.size
        opts.link_info_len = UInt32(MemoryLayout<bpf_iter_link_info>.size)
        let handle = self.handle
        let link = try withUnsafeMutablePointer(to: &info) { (pointer) throws(BPFError) -> OpaquePointer in
            opts.link_info = pointer
            return try libbpfPointer("bpf_program__attach_iter", subject: "\(name) (\(cgroup))") {
                bpf_program__attach_iter(handle, &opts)
            }
        }
        return BPFLink(handle: link, object: object)
    }

    /// Attaches an sk_msg (or sk_skb) program to a SOCKMAP/SOCKHASH, which runs it for the
    /// sockets in the map. The attachment lives as long as the map, or until released.
    public func attach(toSocketMap map: BPFMap, type: bpf_attach_type = BPF_SK_MSG_VERDICT) throws(BPFError) -> MapAttachment {
        let programFD = bpf_program__fd(handle)
        _ = try libbpfCall("bpf_prog_attach", subject: "\(name) (\(map.label))") {
            bpf_prog_attach(programFD, map.fd, type, 0)
        }
        return MapAttachment(programFD: programFD, map: map, type: type, object: object)
    }

    public func attach() throws(BPFError) -> BPFLink {
        let handle = self.handle
        let where_ = tracepoint.map { "tracepoint \($0.category)/\($0.name)" } ?? section
        do {
            let link = try libbpfPointer("bpf_program__attach", subject: "\(name) (\(where_))") {
                bpf_program__attach(handle)
            }
            return BPFLink(handle: link, object: object)
        } catch let error where error.errno == ENOENT && tracepoint != nil {
            throw BPFError(operation: error.operation, subject: error.subject, errno: ENOENT,
                           remedy: "this kernel has no such tracepoint", log: error.log)
        }
    }
}

/// An attachment; detached when released (and by the kernel when the process dies).
public final class BPFLink {
    let handle: OpaquePointer
    let object: BPFObject

    init(handle: OpaquePointer, object: BPFObject) {
        self.handle = handle
        self.object = object
    }

    deinit { bpf_link__destroy(handle) }

    /// Pins the link at `path` (on bpffs): it then outlives the process.
    public func pin(_ path: String) throws(BPFError) {
        let handle = self.handle
        try libbpfCall("bpf_link__pin", subject: path) { bpf_link__pin(handle, path) }
    }
}

/// A program attached to a map (sk_msg on a SOCKHASH); detached when released.
public final class MapAttachment {
    let programFD: Int32
    let map: BPFMap
    let type: bpf_attach_type
    let object: BPFObject

    init(programFD: Int32, map: BPFMap, type: bpf_attach_type, object: BPFObject) {
        self.programFD = programFD
        self.map = map
        self.type = type
        self.object = object
    }

    deinit { _ = bpf_prog_detach2(programFD, map.fd, type) }
}
