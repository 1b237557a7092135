@preconcurrency import Glibc

/// Buffered standard output. Rows are appended and written in one write(2) per poll batch.
public final class Output {
    private var buffer: [UInt8] = []
    private let fd: Int32
    /// Set when the reader went away (EPIPE): the applet should stop.
    public private(set) var closed = false
    public let isTerminal: Bool

    public init(fd: Int32 = 1) {
        self.fd = fd
        isTerminal = isatty(fd) == 1
        buffer.reserveCapacity(64 * 1024)
    }

    public func line(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 60 * 1024 { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty, !closed else { buffer.removeAll(keepingCapacity: true); return }
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    closed = true
                    return
                }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// One line to stderr, for warnings and errors.
public func printError(_ text: String) {
    var line = Array(text.utf8)
    line.append(UInt8(ascii: "\n"))
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// A column of a table: the header and every row come from the same specification, so their
/// widths cannot drift apart.
public struct Column<Row> {
    public enum Alignment { case left, right }
    public let header: String
    public let width: Int
    public let alignment: Alignment
    public let value: (Row) -> String

    public init(_ header: String, width: Int, _ alignment: Alignment = .left, _ value: @escaping (Row) -> String) {
        self.header = header
        self.width = width
        self.alignment = alignment
        self.value = value
    }
}

public struct Table<Row> {
    public let columns: [Column<Row>]
    public init(_ columns: [Column<Row>]) { self.columns = columns }

    public var header: String { render(columns.map(\.header)) }
    public func row(_ row: Row) -> String { render(columns.map { $0.value(row) }) }

    private func render(_ cells: [String]) -> String {
        var text = ""
        for (i, (column, cell)) in zip(columns, cells).enumerated() {
            if i > 0 { text += " " }
            if i == columns.count - 1 && column.alignment == .left {
                text += cell // the last column is not padded
            } else {
                text += column.alignment == .left ? cell.padding(column.width) : cell.leftPadding(column.width)
            }
        }
        return text
    }
}

/// Escapes what came from the traced system before it reaches a terminal: control characters
/// (C0, DEL, C1) become \n, \t or \xNN / \u{NN}; bytes that are not UTF-8 become \xNN.
public enum Escape {
    public static func terminal(_ bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out = ""
        var i = 0
        while i < b.count {
            let lead = b[i]
            if lead < 0x80 {
                appendScalar(Unicode.Scalar(lead), to: &out)
                i += 1
                continue
            }
            let length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0
            if length > 0, i + length <= b.count, let text = String(validating: b[i..<(i + length)], as: UTF8.self) {
                for scalar in text.unicodeScalars { appendScalar(scalar, to: &out) }
                i += length
            } else {
                out += hex(lead)
                i += 1
            }
        }
        return out
    }

    public static func terminal(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        return terminal(Array(text.utf8))
    }

    private static func appendScalar(_ scalar: Unicode.Scalar, to out: inout String) {
        switch scalar.value {
        case 0x0A: out += "\\n"
        case 0x09: out += "\\t"
        case 0x0D: out += "\\r"
        case 0x00..<0x20, 0x7F: out += hex(UInt8(scalar.value))
        case 0x80..<0xA0: out += "\\u{\(String(scalar.value, radix: 16))}"
        default: out.unicodeScalars.append(scalar)
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }
}

/// A JSON object written field by field, in a stable order, on one line.
public struct JSONLine {
    private var text = "{"
    private var first = true

    public init() {}

    private mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        text += "\"" + name + "\":"
    }

    public mutating func add(_ name: String, _ value: some BinaryInteger) { key(name); text += String(value) }
    public mutating func add(_ name: String, _ value: Bool) { key(name); text += value ? "true" : "false" }
    public mutating func add(_ name: String, _ value: Double, decimals: Int = 6) {
        key(name)
        text += formatFixed(value, decimals: decimals)
    }
    public mutating func add(_ name: String, _ value: String?) {
        key(name)
        text += value.map(JSONLine.quote) ?? "null"
    }
    public mutating func add(_ name: String, bytes: some Collection<UInt8>) {
        key(name)
        text += JSONLine.quote(String(decoding: Array(bytes), as: UTF8.self))
    }
    public mutating func add(_ name: String, strings: [String]) {
        key(name)
        text += "[" + strings.map(JSONLine.quote).joined(separator: ",") + "]"
    }
    public mutating func addRaw(_ name: String, _ json: String) { key(name); text += json }

    public var line: String { text + "}" }

    /// A JSON string; control characters (C0, DEL, C1) are \u-escaped, so the line is also safe
    /// on a terminal.
    public static func quote(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Fixed-point formatting without Foundation.
public func formatFixed(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.2e18 else { return String(value) }
    let whole = UInt64(scaled)
    let integer = whole / UInt64(scale)
    var fraction = String(whole % UInt64(scale))
    fraction = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
    return (negative ? "-" : "") + String(integer) + (decimals > 0 ? "." + fraction : "")
}
