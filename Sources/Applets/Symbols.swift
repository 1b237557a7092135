@preconcurrency import Glibc

/// Kernel symbols from /proc/kallsyms, loaded once.
final class KernelSymbols {
    private var addresses: [UInt64] = []
    private var names: [String] = []

    init(path: String = "/proc/kallsyms") {
        guard let file = fopen(path, "r") else { return }
        defer { fclose(file) }
        var entries: [(UInt64, String)] = []
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 3)
            guard parts.count >= 3, let address = UInt64(parts[0], radix: 16), address != 0 else { continue }
            let type = parts[1].lowercased()
            guard type == "t" || type == "w" else { continue }
            entries.append((address, String(parts[2].split(separator: "\t").first ?? parts[2])))
        }
        entries.sort { $0.0 < $1.0 }
        addresses = entries.map(\.0)
        names = entries.map(\.1)
    }

    var isEmpty: Bool { addresses.isEmpty }

    func symbolize(_ address: UInt64) -> String {
        guard let index = lastIndex(atOrBelow: address, in: addresses) else { return hex(address) }
        let offset = address - addresses[index]
        return offset == 0 ? names[index] : "\(names[index])+0x\(String(offset, radix: 16))"
    }
}

/// User-space addresses: the mapping file and offset from /proc/PID/maps, and the function name
/// from the file's ELF symbol tables when it has them.
final class UserSymbols {
    private struct Mapping { let start: UInt64; let end: UInt64; let offset: UInt64; let path: String }
    private var elfCache: [String: ELFSymbols?] = [:]

    func symbolize(_ addresses: [UInt64], pid: UInt32) -> [String] {
        let mappings = readMappings(pid)
        return addresses.map { address in
            guard let map = mappings.first(where: { $0.start <= address && address < $0.end }) else {
                return hex(address)
            }
            let fileOffset = address - map.start + map.offset
            let location = "(\(map.path)+0x\(String(fileOffset, radix: 16)))"
            if map.path.hasPrefix("/"), let elf = symbols(map.path), let name = elf.symbolize(fileOffset: fileOffset) {
                return "\(name) \(location)"
            }
            return "\(hex(address)) \(location)"
        }
    }

    private func symbols(_ path: String) -> ELFSymbols? {
        if let cached = elfCache[path] { return cached }
        let loaded = ELFSymbols(path: path)
        elfCache[path] = loaded
        return loaded
    }

    private func readMappings(_ pid: UInt32) -> [Mapping] {
        guard let file = fopen("/proc/\(pid)/maps", "r") else { return [] }
        defer { fclose(file) }
        var result: [Mapping] = []
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard parts.count >= 5 else { continue }
            let range = parts[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                  let offset = UInt64(parts[2], radix: 16) else { continue }
            let path = parts.count == 6 ? String(parts[5].drop(while: { $0 == " " })) : "[anon]"
            result.append(Mapping(start: start, end: end, offset: offset, path: path))
        }
        return result
    }
}

/// Function symbols of a 64-bit little-endian ELF file (.symtab, else .dynsym).
final class ELFSymbols {
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var names: [String] = []
    private var segments: [(offset: UInt64, size: UInt64, vaddr: UInt64)] = []

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 64, st.st_size < 1 << 31 else { return nil }
        let size = Int(st.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else { return nil }
        defer { munmap(base, size) }
        let data = UnsafeRawBufferPointer(start: base, count: size)
        guard data[0] == 0x7F, data[1] == 0x45, data[2] == 0x4C, data[3] == 0x46, data[4] == 2, data[5] == 1 else { return nil }
        func u16(_ o: Int) -> Int { Int(data.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { data.loadUnaligned(fromByteOffset: o, as: UInt32.self) }
        func u64(_ o: Int) -> UInt64 { data.loadUnaligned(fromByteOffset: o, as: UInt64.self) }
        func inBounds(_ o: Int, _ n: Int) -> Bool { o >= 0 && n >= 0 && o <= size - n }

        let phoff = Int(u64(0x20)), phentsize = u16(0x36), phnum = u16(0x38)
        for i in 0..<phnum {
            let p = phoff + i * phentsize
            guard inBounds(p, 56) else { break }
            if u32(p) == 1 { // PT_LOAD
                segments.append((u64(p + 8), u64(p + 32), u64(p + 16)))
            }
        }
        let shoff = Int(u64(0x28)), shentsize = u16(0x3A), shnum = u16(0x3C)
        var tables: [(type: UInt32, offset: Int, size: Int, entsize: Int, strtab: Int)] = []
        for i in 0..<shnum {
            let s = shoff + i * shentsize
            guard inBounds(s, 64) else { break }
            let type = u32(s + 4)
            guard type == 2 || type == 11 else { continue } // SHT_SYMTAB, SHT_DYNSYM
            let link = Int(u32(s + 40))
            let strHeader = shoff + link * shentsize
            guard inBounds(strHeader, 64) else { continue }
            tables.append((type, Int(u64(s + 24)), Int(u64(s + 32)), Int(u64(s + 56)), Int(u64(strHeader + 24))))
        }
        guard let table = tables.first(where: { $0.type == 2 }) ?? tables.first, table.entsize >= 24 else { return nil }
        var entries: [(UInt64, UInt64, String)] = []
        for i in 0..<(table.size / table.entsize) {
            let e = table.offset + i * table.entsize
            guard inBounds(e, 24) else { break }
            let info = data[e + 4]
            let value = u64(e + 8), symbolSize = u64(e + 16)
            guard info & 0xF == 2, value != 0 else { continue } // STT_FUNC
            let nameOffset = table.strtab + Int(u32(e))
            guard inBounds(nameOffset, 1) else { continue }
            var end = nameOffset
            while end < size && data[end] != 0 { end += 1 }
            entries.append((value, value + max(symbolSize, 1), String(decoding: data[nameOffset..<end], as: UTF8.self)))
        }
        entries.sort { $0.0 < $1.0 }
        starts = entries.map(\.0)
        ends = entries.map(\.1)
        names = entries.map(\.2)
    }

    /// The function containing the byte at `fileOffset` of the file, as "name+0xoff".
    func symbolize(fileOffset: UInt64) -> String? {
        guard let segment = segments.first(where: { $0.offset <= fileOffset && fileOffset < $0.offset + $0.size }) else {
            return nil
        }
        let vaddr = fileOffset - segment.offset + segment.vaddr
        guard let index = lastIndex(atOrBelow: vaddr, in: starts), vaddr < ends[index] else { return nil }
        let offset = vaddr - starts[index]
        return offset == 0 ? names[index] : "\(names[index])+0x\(String(offset, radix: 16))"
    }
}

/// The index of the last element <= value in a sorted array.
func lastIndex(atOrBelow value: UInt64, in sorted: [UInt64]) -> Int? {
    var low = 0, high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] <= value { low = mid + 1 } else { high = mid }
    }
    return low == 0 ? nil : low - 1
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
