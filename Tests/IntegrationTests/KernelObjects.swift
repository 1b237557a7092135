import ContainerFilter
import Foundation
import XCTest

/// The BPF programs, maps and links a process holds, as "prog 12", "map 7", "link 3": read from
/// /proc/PID/fdinfo, so that objects of other processes (other tests, other tools on the machine)
/// are never taken for bpfbox's.
func heldBPFObjects(pid: Int32) -> Set<String> {
    let dir = "/proc/\(pid)/fdinfo"
    var ids: Set<String> = []
    for fd in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let text = try? String(contentsOfFile: dir + "/" + fd, encoding: .utf8) else { continue }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        // A link's fdinfo also names its program: that program is held through the link.
        for kind in ["link", "map", "prog"] {
            if let id = fields["\(kind)_id"] { ids.insert("\(kind) \(id)") }
        }
    }
    return ids
}

/// Which of `ids` the kernel still has (`bpftool KIND show id N` succeeds).
func stillLoaded(_ ids: Set<String>) throws -> [String] {
    try ids.filter { id in
        let parts = id.split(separator: " ").map(String.init)
        return try runCommand(bpftoolPath, [parts[0], "show", "id", parts[1]]).status == 0
    }.sorted()
}

/// Program ids attached anywhere in the cgroup-v2 tree (`bpftool cgroup tree`).
func cgroupTreePrograms() throws -> Set<String> {
    guard let root = CgroupV2.mountPoint() else { return [] }
    let shown = try runCommand(bpftoolPath, ["-j", "cgroup", "tree", root])
    let list = (try? JSONSerialization.jsonObject(with: Data(shown.stdout.utf8))) as? [[String: Any]] ?? []
    var ids: Set<String> = []
    for cgroup in list {
        for program in cgroup["programs"] as? [[String: Any]] ?? [] {
            if let id = program["id"] as? Int { ids.insert("prog \(id)") }
        }
    }
    return ids
}

/// Waits (the kernel frees programs and links asynchronously) until none of `ids` is loaded
/// or attached to a cgroup; returns what is left.
func leftBehind(_ ids: Set<String>, timeout: TimeInterval = 10) throws -> [String] {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let left = try stillLoaded(ids) + cgroupTreePrograms().intersection(ids).map { "cgroup tree: \($0)" }.sorted()
        if left.isEmpty || Date() >= deadline { return left }
        usleep(50_000)
    }
}

/// Whether `pid` has a handler for `signal` (SigCgt in /proc/PID/status).
func catches(_ signal: Int32, pid: Int32) -> Bool {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
          let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
    return mask & (1 << UInt64(signal - 1)) != 0
}

/// Seconds from `signal` to the exit of `tool`'s process.
func signalAndTime(_ tool: Tool, _ signal: Int32) -> Double {
    let start = Date()
    kill(tool.process.processIdentifier, signal)
    tool.process.waitUntilExit()
    return Date().timeIntervalSince(start)
}

/// A process's resident set and open file descriptors, from /proc.
func residentKB(pid: Int32, field: String = "VmRSS") -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}
