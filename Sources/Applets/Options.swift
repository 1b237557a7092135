/// A small command-line parser with bcc's conventions: short flags that combine (`-xT`),
/// short options with a value (`-u 0`, `-u0`), long options (`--uid 0`, `--uid=0`), `--`.
public struct OptionSpec: Sendable {
    public let short: Character?
    public let long: String
    /// Name of the value (`UID`); nil for a flag.
    public let value: String?
    public let help: String
    public let hidden: Bool
    /// The value may be left out (`--unique` or `--unique=cgroup`); it is then "".
    public let optionalValue: Bool
    /// The values the option takes, when they are a fixed list (offered by the shell completions).
    public let choices: [String]

    public init(_ short: Character?, _ long: String, value: String? = nil, help: String, hidden: Bool = false,
                optionalValue: Bool = false, choices: [String] = []) {
        self.short = short
        self.long = long
        self.value = value
        self.help = help
        self.hidden = hidden
        self.optionalValue = optionalValue
        self.choices = choices
    }
}

public struct CommandSpec: Sendable {
    public let name: String
    public let summary: String
    public let positionals: [(name: String, help: String)]
    public let options: [OptionSpec]
    public let examples: [(command: String, meaning: String)]
    /// Option names after which every remaining word is a positional (`--exec CMD ARGS...`).
    public let stopAfter: Set<String>
    /// Usage lines written by hand, for an applet with subcommands; else generated from the options.
    public let synopsis: [String]
    /// The words the first positional takes, when they are a fixed list (filter's subcommands).
    public let positionalChoices: [String]

    public init(name: String, summary: String, synopsis: [String] = [], positionals: [(name: String, help: String)] = [],
                positionalChoices: [String] = [], options: [OptionSpec], examples: [(command: String, meaning: String)] = [],
                stopAfter: Set<String> = []) {
        self.name = name
        self.summary = summary
        self.synopsis = synopsis
        self.positionals = positionals
        self.positionalChoices = positionalChoices
        self.options = [OptionSpec("h", "help", help: "show this help message and exit")] + options
        self.examples = examples
        self.stopAfter = stopAfter
    }

    /// One line: `usage: execsnoop [-h] [-T] [-u UID] ...`.
    public var usageLine: String {
        if !synopsis.isEmpty {
            return "usage: " + synopsis.map { name + " " + $0 }.joined(separator: "\n       ")
        }
        var parts = ["usage: \(name)"]
        for option in options where !option.hidden {
            let flag = option.short.map { "-\($0)" } ?? "--\(option.long)"
            if option.optionalValue, let value = option.value {
                parts.append("[\(flag)[=\(value)]]")
            } else {
                parts.append(option.value.map { "[\(flag) \($0)]" } ?? "[\(flag)]")
            }
        }
        for positional in positionals { parts.append("[\(positional.name)]") }
        return wrap(parts, indent: String(repeating: " ", count: 7 + name.count))
    }

    /// The full help text (for -h and the man page's OPTIONS).
    public var helpText: String {
        var text = usageLine + "\n\n" + summary + "\n"
        if !positionals.isEmpty {
            text += "\npositional arguments:\n"
            for p in positionals { text += formatHelpRow("  \(p.name)", p.help) }
        }
        text += "\noptions:\n"
        for option in options where !option.hidden {
            var names = option.short.map { "-\($0), " } ?? ""
            names += "--\(option.long)"
            if let value = option.value { names += option.optionalValue ? "[=\(value)]" : " \(value)" }
            text += formatHelpRow("  " + names, option.help)
        }
        if !examples.isEmpty {
            text += "\nexamples:\n"
            let width = examples.map(\.command.count).max() ?? 0
            for example in examples {
                text += "    " + example.command.padding(width) + "  # " + example.meaning + "\n"
            }
        }
        return text
    }

    private func formatHelpRow(_ left: String, _ help: String) -> String {
        let column = 26
        let indent = String(repeating: " ", count: column)
        var lines: [String] = []
        var line = ""
        for word in help.split(separator: " ") {
            if !line.isEmpty && column + line.count + 1 + word.count > 79 {
                lines.append(line)
                line = String(word)
            } else {
                line += line.isEmpty ? String(word) : " " + word
            }
        }
        lines.append(line)
        let first = left.count < column - 1 ? left.padding(column) + lines[0] : left + "\n" + indent + lines[0]
        return ([first] + lines.dropFirst().map { indent + $0 }).joined(separator: "\n") + "\n"
    }

    private func wrap(_ parts: [String], indent: String) -> String {
        var lines: [String] = []
        var line = ""
        for part in parts {
            if !line.isEmpty && line.count + 1 + part.count > 79 {
                lines.append(line)
                line = indent + part
            } else {
                line += line.isEmpty ? part : " " + part
            }
        }
        lines.append(line)
        return lines.joined(separator: "\n")
    }

    func option(long: String) -> OptionSpec? { options.first { $0.long == long } }
    func option(short: Character) -> OptionSpec? { options.first { $0.short == short } }
}

/// A usage error: exit status 2 with the applet's usage line.
public struct UsageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct ParsedOptions: Sendable {
    /// Values by long name, in command-line order; flags hold "" per occurrence.
    public var values: [String: [String]] = [:]
    public var positionals: [String] = []
    /// How many positionals came before a stop option (`--run CMD ...`), when one was given.
    public var positionalsBeforeStop: Int?

    public func has(_ long: String) -> Bool { values[long] != nil }
    public func value(_ long: String) -> String? { values[long]?.last }
    public func all(_ long: String) -> [String] { values[long] ?? [] }
}

extension CommandSpec {
    /// Parses `arguments` (without the applet name).
    public func parse(_ arguments: [String]) throws(UsageError) -> ParsedOptions {
        var result = ParsedOptions()
        var index = 0
        func takeValue(_ option: OptionSpec, inline: String?) throws(UsageError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else {
                throw UsageError("option \(display(option)) needs a value (\(option.value ?? "VALUE"))")
            }
            return arguments[index]
        }
        while index < arguments.count {
            let word = arguments[index]
            if word == "--" {
                result.positionals += arguments[(index + 1)...]
                break
            } else if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let name: String, inline: String?
                if let eq = body.firstIndex(of: "=") {
                    name = String(body[..<eq])
                    inline = String(body[body.index(after: eq)...])
                } else {
                    name = String(body)
                    inline = nil
                }
                guard let option = option(long: name) else { throw UsageError("unrecognized option '--\(name)'") }
                if option.optionalValue {
                    result.values[name, default: []].append(inline ?? "")
                } else if option.value == nil {
                    if inline != nil { throw UsageError("option --\(name) takes no value") }
                    result.values[name, default: []].append("")
                } else {
                    result.values[name, default: []].append(try takeValue(option, inline: inline))
                }
                if stopAfter.contains(name) {
                    result.positionalsBeforeStop = result.positionals.count
                    result.positionals += arguments[(index + 1)...]
                    break
                }
            } else if word.hasPrefix("-") && word.count > 1 && !isNegativeNumber(word) {
                var chars = Array(word.dropFirst())
                while !chars.isEmpty {
                    let c = chars.removeFirst()
                    guard let option = option(short: c) else { throw UsageError("unrecognized option '-\(c)'") }
                    if option.value == nil {
                        result.values[option.long, default: []].append("")
                    } else {
                        let inline = chars.isEmpty ? nil : String(chars)
                        result.values[option.long, default: []].append(try takeValue(option, inline: inline))
                        chars = []
                    }
                }
            } else {
                result.positionals.append(word)
            }
            index += 1
        }
        return result
    }

    private func display(_ option: OptionSpec) -> String {
        option.short.map { "-\($0)/--\(option.long)" } ?? "--\(option.long)"
    }

    private func isNegativeNumber(_ word: String) -> Bool {
        word.count > 1 && word.dropFirst().allSatisfy(\.isNumber) && !options.contains { $0.short?.isNumber == true }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
    func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// Value parsers shared by the applets; each throws a UsageError that names the option.
public enum ParseValue {
    public static func uint32(_ text: String, option: String) throws(UsageError) -> UInt32 {
        guard let value = UInt32(text) else {
            throw UsageError("\(option): '\(text)' is not a number from 0 to \(UInt32.max)")
        }
        return value
    }

    public static func positiveInt(_ text: String, option: String, max: Int = Int(Int32.max)) throws(UsageError) -> Int {
        guard let value = Int(text), value > 0, value <= max else {
            throw UsageError("\(option): '\(text)' is not a whole number from 1 to \(max)")
        }
        return value
    }

    public static func pid(_ text: String, option: String) throws(UsageError) -> UInt32 {
        guard let value = Int32(text), value > 0 else {
            throw UsageError("\(option): '\(text)' is not a process id (a positive number)")
        }
        return UInt32(value)
    }

    /// The `interval` and `count` positionals of the summary applets (interval defaults to 1 s).
    public static func intervalAndCount(_ positionals: [String]) throws(UsageError) -> (interval: Double, count: Int?) {
        guard positionals.count <= 2 else { throw UsageError("unexpected argument '\(positionals[2])'") }
        var interval = 1.0
        if let text = positionals.first {
            guard let value = Double(text), value >= 0.1, value <= 86400 else {
                throw UsageError("interval: '\(text)' is not a number of seconds from 0.1 to 86400")
            }
            interval = value
        }
        let count = positionals.count == 2 ? try positiveInt(positionals[1], option: "count") : nil
        return (interval, count)
    }

    /// -4 / -6: the address family to keep (AF_INET, AF_INET6), 0 for both.
    public static func family(_ parsed: ParsedOptions) throws(UsageError) -> UInt16 {
        if parsed.has("ipv4") && parsed.has("ipv6") { throw UsageError("-4 and -6 exclude each other (give neither for both)") }
        return parsed.has("ipv4") ? 2 : parsed.has("ipv6") ? 10 : 0
    }

    public static func regex(_ text: String, option: String) throws(UsageError) -> Regex<AnyRegexOutput> {
        do {
            return try Regex(text)
        } catch {
            throw UsageError("\(option): '\(text)' is not a valid regular expression")
        }
    }
}
