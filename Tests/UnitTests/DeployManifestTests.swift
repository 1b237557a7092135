import Foundation
import XCTest

/// deploy/*.yaml against Kubernetes' schemas and bpfbox's own rules (scripts/validate-deploy.py).
final class DeployManifestTests: XCTestCase {
    func testManifestsValidate() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/validate-deploy.py").path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        switch process.terminationStatus {
        case 0: break
        case 77: try requireTool("kubernetes-validate", remedy: "pip install kubernetes-validate")
        case 127: try requireTool("python3", remedy: "apt-get install python3")
        default: XCTFail("scripts/validate-deploy.py exited \(process.terminationStatus):\n\(output)")
        }
    }
}
