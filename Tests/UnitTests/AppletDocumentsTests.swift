import Applets
import Foundation
import XCTest

/// Every tracing applet ships a man page, an example file and a tools/ link (see STYLE.md).
final class AppletDocumentsTests: XCTestCase {
    private var tracingApplets: [Applet] { Registry.applets.filter { $0.kind == .tracing } }

    private func path(_ relative: String) -> String {
        repositoryRoot.appendingPathComponent(relative).path
    }

    func testRepositoryRootIsFound() {
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("Package.swift")), repositoryRoot.path)
    }

    func testEveryTracingAppletHasAManPage() {
        XCTAssertFalse(tracingApplets.isEmpty)
        for applet in tracingApplets {
            let page = path("man/man8/\(applet.name).8")
            let size = (try? FileManager.default.attributesOfItem(atPath: page)[.size] as? Int) ?? nil
            XCTAssertNotNil(size, "missing man page \(page)")
            XCTAssertGreaterThan(size ?? 0, 0, "empty man page \(page)")
        }
    }

    func testEveryTracingAppletHasAnExampleFile() {
        for applet in tracingApplets {
            let example = path("tools/\(applet.name)_example.txt")
            let size = (try? FileManager.default.attributesOfItem(atPath: example)[.size] as? Int) ?? nil
            XCTAssertNotNil(size, "missing example file \(example)")
            XCTAssertGreaterThan(size ?? 0, 0, "empty example file \(example)")
        }
    }

    func testEveryTracingAppletHasAToolsLink() {
        for applet in tracingApplets {
            let link = path("tools/\(applet.name)")
            let type = (try? FileManager.default.attributesOfItem(atPath: link)[.type]) as? FileAttributeType
            XCTAssertEqual(type, .typeSymbolicLink, "\(link) is not a symbolic link")
            XCTAssertEqual(try? FileManager.default.destinationOfSymbolicLink(atPath: link), "../.build/release/bpfbox",
                           "\(link) must point at ../.build/release/bpfbox")
        }
    }

    /// Support applets need no example file nor tools/ link, but each has a man page
    /// (`bpfbox-NAME.8`) with the sections that apply to it.
    func testEverySupportAppletHasAManPage() throws {
        let support = Registry.applets.filter { $0.kind == .support }
        XCTAssertTrue(support.contains { $0.name == "filter" })
        for applet in support {
            let page = path("man/man8/\(applet.manPage)")
            let text = try XCTUnwrap(manPage(applet), "missing man page \(page)")
            for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "REQUIREMENTS", "OPTIONS", "EXAMPLES", "SEE ALSO"] {
                XCTAssertTrue(text.contains(".SH \(section)") || text.contains(".SH \"\(section)\""), "\(page) has no .SH \(section)")
            }
        }
    }

    func testManPagesHaveTheStandardSections() throws {
        for applet in tracingApplets {
            let page = path("man/man8/\(applet.name).8")
            guard let data = FileManager.default.contents(atPath: page) else {
                XCTFail("missing man page \(page)")
                continue
            }
            let text = String(decoding: data, as: UTF8.self)
            let headings = Set(text.split(separator: "\n").filter { $0.hasPrefix(".SH") }.map {
                $0.dropFirst(3).trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "").uppercased()
            })
            for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "REQUIREMENTS", "OPTIONS", "EXAMPLES", "FIELDS", "OVERHEAD", "SEE ALSO"] {
                XCTAssertTrue(headings.contains(section), "\(page) has no .SH \(section) (has \(headings.sorted()))")
            }
        }
    }

    /// Every applet's man page names each of its (non-hidden) options and the fixed words of
    /// its first argument (filter's subcommands, completions' shells): a test fails when the
    /// option set and the page drift apart.
    func testManPagesDocumentEveryOption() throws {
        for applet in Registry.applets {
            guard let spec = applet.spec else { continue }
            let page = path("man/man8/\(applet.manPage)")
            guard let text = manPage(applet) else {
                XCTFail("missing man page \(page)")
                continue
            }
            for option in spec.options where !option.hidden {
                XCTAssertTrue(text.contains("--" + option.long), "\(page) does not document --\(option.long)")
                if let short = option.short {
                    XCTAssertTrue(text.contains("-\(short)"), "\(page) does not document -\(short)")
                }
            }
            for word in spec.positionalChoices {
                XCTAssertTrue(text.contains(word), "\(page) does not mention \(word)")
            }
        }
    }

    /// The page's text with roff's escapes for minus and fonts taken out.
    private func manPage(_ applet: Applet) -> String? {
        FileManager.default.contents(atPath: path("man/man8/\(applet.manPage)")).map {
            String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\\-", with: "-")
                .replacingOccurrences(of: "\\fB", with: "").replacingOccurrences(of: "\\fI", with: "")
                .replacingOccurrences(of: "\\fR", with: "").replacingOccurrences(of: "\\fP", with: "")
        }
    }
}
