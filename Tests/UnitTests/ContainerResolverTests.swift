import ContainerFilter
import Foundation
import XCTest

/// A fake machine in a temporary directory: /proc, the cgroup2 mount, /run and /var/lib, with
/// the files each runtime leaves.
final class FixtureMachine {
    let root: URL
    var roots: ContainerRoots {
        ContainerRoots(proc: root.path + "/proc", cgroup: root.path + "/cgroup", run: root.path + "/run",
                       varLib: root.path + "/var/lib")
    }
    var resolver: ContainerResolver { ContainerResolver(roots: roots) }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("bpfbox-fixture-" + UUID().uuidString)
        for dir in ["proc", "cgroup", "run", "var/lib"] { try mkdir(dir) }
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(at: root.appendingPathComponent(relative), withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String) throws {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// A cgroup directory with the given processes in its cgroup.procs.
    func cgroup(_ path: String, pids: [Int32] = []) throws {
        try write("cgroup" + path + "/cgroup.procs", pids.map { "\($0)\n" }.joined())
    }

    /// A process whose cgroup-v2 path is `cgroup`.
    func process(_ pid: Int32, cgroup: String, comm: String = "sh") throws {
        try write("proc/\(pid)/cgroup", "0::\(cgroup)\n")
        try write("proc/\(pid)/comm", comm + "\n")
    }

    /// runc's state.json under `dir` (a runc root relative to the fixture), with the cgroup and bundle.
    func runcState(_ dir: String, id: String, cgroup: String, pid: Int32, bundle: String? = nil) throws {
        let labels = bundle.map { "\"bundle=\(root.path)/\($0)\"" } ?? ""
        try write("\(dir)/\(id)/state.json", """
            {"id": "\(id)", "init_process_pid": \(pid), "created": "2025-01-01T00:00:00Z",
             "config": {"cgroups": {"name": "\(id)", "path": ""}, "labels": [\(labels)]},
             "cgroup_paths": {"": "\(root.path)/cgroup\(cgroup)", "memory": "/sys/fs/cgroup/memory/\(id)"}}
            """)
    }

    /// An OCI config.json with these annotations.
    func ociConfig(_ path: String, annotations: [String: String]) throws {
        let members = annotations.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
        try write(path, "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"sh\"]}, \"annotations\": {\(members)}}")
    }
}

final class ContainerResolverTests: XCTestCase {
    let dockerID = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
    let crioID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
    let podmanID = "0011223344556677889900aabbccddeeff00112233445566778899aabbccddee"
    let containerdID = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
    let podUID = "6c1b8f5e-2d3a-4b7c-9e1f-0a2b3c4d5e6f"

    var podSlice: String { "kubepods-burstable-pod" + podUID.replacingOccurrences(of: "-", with: "_") + ".slice" }

    func testRuncByStateFileWithItsOwnCgroupPath() throws {
        let machine = try FixtureMachine()
        try machine.cgroup("/mygroup/web1", pids: [4242])
        try machine.process(4242, cgroup: "/mygroup/web1", comm: "sleep")
        try machine.runcState("run/runc", id: "web1", cgroup: "/mygroup/web1", pid: 4242, bundle: "bundles/web1")
        try machine.ociConfig("bundles/web1/config.json", annotations: [:])
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/mygroup/web1"))
        XCTAssertEqual(container.id, "web1")
        XCTAssertEqual(container.name, "web1", "runc keeps no name: the id stands in")
        XCTAssertEqual(container.runtime, .runc)
        XCTAssertEqual(container.cgroupPath, "/mygroup/web1")
        XCTAssertEqual(container.initPID, 4242)
        XCTAssertNil(container.podUID)
        XCTAssertEqual(machine.resolver.resolve(pid: 4242), container)
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/mygroup"), "the parent is not the container")
    }

    func testRuncDefaultCgroupAndStoppedContainer() throws {
        let machine = try FixtureMachine()
        try machine.cgroup("/abc", pids: [7])
        try machine.runcState("run/runc", id: "abc", cgroup: "/abc", pid: 7)
        // A stopped container: state, no cgroup, its init pid gone.
        try machine.runcState("run/runc", id: "stopped", cgroup: "/stopped", pid: 99999)
        XCTAssertEqual(machine.resolver.resolve(cgroupPath: "/abc")?.runtime, .runc)
        let stopped = try machine.resolver.find("stopped")
        XCTAssertEqual(stopped.cgroupPath, "/stopped")
        XCTAssertNil(stopped.initPID, "a recorded pid that /proc does not have is dropped")
    }

    func testContainerdDefaultNamespaceWithNerdctlName() throws {
        let machine = try FixtureMachine()
        let id = "redis-1"
        try machine.cgroup("/default/\(id)", pids: [300])
        let bundle = "run/containerd/io.containerd.runtime.v2.task/default/\(id)"
        try machine.runcState("run/containerd/runc/default", id: id, cgroup: "/default/\(id)", pid: 300, bundle: bundle)
        try machine.ociConfig(bundle + "/config.json", annotations: ["nerdctl/name": "cache"])
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/default/\(id)"))
        XCTAssertEqual(container.runtime, .containerd)
        XCTAssertEqual(container.namespace, "default")
        XCTAssertEqual(container.name, "cache")
        XCTAssertEqual(container.id, id)
    }

    func testContainerdWithoutStateIsRecognisedByItsNamespacePath() throws {
        let machine = try FixtureMachine()
        try machine.cgroup("/default/lonely")
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/default/lonely"))
        XCTAssertEqual(container.runtime, .containerd)
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/other/lonely"))
    }

    func testKubernetesPodUnderContainerdWithSystemdDriver() throws {
        let machine = try FixtureMachine()
        let path = "/kubepods.slice/kubepods-burstable.slice/\(podSlice)/cri-containerd-\(containerdID).scope"
        try machine.cgroup(path, pids: [500])
        let bundle = "run/containerd/io.containerd.runtime.v2.task/k8s.io/\(containerdID)"
        try machine.runcState("run/containerd/runc/k8s.io", id: containerdID, cgroup: path, pid: 500, bundle: bundle)
        try machine.ociConfig(bundle + "/config.json", annotations: [
            "io.kubernetes.cri.container-name": "nginx", "io.kubernetes.cri.sandbox-name": "web-7d9f",
            "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": podUID,
        ])
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: path))
        XCTAssertEqual(container.runtime, .containerd)
        XCTAssertEqual(container.namespace, "k8s.io")
        XCTAssertEqual(container.name, "nginx")
        XCTAssertEqual(container.podName, "web-7d9f")
        XCTAssertEqual(container.podNamespace, "shop")
        XCTAssertEqual(container.podUID, podUID)
        XCTAssertEqual(container.shortID, String(containerdID.prefix(12)))
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/kubepods.slice/kubepods-burstable.slice/\(podSlice)"),
                     "the pod's own cgroup is not a container")
    }

    func testKubernetesPodWithCgroupfsDriver() throws {
        let machine = try FixtureMachine()
        let known = "/kubepods/burstable/pod\(podUID)/\(containerdID)"
        let unknown = "/kubepods/besteffort/pod\(podUID)/\(dockerID)"
        try machine.cgroup(known, pids: [600])
        try machine.cgroup(unknown, pids: [601])
        try machine.runcState("run/containerd/runc/k8s.io", id: containerdID, cgroup: known, pid: 600)
        let withState = try XCTUnwrap(machine.resolver.resolve(cgroupPath: known))
        XCTAssertEqual(withState.runtime, .containerd)
        XCTAssertEqual(withState.podUID, podUID)
        let withoutState = try XCTUnwrap(machine.resolver.resolve(cgroupPath: unknown))
        XCTAssertEqual(withoutState.runtime, .cri, "a pod's container whose runtime left no state")
        XCTAssertEqual(withoutState.id, dockerID)
        XCTAssertEqual(withoutState.podUID, podUID)
        XCTAssertEqual(withoutState.initPID, 601, "the first process of its cgroup")
    }

    func testDockerSystemdAndCgroupfsDrivers() throws {
        let machine = try FixtureMachine()
        try machine.write("var/lib/docker/containers/\(dockerID)/config.v2.json",
                          "{\"ID\": \"\(dockerID)\", \"Name\": \"/db\", \"State\": {\"Running\": true, \"Pid\": 0}}")
        try machine.cgroup("/system.slice/docker-\(dockerID).scope", pids: [700])
        let scoped = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/system.slice/docker-\(dockerID).scope"))
        XCTAssertEqual(scoped.runtime, .docker)
        XCTAssertEqual(scoped.name, "db", "from config.v2.json, without the leading slash")
        XCTAssertEqual(scoped.initPID, 700)
        let nested = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/docker/\(dockerID)/init.scope"))
        XCTAssertEqual(nested.id, dockerID, "a container's sub-cgroup belongs to the container")
        XCTAssertEqual(nested.cgroupPath, "/docker/\(dockerID)")
        XCTAssertEqual(nested.runtime, .docker)
    }

    func testCrioInAKubernetesPod() throws {
        let machine = try FixtureMachine()
        let pod = "/kubepods.slice/kubepods-burstable.slice/\(podSlice)"
        try machine.cgroup("\(pod)/crio-\(crioID).scope", pids: [800])
        try machine.cgroup("\(pod)/crio-conmon-\(crioID).scope", pids: [799])
        try machine.ociConfig("run/containers/storage/overlay-containers/\(crioID)/userdata/config.json", annotations: [
            "io.kubernetes.container.name": "app", "io.kubernetes.pod.name": "api-0",
            "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.uid": podUID,
            "io.kubernetes.cri-o.ContainerID": crioID,
        ])
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "\(pod)/crio-\(crioID).scope"))
        XCTAssertEqual(container.runtime, .crio)
        XCTAssertEqual(container.name, "app")
        XCTAssertEqual(container.podName, "api-0")
        XCTAssertEqual(container.podNamespace, "prod")
        XCTAssertEqual(container.podUID, podUID)
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "\(pod)/crio-conmon-\(crioID).scope"), "conmon is not the container")
    }

    func testPodmanNameFromContainersStorage() throws {
        let machine = try FixtureMachine()
        try machine.cgroup("/machine.slice/libpod-\(podmanID).scope/container", pids: [900])
        try machine.write("var/lib/containers/storage/overlay-containers/containers.json",
                          "[{\"id\": \"other\", \"names\": [\"x\"]}, {\"id\": \"\(podmanID)\", \"names\": [\"toolbox\"]}]")
        let container = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/machine.slice/libpod-\(podmanID).scope/container"))
        XCTAssertEqual(container.runtime, .podman)
        XCTAssertEqual(container.name, "toolbox")
        XCTAssertEqual(container.cgroupPath, "/machine.slice/libpod-\(podmanID).scope")
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/machine.slice/libpod-conmon-\(podmanID).scope"))
    }

    func testSystemdUnits() throws {
        let machine = try FixtureMachine()
        let unit = try XCTUnwrap(machine.resolver.resolve(cgroupPath: "/system.slice/nginx.service"))
        XCTAssertEqual(unit.runtime, .systemd)
        XCTAssertEqual(unit.name, "nginx.service")
        XCTAssertEqual(machine.resolver.resolve(cgroupPath: "/system.slice/nginx.service/worker")?.id, "nginx.service")
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/user.slice"))
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/"))
        XCTAssertNil(machine.resolver.resolve(cgroupPath: "/init.scope"))
    }

    // MARK: - Lookup by id or name

    func lookupMachine() throws -> FixtureMachine {
        let machine = try FixtureMachine()
        try machine.cgroup("/system.slice/docker-\(dockerID).scope")
        try machine.write("var/lib/docker/containers/\(dockerID)/config.v2.json", "{\"Name\": \"/db\"}")
        try machine.cgroup("/machine.slice/libpod-\(podmanID).scope")
        try machine.cgroup("/system.slice/cron.service")
        try machine.cgroup("/web1")
        try machine.runcState("run/runc", id: "web1", cgroup: "/web1", pid: 1)
        try machine.cgroup("/web2")
        try machine.runcState("run/runc", id: "web2", cgroup: "/web2", pid: 1)
        return machine
    }

    func testListsContainersButNotUnits() throws {
        let machine = try lookupMachine()
        XCTAssertEqual(machine.resolver.containers().map(\.name), [podmanID, "db", "web1", "web2"])
    }

    func testFindByIdNameAndUniquePrefix() throws {
        let machine = try lookupMachine()
        let resolver = machine.resolver
        XCTAssertEqual(try resolver.find(dockerID).name, "db")
        XCTAssertEqual(try resolver.find("3f4e5a").name, "db")
        XCTAssertEqual(try resolver.find("db").id, dockerID)
        XCTAssertEqual(try resolver.find("0011").runtime, .podman)
        XCTAssertEqual(try resolver.find("web2").id, "web2")
    }

    func testFindUnknownListsTheKnown() throws {
        let machine = try lookupMachine()
        let resolver = machine.resolver
        XCTAssertThrowsError(try resolver.find("nginx")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("no container matches 'nginx' (known: "), text)
            XCTAssertTrue(text.contains("3f4e5a6b7c8d db (docker)"), text)
            XCTAssertTrue(text.contains("web1 (runc)"), text)
            XCTAssertFalse(text.contains("cron.service"), text)
        }
        XCTAssertThrowsError(try FixtureMachine().resolver.find("x")) { error in
            XCTAssertTrue("\(error)".contains("known: none found"), "\(error)")
        }
    }

    func testFindAmbiguousPrefixListsTheCandidates() throws {
        let machine = try lookupMachine()
        let resolver = machine.resolver
        XCTAssertThrowsError(try resolver.find("web")) { error in
            XCTAssertEqual("\(error)", "'web' is ambiguous: it matches web1 (runc), web2 (runc); give more of the id, or the whole name")
        }
    }

    func testPodUIDForms() {
        XCTAssertEqual(ContainerResolverTests.podUID("pod\(podUID)"), podUID)
        XCTAssertEqual(ContainerResolverTests.podUID(podSlice), podUID)
        XCTAssertEqual(ContainerResolverTests.podUID("kubepods-pod" + podUID.replacingOccurrences(of: "-", with: "_") + ".slice"), podUID)
        XCTAssertNil(ContainerResolverTests.podUID("kubepods-burstable.slice"))
        XCTAssertNil(ContainerResolverTests.podUID("podcast"))
    }

    /// The pod uid of a container one level below `component`.
    static func podUID(_ component: String) -> String? {
        let machine = try? FixtureMachine()
        return machine?.resolver.resolve(cgroupPath: "/\(component)/\(String(repeating: "ab", count: 32))")?.podUID
    }
}
