@preconcurrency import Glibc

/// Addresses as the networking applets show them.
public enum NetAddress {
    public static let inet: UInt16 = 2
    public static let inet6: UInt16 = 10

    /// Text for an address of `family` held in 16 bytes (IPv4 in the first four). A v4-mapped
    /// IPv6 address (::ffff:a.b.c.d) is shown as the IPv4 address it carries.
    public static func text(family: UInt16, bytes: [UInt8]) -> String {
        if family == inet { return ipv4(bytes[0..<4]) }
        if isV4Mapped(bytes) { return ipv4(bytes[12..<16]) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in for i in 0..<16 { raw[i] = bytes[i] } }
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IP version to show: 4 for IPv4 and v4-mapped IPv6.
    public static func version(family: UInt16, bytes: [UInt8]) -> Int {
        family == inet || isV4Mapped(bytes) ? 4 : 6
    }

    static func isV4Mapped(_ bytes: [UInt8]) -> Bool {
        bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }

    static func ipv4(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { String($0) }.joined(separator: ".")
    }

    /// "addr:port", with brackets around IPv6 addresses.
    public static func endpoint(family: UInt16, bytes: [UInt8], port: UInt16) -> String {
        let address = text(family: family, bytes: bytes)
        return version(family: family, bytes: bytes) == 6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// Port lists for -P: "80,443,8000".
public enum PortList {
    public static func parse(_ text: String, option: String, max: Int) throws(UsageError) -> [UInt16] {
        var ports: [UInt16] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let port = UInt16(part.trimmingSpaces), port > 0 else {
                throw UsageError("\(option): '\(part)' in '\(text)' is not a port from 1 to 65535")
            }
            if !ports.contains(port) { ports.append(port) }
        }
        guard ports.count <= max else { throw UsageError("\(option): at most \(max) ports") }
        return ports
    }
}

extension Substring {
    var trimmingSpaces: String {
        var text = self.drop(while: { $0 == " " })
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
