import Foundation
import PackagePlugin

/// One build command per `bpf/*.bpf.c`: bpf-compile runs clang -target bpf and writes a Swift file
/// that embeds the object. Only the generated Swift file is declared as an output, so nothing
/// becomes a resource.
@main
struct BPFCompilerPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let root = module.directoryURL
        let fm = FileManager.default
        let tool = try context.tool(named: "bpf-compile")

        func files(in dir: URL, suffix: String) -> [URL] {
            let names = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasSuffix(suffix) }.sorted().map { dir.appendingPathComponent($0) }
        }

        let sources = files(in: root, suffix: ".bpf.c")
        var headers = files(in: root, suffix: ".h")
        let archDirs = ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).filter {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: root.appendingPathComponent($0).path, isDirectory: &isDir)
                && isDir.boolValue && $0 != "swift"
        }
        for dir in archDirs { headers += files(in: root.appendingPathComponent(dir), suffix: ".h") }

        return sources.map { source in
            let name = String(source.lastPathComponent.dropLast(".bpf.c".count))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("\(name).bpf.swift")
            return .buildCommand(
                displayName: "Compiling BPF object \(name)",
                executable: tool.url,
                arguments: [source.path, output.path, "--include", root.path],
                inputFiles: [source] + headers,
                outputFiles: [output]
            )
        }
    }
}
