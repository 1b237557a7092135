@preconcurrency import Glibc

/// The state an OCI runtime writes on a hook's stdin (runtime-spec, "State"):
/// `{"ociVersion": "1.0.2", "id": "...", "status": "created", "pid": 4242, "bundle": "/path"}`.
public struct OCIState: Sendable, Equatable {
    public var id: String
    public var status: String?
    /// Absent once the container is gone (poststop).
    public var pid: Int32?
    public var bundle: String?

    public init(id: String, status: String? = nil, pid: Int32? = nil, bundle: String? = nil) {
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
    }

    /// Parses the state; the error says what is wrong with it, in a few words.
    public static func parse(_ bytes: [UInt8]) throws(FilterError) -> OCIState {
        guard let json = JSONValue.parse(bytes) else {
            throw FilterError(bytes.isEmpty ? "no OCI state on stdin (empty input)" : "the OCI state on stdin is not valid JSON")
        }
        guard case .object = json else { throw FilterError("the OCI state on stdin is not a JSON object") }
        guard let id = json["id"]?.string, !id.isEmpty else { throw FilterError("the OCI state on stdin has no \"id\"") }
        var state = OCIState(id: id, status: json["status"]?.string, bundle: json["bundle"]?.string)
        if let pid = json["pid"]?.int, pid > 0, pid <= Int(Int32.max) { state.pid = Int32(pid) }
        return state
    }
}

/// What a prestart hook added, so that poststop (when the container's cgroup and namespace are
/// gone and their ids can no longer be read) removes exactly that. One file per container:
/// lines of `<cgroup|mntns> <key> <map path>`.
public struct OCIHookRecord: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var kind: FilterMapKind
        public var key: UInt64
        public var mapPath: String

        public init(kind: FilterMapKind, key: UInt64, mapPath: String) {
            self.kind = kind
            self.key = key
            self.mapPath = mapPath
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    public static let defaultDirectory = "/run/bpfbox/oci"

    /// The record's file for a container: its id (made safe for a file name) and a hash of its
    /// bundle, since two runtimes (or containerd namespaces) may reuse an id.
    public static func file(directory: String, state: OCIState) -> String {
        let safe = String(state.id.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }.prefix(128))
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (state.bundle ?? "").utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(directory)/\(safe)-\(String(hash, radix: 16))"
    }

    public var text: String {
        entries.map { "\($0.kind.typeName) \($0.key) \($0.mapPath)\n" }.joined()
    }

    public static func parse(_ text: String) -> OCIHookRecord {
        OCIHookRecord(entries: text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let key = UInt64(fields[1]) else { return nil }
            let kind: FilterMapKind? = fields[0] == "cgroup" ? .cgroup : fields[0] == "mntns" ? .mntns : nil
            return kind.map { Entry(kind: $0, key: key, mapPath: String(fields[2])) }
        })
    }

    /// Writes the record (atomically: a temporary file renamed), making the directory.
    public func write(to file: String) throws(FilterError) {
        let dir = parentDirectory(file)
        var path = ""
        for part in dir.split(separator: "/") {
            path += "/" + part
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw FilterError("cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
        let temporary = file + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FilterError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, file) == 0 else {
            unlink(temporary)
            throw FilterError("cannot write \(file): \(String(cString: strerror(errno)))")
        }
    }

    public static func read(from file: String) -> OCIHookRecord? {
        readFile(file, limit: 1 << 20).map(parse)
    }
}
