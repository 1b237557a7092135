/// A BPF object compiled at build time and embedded in the binary as base64.
public struct EmbeddedObject: Sendable {
    public let name: String
    public let size: Int
    public let base64: StaticString

    public init(name: String, size: Int, base64: StaticString) {
        self.name = name
        self.size = size
        self.base64 = base64
    }

    /// The ELF bytes of the object.
    public func bytes() -> [UInt8] {
        base64.withUTF8Buffer { Base64.decode($0) } ?? []
    }
}

enum Base64 {
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Decodes padded base64; nil on a malformed input.
    static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            let a = table[Int(input[i])], b = table[Int(input[i + 1])]
            let c3 = input[i + 2], d3 = input[i + 3]
            guard a != 0xFF, b != 0xFF else { return nil }
            out.append(a << 2 | b >> 4)
            if c3 != UInt8(ascii: "=") {
                let c = table[Int(c3)]
                guard c != 0xFF else { return nil }
                out.append((b & 0x0F) << 4 | c >> 2)
                if d3 != UInt8(ascii: "=") {
                    let d = table[Int(d3)]
                    guard d != 0xFF else { return nil }
                    out.append((c & 0x03) << 6 | d)
                }
            }
            i += 4
        }
        return out
    }
}
