@preconcurrency import Glibc

/// Who runs a container, as far as its cgroup path and the runtimes' state files tell.
public enum ContainerRuntime: String, Sendable, CaseIterable {
    case runc
    case containerd
    case docker
    case crio = "cri-o"
    case podman
    /// A Kubernetes container whose runtime left no state that bpfbox can read (cgroupfs driver).
    case cri
    /// A systemd unit (`*.service`): not a container, but a group of processes worth a name.
    case systemd
}

/// A container (or systemd unit) found from a cgroup path and the runtime's own state.
public struct Container: Sendable, Equatable {
    public var id: String
    /// From the runtime's state where it keeps one (Docker's name, a Kubernetes container name,
    /// nerdctl's or podman's name); the id otherwise.
    public var name: String
    public var runtime: ContainerRuntime
    /// The container's own cgroup, relative to the cgroup2 mount ("/docker/<id>").
    public var cgroupPath: String
    public var podUID: String?
    public var podName: String?
    public var podNamespace: String?
    /// The containerd namespace ("default", "k8s.io", "moby").
    public var namespace: String?
    /// The container's first process, when the runtime recorded it or the cgroup holds one.
    public var initPID: Int32?

    public init(id: String, name: String? = nil, runtime: ContainerRuntime, cgroupPath: String, podUID: String? = nil,
                podName: String? = nil, podNamespace: String? = nil, namespace: String? = nil, initPID: Int32? = nil) {
        self.id = id
        self.name = name ?? id
        self.runtime = runtime
        self.cgroupPath = cgroupPath
        self.podUID = podUID
        self.podName = podName
        self.podNamespace = podNamespace
        self.namespace = namespace
        self.initPID = initPID
    }

    /// The first 12 characters of a hexadecimal id (as `docker ps` shows it); other ids whole.
    public var shortID: String {
        id.count > 12 && ContainerResolver.isHexID(id) ? String(id.prefix(12)) : id
    }

    /// "name (runtime)", or "shortid name (runtime)" when the name is not the id.
    public var label: String {
        let who = name == id ? shortID : "\(shortID) \(name)"
        return "\(who) (\(runtime.rawValue))"
    }
}

/// Where the resolver looks. Injectable so that tests run on fixture trees.
public struct ContainerRoots: Sendable {
    public var proc: String
    /// The cgroup2 mount; nil when none is mounted.
    public var cgroup: String?
    public var run: String
    public var varLib: String

    public init(proc: String = "/proc", cgroup: String?, run: String = "/run", varLib: String = "/var/lib") {
        self.proc = proc
        self.cgroup = cgroup
        self.run = run
        self.varLib = varLib
    }

    /// This machine: /proc, the discovered cgroup2 mount, /run, /var/lib.
    public static var host: ContainerRoots { ContainerRoots(cgroup: CgroupV2.mountPoint()) }
}

/// Finds containers from cgroup paths and the state that runtimes keep on disk, without asking
/// any daemon. What each runtime leaves, and where:
///
/// - runc: `/run/runc/<id>/state.json` (init pid, cgroup, `bundle=` label); cgroup `/<id>` by default.
/// - containerd: runc state under `/run/containerd/runc/<namespace>/<id>`, the bundle (OCI
///   config.json with CRI or nerdctl annotations) under `io.containerd.runtime.v2.task`;
///   cgroup `/<namespace>/<id>`, or `cri-containerd-<id>.scope` under Kubernetes with systemd.
/// - Docker: `docker-<id>.scope` (systemd driver) or `/docker/<id>`; its name in
///   `/var/lib/docker/containers/<id>/config.v2.json`; runc state under `/run/docker/runtime-runc/moby`.
/// - CRI-O: `crio-<id>.scope`; podman: `libpod-<id>.scope`. Both keep the OCI config.json in
///   `containers/storage/overlay-containers/<id>/userdata` and names in `containers.json` there.
/// - Kubernetes: a pod cgroup (`kubepods-<qos>-pod<uid>.slice`, or `pod<uid>` with the cgroupfs
///   driver) holds the containers' cgroups.
/// - systemd: `*.service`.
public struct ContainerResolver: Sendable {
    public let roots: ContainerRoots

    public init(roots: ContainerRoots = .host) { self.roots = roots }

    // MARK: - From a cgroup path

    /// The container (or systemd unit) that `cgroupPath` (relative to the cgroup2 mount) belongs
    /// to: the innermost path component that names one, so that a container's sub-cgroups
    /// (`/docker/<id>/init.scope`) resolve to the container. nil for any other cgroup.
    public func resolve(cgroupPath: String) -> Container? {
        resolve(cgroupPath: cgroupPath, states: runtimeStates())
    }

    private func resolve(cgroupPath: String, states: [RuntimeState]) -> Container? {
        let components = cgroupPath.split(separator: "/").map(String.init)
        for index in components.indices.reversed() {
            let path = "/" + components[...index].joined(separator: "/")
            let parent = index > 0 ? components[index - 1] : nil
            let recognised = Self.recognise(components[index], parent: parent, depth: index + 1)
            if let state = states.first(where: { $0.cgroupPath == path })
                ?? recognised.flatMap({ match in states.first { $0.id == match.id } }) {
                return describe(id: state.id, runtime: recognised?.runtime, path: path, state: state, ancestors: components[..<index])
            }
            if let recognised {
                return describe(id: recognised.id, runtime: recognised.runtime, path: path, state: nil,
                                ancestors: components[..<index])
            }
        }
        return nil
    }

    /// The container of process `pid` (from `/proc/<pid>/cgroup`).
    public func resolve(pid: Int32) -> Container? {
        cgroupPath(ofPID: pid).flatMap { resolve(cgroupPath: $0) }
    }

    /// The cgroup2 path of a process, relative to the cgroup2 mount.
    public func cgroupPath(ofPID pid: Int32) -> String? {
        guard let text = readFile("\(roots.proc)/\(pid)/cgroup") else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    // MARK: - Every container, and lookup by id or name

    /// Every container on the machine: those whose cgroup the cgroup2 tree shows, and those
    /// that runtimes have state for (possibly stopped). systemd units are not listed.
    public func containers() -> [Container] {
        var found: [String: Container] = [:]
        let states = runtimeStates()
        if let mount = roots.cgroup {
            // Shallow paths first, so a container is listed with its own cgroup, not a sub-cgroup.
            for path in CgroupV2.tree(mount: mount).values.sorted(by: { ($0.count, $0) < ($1.count, $1) }) {
                guard let container = resolve(cgroupPath: path, states: states), container.runtime != .systemd,
                      found[container.id] == nil else { continue }
                found[container.id] = container
            }
        }
        for state in states where found[state.id] == nil {
            let components = state.cgroupPath.split(separator: "/").map(String.init)
            found[state.id] = describe(id: state.id, runtime: nil, path: state.cgroupPath, state: state,
                                       ancestors: components.dropLast())
        }
        return found.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
    }

    /// The one container whose id or name is `query` or starts with it. An exact id or name
    /// wins over prefixes of others; no match or several are errors that list the candidates.
    public func find(_ query: String) throws(FilterError) -> Container {
        let all = containers()
        let shown = Printable.text(query)
        guard !query.isEmpty else { throw FilterError("an empty container id or name matches nothing") }
        if let exact = all.first(where: { $0.id == query }) ?? Self.unique(all.filter { $0.name == query }) {
            return exact
        }
        let candidates = all.filter { $0.id.hasPrefix(query) || $0.name.hasPrefix(query) }
        switch candidates.count {
        case 1:
            return candidates[0]
        case 0:
            let known = all.isEmpty ? "none found in the cgroup tree at \(roots.cgroup ?? "(no cgroup2 mount)") or in the runtimes' state under \(roots.run)"
                                    : Self.listing(all)
            throw FilterError("no container matches '\(shown)' (known: \(known))")
        default:
            throw FilterError("'\(shown)' is ambiguous: it matches \(Self.listing(candidates)); give more of the id, or the whole name")
        }
    }

    private static func unique(_ containers: [Container]) -> Container? {
        containers.count == 1 ? containers[0] : nil
    }

    private static func listing(_ containers: [Container]) -> String {
        let limit = 10
        var text = containers.prefix(limit).map { Printable.text($0.label) }.joined(separator: ", ")
        if containers.count > limit { text += " and \(containers.count - limit) more" }
        return text
    }

    // MARK: - Recognising path components

    struct Recognised: Equatable {
        let id: String
        /// nil when the component names a container but not its runtime (Kubernetes, cgroupfs driver).
        let runtime: ContainerRuntime?
    }

    /// What a cgroup path component (with its parent, at `depth` from the root) names.
    static func recognise(_ component: String, parent: String?, depth: Int) -> Recognised? {
        let scopes: [(prefix: String, runtime: ContainerRuntime)] = [
            ("docker-", .docker), ("crio-", .crio), ("libpod-", .podman), ("cri-containerd-", .containerd),
        ]
        for (prefix, runtime) in scopes where component.hasPrefix(prefix) {
            var id = String(component.dropFirst(prefix.count))
            if id.hasSuffix(".scope") { id.removeLast(".scope".count) }
            // conmon, the monitor of CRI-O and podman, has a scope of its own: not the container.
            guard !id.hasPrefix("conmon-"), !id.isEmpty else { return nil }
            return Recognised(id: id, runtime: runtime)
        }
        if parent == "docker", isHexID(component) { return Recognised(id: component, runtime: .docker) }
        if let parent, podUID(parent) != nil, !component.hasSuffix(".slice") {
            return Recognised(id: component, runtime: nil)
        }
        if depth == 2, parent == "default" || parent == "k8s.io" { return Recognised(id: component, runtime: .containerd) }
        if component.hasSuffix(".service") { return Recognised(id: component, runtime: .systemd) }
        return nil
    }

    /// The pod UID a Kubernetes pod cgroup names: `pod<uid>` (cgroupfs driver) or
    /// `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd driver).
    static func podUID(_ component: String) -> String? {
        var name = Substring(component)
        if name.hasSuffix(".slice") {
            guard name.hasPrefix("kubepods"), let last = name.dropLast(".slice".count).split(separator: "-").last else { return nil }
            name = last
        }
        guard name.hasPrefix("pod") else { return nil }
        let uid = name.dropFirst(3)
        guard uid.allSatisfy({ $0.isHexDigit || $0 == "-" || $0 == "_" }), uid.filter(\.isHexDigit).count >= 32 else { return nil }
        return uid.replacingAll("_", with: "-")
    }

    static func isHexID(_ text: String) -> Bool {
        text.count >= 12 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    // MARK: - The runtimes' state

    /// A runc-format state directory (runc itself, containerd's and Docker's shims).
    struct RuntimeState {
        let id: String
        let runtime: ContainerRuntime
        let namespace: String?
        let cgroupPath: String
        let initPID: Int32?
        let bundle: String?
    }

    /// The runc roots of each runtime, and the namespace level containerd adds.
    private var stateRoots: [(dir: String, runtime: ContainerRuntime, namespaced: Bool)] {
        [("\(roots.run)/runc", .runc, false),
         ("\(roots.run)/containerd/runc", .containerd, true),
         ("\(roots.run)/docker/runtime-runc/moby", .docker, false)]
    }

    func runtimeStates() -> [RuntimeState] {
        var states: [RuntimeState] = []
        for root in stateRoots {
            let dirs = root.namespaced
                ? FileSystem.entries(root.dir).flatMap { ns in FileSystem.entries("\(root.dir)/\(ns)").map { ("\(root.dir)/\(ns)/\($0)", $0, ns) } }
                : FileSystem.entries(root.dir).map { ("\(root.dir)/\($0)", $0, nil as String?) }
            for (dir, id, namespace) in dirs {
                if let state = readState(dir: dir, id: id, runtime: root.runtime, namespace: namespace) { states.append(state) }
            }
        }
        return states
    }

    private func readState(dir: String, id: String, runtime: ContainerRuntime, namespace: String?) -> RuntimeState? {
        guard let json = readJSON("\(dir)/state.json") else { return nil }
        let config = json["config"]
        var path: String?
        if let full = json["cgroup_paths"]?[""]?.string, let mount = roots.cgroup, full.hasPrefix(mount) {
            path = String(full.dropFirst(mount.count))
        } else if let given = config?["cgroups"]?["path"]?.string, given.hasPrefix("/") {
            path = given
        } else if let name = config?["cgroups"]?["name"]?.string, !name.isEmpty {
            let parent = config?["cgroups"]?["parent"]?.string ?? ""
            path = (parent.isEmpty ? "" : "/" + parent.trimmingSlashes) + "/" + name
        }
        let bundle = config?["labels"]?.array?.compactMap(\.string).first { $0.hasPrefix("bundle=") }.map { String($0.dropFirst(7)) }
        return RuntimeState(id: json["id"]?.string ?? id, runtime: runtime, namespace: namespace,
                            cgroupPath: path.map { $0.isEmpty ? "/" : $0 } ?? "/" + id,
                            initPID: json["init_process_pid"]?.int.map { Int32(truncatingIfNeeded: $0) }, bundle: bundle)
    }

    /// Fills in a container's name, pod and init pid from what its runtime keeps.
    private func describe(id: String, runtime recognised: ContainerRuntime?, path: String, state: RuntimeState?,
                          ancestors: ArraySlice<String>) -> Container {
        var container = Container(id: id, runtime: recognised ?? state?.runtime ?? .cri, cgroupPath: path,
                                  namespace: state?.namespace, initPID: state?.initPID)
        container.podUID = ancestors.reversed().lazy.compactMap(Self.podUID).first
        if container.runtime == .systemd { return container }
        var labels: [String: String] = [:]
        if let bundle = state?.bundle, let config = readJSON(bundle + "/config.json") {
            labels = config["annotations"]?.stringMembers ?? [:]
        }
        let storage = ["\(roots.run)/containers/storage", "\(roots.varLib)/containers/storage"]
        if labels.isEmpty {
            for dir in storage {
                if let config = readJSON("\(dir)/overlay-containers/\(id)/userdata/config.json") {
                    labels = config["annotations"]?.stringMembers ?? [:]
                    break
                }
            }
        }
        if let docker = readJSON("\(roots.varLib)/docker/containers/\(id)/config.v2.json") {
            if let name = docker["Name"]?.string, !name.isEmpty { container.name = String(name.drop { $0 == "/" }) }
            if let pid = docker["State"]?["Pid"]?.int, pid > 0 { container.initPID = container.initPID ?? Int32(truncatingIfNeeded: pid) }
            labels.merge(docker["Config"]?["Labels"]?.stringMembers ?? [:]) { own, _ in own }
            if recognised == nil, state == nil { container.runtime = .docker }
        }
        if recognised == nil, labels["io.kubernetes.cri-o.ContainerID"] != nil { container.runtime = .crio }
        if let name = Self.first(labels, ["io.kubernetes.container.name", "io.kubernetes.cri.container-name", "nerdctl/name"]) {
            container.name = name
        } else if container.name == id, let name = storage.lazy.compactMap({ self.storageName(id: id, storage: $0) }).first {
            container.name = name
        }
        container.podName = Self.first(labels, ["io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"])
        container.podNamespace = Self.first(labels, ["io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"])
        container.podUID = container.podUID ?? Self.first(labels, ["io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid"])
        if let pid = container.initPID, access("\(roots.proc)/\(pid)", F_OK) != 0 { container.initPID = nil }
        if container.initPID == nil, let mount = roots.cgroup {
            container.initPID = readFile(mount + path + "/cgroup.procs")?.split(separator: "\n").lazy.compactMap { Int32($0) }.first
        }
        return container
    }

    /// The first name containers/storage (podman, CRI-O) keeps for `id`.
    private func storageName(id: String, storage: String) -> String? {
        readJSON("\(storage)/overlay-containers/containers.json")?.array?
            .first { $0["id"]?.string == id }?["names"]?.array?.first?.string
    }

    private static func first(_ labels: [String: String], _ keys: [String]) -> String? {
        keys.lazy.compactMap { labels[$0] }.first { !$0.isEmpty }
    }

    private func readJSON(_ path: String) -> JSONValue? {
        readFile(path, limit: 16 << 20).flatMap { JSONValue.parse($0) }
    }
}

/// Directory listings without Foundation.
public enum FileSystem {
    /// The names in `path`, sorted, without "." and ".."; empty when it cannot be read.
    public static func entries(_ path: String) -> [String] {
        guard let handle = opendir(path) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

/// Control characters in names that came from the system, made visible (for error messages).
enum Printable {
    static func text(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}

extension StringProtocol {
    /// The text without leading and trailing slashes.
    public var trimmingSlashes: String {
        String(drop { $0 == "/" }.reversed().drop { $0 == "/" }.reversed())
    }

    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
