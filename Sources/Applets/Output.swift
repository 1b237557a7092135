@preconcurrency import Glibc

/// A growable byte buffer that lines are written into. Renderers append straight into the
/// output's buffer, which keeps its capacity: a steady stream of events allocates nothing.
///
/// The counters live behind a pointer rather than in stored properties, so that appends need no
/// exclusivity check (a class's `var` would take one on every access).
public final class ByteBuffer {
    struct Storage {
        var base: UnsafeMutablePointer<UInt8>
        var count: Int
        var capacity: Int
    }

    let storage: UnsafeMutablePointer<Storage>

    public init(capacity: Int = 256) {
        let capacity = max(capacity, 16)
        storage = .allocate(capacity: 1)
        storage.initialize(to: Storage(base: .allocate(capacity: capacity), count: 0, capacity: capacity))
    }

    deinit {
        storage.pointee.base.deallocate()
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// Bytes written so far.
    public var count: Int {
        @inline(__always) get { storage.pointee.count }
    }

    public var isEmpty: Bool { count == 0 }

    /// The bytes written so far; valid until the next append.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.pointee.base, count: storage.pointee.count)
    }

    /// Drops everything after the first `count` bytes (a line that turned out not to be wanted).
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= self.count)
        storage.pointee.count = count
    }

    public func removeAll() { storage.pointee.count = 0 }

    /// The bytes from `start` on, as a String (invalid UTF-8 repaired, which escaped text never has).
    public func string(from start: Int = 0) -> String {
        String(decoding: UnsafeBufferPointer(start: storage.pointee.base + start, count: count - start), as: UTF8.self)
    }

    /// Room for `n` more bytes; returns where they go. The caller writes them and calls `commit`.
    @inline(__always)
    func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if storage.pointee.count + n > storage.pointee.capacity { grow(storage.pointee.count + n) }
        return storage.pointee.base + storage.pointee.count
    }

    @inline(__always)
    func commit(_ n: Int) { storage.pointee.count += n }

    @inline(never)
    private func grow(_ needed: Int) {
        var capacity = storage.pointee.capacity
        while capacity < needed { capacity *= 2 }
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        base.update(from: storage.pointee.base, count: storage.pointee.count)
        storage.pointee.base.deallocate()
        storage.pointee.base = base
        storage.pointee.capacity = capacity
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1).pointee = byte
        commit(1)
    }

    @inline(__always)
    public func append(_ a: UInt8, _ b: UInt8) {
        let p = reserve(2)
        p[0] = a
        p[1] = b
        commit(2)
    }

    @inline(__always)
    public func append(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        copy(raw.baseAddress!, raw.count)
    }

    /// Short copies (keys, numbers, names) by hand: cheaper than a call to memcpy.
    @inline(__always)
    fileprivate func copy(_ from: UnsafeRawPointer, _ n: Int) {
        let p = UnsafeMutableRawPointer(reserve(n))
        switch n {
        case 8...16:
            // Two overlapping 8-byte moves.
            p.storeBytes(of: from.loadUnaligned(as: UInt64.self), as: UInt64.self)
            (p + n - 8).storeBytes(of: (from + n - 8).loadUnaligned(as: UInt64.self), as: UInt64.self)
        case 4...7:
            p.storeBytes(of: from.loadUnaligned(as: UInt32.self), as: UInt32.self)
            (p + n - 4).storeBytes(of: (from + n - 4).loadUnaligned(as: UInt32.self), as: UInt32.self)
        case 1...3:
            p.storeBytes(of: from.load(as: UInt8.self), as: UInt8.self)
            (p + n / 2).storeBytes(of: from.load(fromByteOffset: n / 2, as: UInt8.self), as: UInt8.self)
            (p + n - 1).storeBytes(of: from.load(fromByteOffset: n - 1, as: UInt8.self), as: UInt8.self)
        case 0:
            break
        default:
            memcpy(p, from, n)
        }
        commit(n)
    }

    /// `bytes[range]`.
    @inline(__always)
    func append(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        copy(bytes.baseAddress! + range.lowerBound, range.count)
    }

    @inline(__always)
    public func append(_ text: StaticString) {
        copy(text.utf8Start, text.utf8CodeUnitCount)
    }

    public func append(string text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    public func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) != nil { return }
        let p = reserve(bytes.count)
        var n = 0
        for byte in bytes { p[n] = byte; n += 1 }
        commit(n)
    }

    public func append(repeating byte: UInt8, count n: Int) {
        guard n > 0 else { return }
        memset(reserve(n), Int32(byte), n)
        commit(n)
    }

    /// Inserts `n` copies of `byte` at `offset`, moving what follows (right-aligned cells).
    func insert(repeating byte: UInt8, count n: Int, at offset: Int) {
        guard n > 0 else { return }
        _ = reserve(n)
        let base = storage.pointee.base
        memmove(base + offset + n, base + offset, storage.pointee.count - offset)
        memset(base + offset, Int32(byte), n)
        commit(n)
    }

    /// A decimal integer.
    @inline(__always)
    public func append(decimal value: some BinaryInteger) {
        if value < 0 {
            append(UInt8(ascii: "-"))
            append(digits: UInt64(0) &- UInt64(truncatingIfNeeded: Int64(value)))
        } else {
            append(digits: UInt64(value))
        }
    }

    private func append(digits value: UInt64) {
        if value < 10 {
            append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        // Two digits at a time from a table, into a scratch area, then one copy.
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes: room for 20 digits
        var magnitude = value
        withUnsafeMutableBytes(of: &scratch) { raw in
            let pairs = digitPairs.utf8Start
            var i = raw.count
            while magnitude >= 100 {
                let pair = Int(magnitude % 100) &* 2
                magnitude /= 100
                i -= 2
                raw[i] = pairs[pair]
                raw[i + 1] = pairs[pair + 1]
            }
            if magnitude >= 10 {
                let pair = Int(magnitude) &* 2
                i -= 2
                raw[i] = pairs[pair]
                raw[i + 1] = pairs[pair + 1]
            } else {
                i -= 1
                raw[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude)
            }
            copy(raw.baseAddress! + i, raw.count - i)
        }
    }

    /// A non-negative integer with at least `width` digits, zero-padded.
    public func append(zeroPadded value: UInt64, width: Int) {
        var digits = 1
        var probe = value
        while probe >= 10 { probe /= 10; digits += 1 }
        if digits < width { append(repeating: UInt8(ascii: "0"), count: width - digits) }
        append(decimal: value)
    }

    /// An unsigned integer in octal, zero-padded to `width` digits.
    public func append(octal value: UInt64, width: Int) {
        var digits = 1
        var probe = value
        while probe >= 8 { probe >>= 3; digits += 1 }
        if digits < width { append(repeating: UInt8(ascii: "0"), count: width - digits) }
        let p = reserve(digits)
        var v = value, i = digits
        repeat {
            i -= 1
            p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v & 7)
            v >>= 3
        } while v > 0
        commit(digits)
    }

    /// Fixed-point decimal without Foundation: `decimals` digits after the point, rounded.
    public func append(fixed value: Double, decimals: Int) {
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * Double(scale)).rounded()
        guard scaled < 9.2e18 else {
            append(string: String(value))
            return
        }
        let whole = UInt64(scaled)
        if value < 0 { append(UInt8(ascii: "-")) }
        append(decimal: whole / scale)
        guard decimals > 0 else { return }
        append(UInt8(ascii: "."))
        append(zeroPadded: whole % scale, width: decimals)
    }
}

/// Buffered standard output. Rows are appended and written in one write(2) per poll batch.
public final class Output {
    /// Where renderers write; `endLine()` completes a line.
    public let buffer = ByteBuffer(capacity: 64 * 1024)
    private let fd: Int32
    /// Set when the reader went away (EPIPE): the applet should stop.
    public private(set) var closed = false
    public let isTerminal: Bool

    public init(fd: Int32 = 1) {
        self.fd = fd
        isTerminal = isatty(fd) == 1
    }

    public func line(_ text: String) {
        buffer.append(string: text)
        endLine()
    }

    /// Ends the line written into `buffer`; writes out when 60 KiB have gathered.
    @inline(__always)
    public func endLine() {
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 60 * 1024 { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty, !closed else { buffer.removeAll(); return }
        let raw = buffer.bytes
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                closed = true
                break
            }
            offset += n
        }
        buffer.removeAll()
    }
}

/// One line to stderr, for warnings and errors.
public func printError(_ text: String) {
    var line = Array(text.utf8)
    line.append(UInt8(ascii: "\n"))
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// A column of a table: the header and every row come from the same specification, so their
/// widths cannot drift apart. A cell is written as bytes (`write`), or given as a String.
public struct Column<Row> {
    public enum Alignment { case left, right }
    public let header: String
    public let width: Int
    public let alignment: Alignment
    let write: (Row, ByteBuffer) -> Void

    public init(_ header: String, width: Int, _ alignment: Alignment = .left, _ value: @escaping (Row) -> String) {
        self.init(header, width: width, alignment, write: { row, out in out.append(string: value(row)) })
    }

    public init(_ header: String, width: Int, _ alignment: Alignment = .left, write: @escaping (Row, ByteBuffer) -> Void) {
        self.header = header
        self.width = width
        self.alignment = alignment
        self.write = write
    }
}

public struct Table<Row> {
    public let columns: [Column<Row>]
    public init(_ columns: [Column<Row>]) { self.columns = columns }

    public var header: String {
        let out = ByteBuffer()
        for i in columns.indices {
            cell(i, into: out) { $0.append(string: columns[i].header) }
        }
        return out.string()
    }

    public func row(_ row: Row) -> String {
        let out = ByteBuffer(capacity: 160)
        self.row(row, into: out)
        return out.string()
    }

    /// The row, written at the end of `out` (no newline).
    public func row(_ row: Row, into out: ByteBuffer) {
        for i in columns.indices {
            let column = columns[i]
            cell(i, into: out) { column.write(row, $0) }
        }
    }

    /// A cell padded to its column's width (in characters); the last column is not padded.
    private func cell(_ i: Int, into out: ByteBuffer, _ write: (ByteBuffer) -> Void) {
        if i > 0 { out.append(UInt8(ascii: " ")) }
        let column = columns[i]
        let start = out.count
        write(out)
        if i == columns.count - 1 && column.alignment == .left { return }
        let pad = column.width - Table.characters(out, from: start)
        guard pad > 0 else { return }
        if column.alignment == .right {
            out.insert(repeating: UInt8(ascii: " "), count: pad, at: start)
        } else {
            out.append(repeating: UInt8(ascii: " "), count: pad)
        }
    }

    /// The width of a cell: its bytes when ASCII (the usual case, no grapheme breaking), else its
    /// characters.
    static func characters(_ out: ByteBuffer, from start: Int) -> Int {
        let cell = UnsafeRawBufferPointer(rebasing: out.bytes[start...])
        for byte in cell where byte >= 0x80 {
            return String(decoding: cell, as: UTF8.self).count
        }
        return cell.count
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

private let hexDigits: StaticString = "0123456789abcdef"
private let digitPairs: StaticString =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

@inline(__always)
private func hexDigit(_ value: UInt8) -> UInt8 { hexDigits.utf8Start[Int(value & 0xF)] }

/// Calls `body` with the bytes as one contiguous buffer (copied only when they are not).
@inline(__always)
func withContiguousBytes<C: Collection, R>(_ bytes: C, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R where C.Element == UInt8 {
    if let result = bytes.withContiguousStorageIfAvailable(body) { return result }
    return Array(bytes).withUnsafeBufferPointer(body)
}

/// Escapes what came from the traced system before it reaches a terminal: control characters
/// (C0, DEL, C1) become \n, \t or \xNN / \u{NN}; bytes that are not UTF-8 become \xNN.
public enum Escape {
    public static func terminal<C: RandomAccessCollection>(_ bytes: C) -> String where C.Element == UInt8 {
        let out = ByteBuffer(capacity: bytes.count + 8)
        appendTerminal(bytes, to: out)
        return out.string()
    }

    public static func terminal(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        return terminal(Array(text.utf8))
    }

    /// `terminal`, written at the end of `out`.
    public static func appendTerminal<C: Collection>(_ bytes: C, to out: ByteBuffer) where C.Element == UInt8 {
        withContiguousBytes(bytes) { appendTerminal($0, to: out) }
    }

    static func appendTerminal(_ b: UnsafeBufferPointer<UInt8>, to out: ByteBuffer) {
        var i = 0
        while i < b.count {
            // A run of printable ASCII is copied at once.
            var end = i
            while end < b.count, b[end] >= 0x20, b[end] < 0x7F { end += 1 }
            if end > i {
                out.append(b, i..<end)
                i = end
                continue
            }
            let lead = b[i]
            if lead < 0x80 {
                switch lead {
                case 0x0A: out.append(0x5C, UInt8(ascii: "n"))
                case 0x09: out.append(0x5C, UInt8(ascii: "t"))
                case 0x0D: out.append(0x5C, UInt8(ascii: "r"))
                default: hex(lead, to: out)
                }
                i += 1
                continue
            }
            let length = UTF8Step.at(b, i)
            guard length > 0 else {
                hex(lead, to: out)
                i += 1
                continue
            }
            if lead == 0xC2, b[i + 1] < 0xA0 {
                // C1 control: \u{80} ... \u{9f}
                out.append("\\u{")
                out.append(hexDigit(b[i + 1] >> 4), hexDigit(b[i + 1]))
                out.append(UInt8(ascii: "}"))
            } else {
                out.append(b, i..<(i + length))
            }
            i += length
        }
    }

    private static func hex(_ byte: UInt8, to out: ByteBuffer) {
        out.append(0x5C, UInt8(ascii: "x"))
        out.append(hexDigit(byte >> 4), hexDigit(byte))
    }
}

/// A JSON object written field by field, in a stable order, on one line, straight into bytes:
/// into a buffer of its own, or at the end of an output's buffer (`init(into:)`, then `finish()`).
public struct JSONLine {
    public let out: ByteBuffer
    private let start: Int
    private var first = true

    public init() {
        out = ByteBuffer(capacity: 512)
        start = 0
        out.append(UInt8(ascii: "{"))
    }

    public init(into out: ByteBuffer) {
        self.out = out
        start = out.count
        out.append(UInt8(ascii: "{"))
    }

    mutating func key(_ name: StaticString) {
        if first {
            out.append(UInt8(ascii: "\""))
            first = false
        } else {
            out.append(UInt8(ascii: ","), UInt8(ascii: "\""))
        }
        out.append(name)
        out.append(UInt8(ascii: "\""), UInt8(ascii: ":"))
    }

    public mutating func add(_ name: StaticString, _ value: some BinaryInteger) { key(name); out.append(decimal: value) }
    public mutating func add(_ name: StaticString, _ value: Bool) {
        key(name)
        if value { out.append("true" as StaticString) } else { out.append("false" as StaticString) }
    }
    public mutating func add(_ name: StaticString, _ value: Double, decimals: Int = 6) {
        key(name)
        out.append(fixed: value, decimals: decimals)
    }
    public mutating func add(_ name: StaticString, _ value: String?) {
        key(name)
        guard let value else { out.append("null"); return }
        JSONLine.appendQuoted(value, to: out)
    }
    public mutating func add(_ name: StaticString, literal value: StaticString) {
        key(name)
        out.append(UInt8(ascii: "\""))
        out.append(value) // no character in it needs escaping
        out.append(UInt8(ascii: "\""))
    }
    public mutating func add<C: Collection>(_ name: StaticString, bytes value: C) where C.Element == UInt8 {
        key(name)
        JSONLine.appendQuoted(bytes: value, to: out)
    }
    public mutating func add(_ name: StaticString, strings: [String]) {
        key(name)
        out.append(UInt8(ascii: "["))
        for (i, string) in strings.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONLine.appendQuoted(string, to: out)
        }
        out.append(UInt8(ascii: "]"))
    }
    public mutating func add<S: Sequence>(_ name: StaticString, byteStrings: S) where S.Element: Collection, S.Element.Element == UInt8 {
        key(name)
        out.append(UInt8(ascii: "["))
        var first = true
        for string in byteStrings {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONLine.appendQuoted(bytes: string, to: out)
        }
        out.append(UInt8(ascii: "]"))
    }
    public mutating func addRaw(_ name: StaticString, _ json: String) { key(name); out.append(string: json) }

    /// Closes the object written into a shared buffer.
    public func finish() { out.append(UInt8(ascii: "}")) }

    /// The object as a String (closed; the buffer itself is left as it is).
    public var line: String {
        let body = UnsafeRawBufferPointer(rebasing: out.bytes[start...])
        return String(unsafeUninitializedCapacity: body.count + 1) { buffer in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: body)
            buffer[body.count] = UInt8(ascii: "}")
            return body.count + 1
        }
    }

    /// A JSON string; control characters (C0, DEL, C1) are \u-escaped, so the line is also safe
    /// on a terminal.
    public static func quote(_ string: String) -> String {
        let out = ByteBuffer()
        appendQuoted(string, to: out)
        return out.string()
    }

    static func appendQuoted(_ string: String, to out: ByteBuffer) {
        var string = string
        string.withUTF8 { appendQuoted(bytes: $0, to: out) }
    }

    static func appendQuoted<C: Collection>(bytes: C, to out: ByteBuffer) where C.Element == UInt8 {
        out.append(UInt8(ascii: "\""))
        withContiguousBytes(bytes) { appendEscaped($0, to: out) }
        out.append(UInt8(ascii: "\""))
    }

    /// The inside of a JSON string from UTF-8 bytes: quote, backslash and controls escaped; an
    /// invalid sequence becomes U+FFFD (one per maximal invalid part).
    static func appendEscaped(_ b: UnsafeBufferPointer<UInt8>, to out: ByteBuffer) {
        var i = 0
        while i < b.count {
            // A run of bytes that need no escaping is copied at once.
            var end = i
            while end < b.count, b[end] >= 0x20, b[end] < 0x7F, b[end] != UInt8(ascii: "\""), b[end] != UInt8(ascii: "\\") {
                end += 1
            }
            if end > i {
                out.append(b, i..<end)
                i = end
                continue
            }
            let byte = b[i]
            if byte < 0x80 {
                switch byte {
                case UInt8(ascii: "\""): out.append(0x5C, UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(0x5C, 0x5C)
                case 0x0A: out.append(0x5C, UInt8(ascii: "n"))
                case 0x09: out.append(0x5C, UInt8(ascii: "t"))
                case 0x0D: out.append(0x5C, UInt8(ascii: "r"))
                default: unicodeEscape(byte, to: out)
                }
                i += 1
                continue
            }
            let length = UTF8Step.at(b, i)
            if length < 0 {
                out.append("\u{FFFD}")
                i += -length
            } else if byte == 0xC2, b[i + 1] < 0xA0 {
                unicodeEscape(b[i + 1], to: out)
                i += 2
            } else {
                out.append(b, i..<(i + length))
                i += length
            }
        }
    }

    private static func unicodeEscape(_ value: UInt8, to out: ByteBuffer) {
        out.append("\\u00")
        out.append(hexDigit(value >> 4), hexDigit(value))
    }
}

/// Fixed-point formatting without Foundation.
public func formatFixed(_ value: Double, decimals: Int) -> String {
    let out = ByteBuffer(capacity: 32)
    out.append(fixed: value, decimals: decimals)
    return out.string()
}
