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
    public func row(_ row: Row) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        for (i, column) in columns.enumerated() {
            append(column.value(row), of: column, last: i == columns.count - 1, first: i == 0, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func render(_ cells: [String]) -> String {
        var bytes: [UInt8] = []
        for (i, (column, cell)) in zip(columns, cells).enumerated() {
            append(cell, of: column, last: i == columns.count - 1, first: i == 0, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A cell padded to its column's width (in characters); the last column is not padded.
    private func append(_ cell: String, of column: Column<Row>, last: Bool, first: Bool, to bytes: inout [UInt8]) {
        if !first { bytes.append(UInt8(ascii: " ")) }
        let pad = last && column.alignment == .left ? 0 : max(0, column.width - Table.characters(cell))
        if column.alignment == .right { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: pad)) }
        bytes.append(contentsOf: cell.utf8)
        if column.alignment == .left { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: pad)) }
    }

    /// The width of a cell: its bytes when ASCII (the usual case, no grapheme breaking), else its
    /// characters.
    static func characters(_ cell: String) -> Int {
        var count = 0
        for byte in cell.utf8 {
            if byte >= 0x80 { return cell.count }
            count += 1
        }
        return count
    }
}

/// UTF-8 decoding step shared by the escapers: the length of the valid sequence that starts at
/// `i`, or the length of its maximal invalid part (negative), as Unicode's substitution of
/// maximal subparts counts them.
enum UTF8Step {
    static func at<C: RandomAccessCollection>(_ b: C, _ i: C.Index) -> Int where C.Element == UInt8 {
        let lead = b[i]
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return -1
        }
        var j = b.index(after: i)
        for k in 1..<length {
            guard j < b.endIndex else { return -k }
            let byte = b[j]
            guard byte >= (k == 1 ? low : 0x80) && byte <= (k == 1 ? high : 0xBF) else { return -k }
            j = b.index(after: j)
        }
        return length
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Escapes what came from the traced system before it reaches a terminal: control characters
/// (C0, DEL, C1) become \n, \t or \xNN / \u{NN}; bytes that are not UTF-8 become \xNN.
public enum Escape {
    public static func terminal<C: RandomAccessCollection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let lead = bytes[i]
            if lead < 0x80 {
                switch lead {
                case 0x0A: out += [0x5C, UInt8(ascii: "n")]
                case 0x09: out += [0x5C, UInt8(ascii: "t")]
                case 0x0D: out += [0x5C, UInt8(ascii: "r")]
                case 0x00..<0x20, 0x7F: hex(lead, to: &out)
                default: out.append(lead)
                }
                i = bytes.index(after: i)
                continue
            }
            let length = UTF8Step.at(bytes, i)
            guard length > 0 else {
                hex(lead, to: &out)
                i = bytes.index(after: i)
                continue
            }
            if lead == 0xC2, bytes[bytes.index(after: i)] < 0xA0 {
                // C1 control: \u{80} ... \u{9f}
                let value = bytes[bytes.index(after: i)]
                out += Array("\\u{".utf8) + [hexDigits[Int(value >> 4)], hexDigits[Int(value & 0xF)], UInt8(ascii: "}")]
            } else {
                out.append(contentsOf: bytes[i..<bytes.index(i, offsetBy: length)])
            }
            i = bytes.index(i, offsetBy: length)
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func terminal(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        return terminal(Array(text.utf8))
    }

    private static func hex(_ byte: UInt8, to out: inout [UInt8]) {
        out += [0x5C, UInt8(ascii: "x"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
    }
}

/// A JSON object written field by field, in a stable order, on one line, straight into bytes.
public struct JSONLine {
    private var bytes: [UInt8]
    private var first = true

    public init() {
        bytes = [UInt8(ascii: "{")]
        bytes.reserveCapacity(512)
    }

    private mutating func literal(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func key(_ name: StaticString) {
        literal(first ? "\"" : ",\"")
        first = false
        literal(name)
        literal("\":")
    }

    public mutating func add(_ name: StaticString, _ value: some BinaryInteger) { key(name); JSONLine.appendInteger(value, to: &bytes) }
    public mutating func add(_ name: StaticString, _ value: Bool) { key(name); literal(value ? "true" : "false") }
    public mutating func add(_ name: StaticString, _ value: Double, decimals: Int = 6) {
        key(name)
        appendFixed(value, decimals: decimals, to: &bytes)
    }
    public mutating func add(_ name: StaticString, _ value: String?) {
        key(name)
        guard let value else { literal("null"); return }
        JSONLine.appendQuoted(value, to: &bytes)
    }
    public mutating func add<C: RandomAccessCollection>(_ name: StaticString, bytes value: C) where C.Element == UInt8 {
        key(name)
        bytes.append(UInt8(ascii: "\""))
        JSONLine.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }
    public mutating func add(_ name: StaticString, strings: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (i, string) in strings.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONLine.appendQuoted(string, to: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }
    public mutating func add(_ name: StaticString, byteStrings: [[UInt8]]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (i, string) in byteStrings.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            JSONLine.appendEscaped(string, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "]"))
    }
    public mutating func addRaw(_ name: StaticString, _ json: String) { key(name); bytes.append(contentsOf: json.utf8) }

    public var line: String {
        String(unsafeUninitializedCapacity: bytes.count + 1) { buffer in
            _ = buffer.initialize(from: bytes)
            buffer[bytes.count] = UInt8(ascii: "}")
            return bytes.count + 1
        }
    }

    /// A JSON string; control characters (C0, DEL, C1) are \u-escaped, so the line is also safe
    /// on a terminal.
    public static func quote(_ string: String) -> String {
        var out: [UInt8] = []
        appendQuoted(string, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { appendEscaped($0, to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    /// The inside of a JSON string from UTF-8 bytes: quote, backslash and controls escaped; an
    /// invalid sequence becomes U+FFFD (one per maximal invalid part).
    static func appendEscaped<C: RandomAccessCollection>(_ b: C, to out: inout [UInt8]) where C.Element == UInt8 {
        var i = b.startIndex
        while i < b.endIndex {
            // A run of bytes that need no escaping is copied at once.
            var end = i
            while end < b.endIndex, b[end] >= 0x20, b[end] < 0x7F, b[end] != UInt8(ascii: "\""), b[end] != UInt8(ascii: "\\") {
                end = b.index(after: end)
            }
            if end > i {
                out.append(contentsOf: b[i..<end])
                i = end
                continue
            }
            let byte = b[i]
            if byte < 0x80 {
                switch byte {
                case UInt8(ascii: "\""): out += [0x5C, UInt8(ascii: "\"")]
                case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
                case 0x0A: out += [0x5C, UInt8(ascii: "n")]
                case 0x09: out += [0x5C, UInt8(ascii: "t")]
                case 0x0D: out += [0x5C, UInt8(ascii: "r")]
                default: unicodeEscape(byte, to: &out)
                }
                i = b.index(after: i)
                continue
            }
            let length = UTF8Step.at(b, i)
            if length < 0 {
                out += [0xEF, 0xBF, 0xBD]
                i = b.index(i, offsetBy: -length)
            } else if byte == 0xC2, b[b.index(after: i)] < 0xA0 {
                unicodeEscape(b[b.index(after: i)], to: &out)
                i = b.index(i, offsetBy: 2)
            } else {
                out.append(contentsOf: b[i..<b.index(i, offsetBy: length)])
                i = b.index(i, offsetBy: length)
            }
        }
    }

    private static func unicodeEscape(_ value: UInt8, to out: inout [UInt8]) {
        out += [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigits[Int(value >> 4)], hexDigits[Int(value & 0xF)]]
    }

    static func appendInteger(_ value: some BinaryInteger, to out: inout [UInt8]) {
        var magnitude: UInt64
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            magnitude = UInt64(0) &- UInt64(truncatingIfNeeded: Int64(value))
        } else {
            magnitude = UInt64(value)
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &digits) { raw in
            var n = raw.count
            repeat {
                n -= 1
                raw[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: raw[n...])
        }
    }
}

/// Fixed-point formatting without Foundation.
public func formatFixed(_ value: Double, decimals: Int) -> String {
    var bytes: [UInt8] = []
    appendFixed(value, decimals: decimals, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

/// `formatFixed`, appended to bytes.
func appendFixed(_ value: Double, decimals: Int, to out: inout [UInt8]) {
    var scale: UInt64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * Double(scale)).rounded()
    guard scaled < 9.2e18 else {
        out.append(contentsOf: String(value).utf8)
        return
    }
    let whole = UInt64(scaled)
    if value < 0 { out.append(UInt8(ascii: "-")) }
    JSONLine.appendInteger(whole / scale, to: &out)
    guard decimals > 0 else { return }
    out.append(UInt8(ascii: "."))
    var fraction = whole % scale
    let start = out.count
    for _ in 0..<decimals {
        out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
        fraction /= 10
    }
    out[start...].reverse()
}
