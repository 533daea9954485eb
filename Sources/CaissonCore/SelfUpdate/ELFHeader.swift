/// What the first bytes of an executable say about the machine it runs on: the ELF identification
/// and `e_machine`, read from the file itself (a manifest's `platform` is only a claim). Only
/// what a self-update needs: class, byte order, OS ABI, type and machine.
public struct ELFHeader: Sendable, Equatable, Codable {
    public enum Class: String, Sendable, Codable { case elf32, elf64 }
    public enum ByteOrder: String, Sendable, Codable { case little, big }

    public var elfClass: Class
    public var byteOrder: ByteOrder
    /// `e_ident[EI_OSABI]`: 0 (System V) or 3 (GNU/Linux) for a Linux program.
    public var osABI: UInt8
    /// `e_type`: 2 (ET_EXEC) or 3 (ET_DYN, a position-independent executable).
    public var type: UInt16
    /// `e_machine`: 62 x86-64, 183 AArch64, 40 ARM, 3 i386, 243 RISC-V, 21 PowerPC64, 22 S/390.
    public var machine: UInt16

    /// Bytes needed to read a header (the 64-bit ELF header is 64 bytes; we read up to e_machine).
    public static let prefixLength = 20

    public enum Problem: Equatable, Sendable {
        case tooShort
        case notELF
        case badIdentification(String)
        case notExecutable(UInt16)
    }

    /// Parses the start of a file. Throws nothing: a problem says why it is not a usable executable.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<ELFHeader, ProblemError> {
        let b = Array(bytes.prefix(prefixLength))
        guard b.count >= 4, b[0] == 0x7F, b[1] == 0x45, b[2] == 0x4C, b[3] == 0x46 else {
            return .failure(ProblemError(b.count < 4 ? .tooShort : .notELF))
        }
        guard b.count >= prefixLength else { return .failure(ProblemError(.tooShort)) }
        let cls: Class
        switch b[4] {
        case 1: cls = .elf32
        case 2: cls = .elf64
        default: return .failure(ProblemError(.badIdentification("unknown ELF class \(b[4])")))
        }
        let order: ByteOrder
        switch b[5] {
        case 1: order = .little
        case 2: order = .big
        default: return .failure(ProblemError(.badIdentification("unknown ELF byte order \(b[5])")))
        }
        guard b[6] == 1 else { return .failure(ProblemError(.badIdentification("unknown ELF version \(b[6])"))) }
        func half(_ at: Int) -> UInt16 {
            order == .little ? UInt16(b[at]) | UInt16(b[at + 1]) << 8 : UInt16(b[at]) << 8 | UInt16(b[at + 1])
        }
        let type = half(16)
        guard type == 2 || type == 3 else { return .failure(ProblemError(.notExecutable(type))) }
        return .success(ELFHeader(elfClass: cls, byteOrder: order, osABI: b[7], type: type, machine: half(18)))
    }

    public struct ProblemError: Error, Equatable, Sendable {
        public var problem: Problem
        init(_ problem: Problem) { self.problem = problem }

        public var message: String {
            switch problem {
            case .tooShort: return "it is too short to be an executable"
            case .notELF: return "it is not an ELF executable (no ELF magic number)"
            case .badIdentification(let why): return "its ELF header is damaged (\(why))"
            case .notExecutable(let t): return "it is an ELF file but not an executable (e_type \(t))"
            }
        }
    }

    /// The Docker-style platform this header describes (`linux/amd64`, `linux/arm64`, `linux/arm/v7`,
    /// …), or nil for a machine Caisson does not know. ARM 32-bit is reported as v7 (what the
    /// header alone allows; the finer variant lives in attribute sections).
    public var platform: String? {
        guard osABI == 0 || osABI == 3 else { return nil }
        switch (machine, elfClass, byteOrder) {
        case (62, .elf64, .little): return "linux/amd64"
        case (183, .elf64, .little): return "linux/arm64"
        case (40, .elf32, .little): return "linux/arm/v7"
        case (3, .elf32, .little): return "linux/386"
        case (243, .elf64, .little): return "linux/riscv64"
        case (21, .elf64, .little): return "linux/ppc64le"
        case (22, .elf64, .big): return "linux/s390x"
        default: return nil
        }
    }

    /// A description for messages: `ELF 64-bit LSB, machine 62 (x86-64)`.
    public var summary: String {
        let bits = elfClass == .elf64 ? "64-bit" : "32-bit"
        let order = byteOrder == .little ? "LSB" : "MSB"
        return "ELF \(bits) \(order), machine \(machine) (\(Self.machineName(machine)))"
    }

    public static func machineName(_ m: UInt16) -> String {
        switch m {
        case 3: return "i386"
        case 8: return "MIPS"
        case 20: return "PowerPC"
        case 21: return "PowerPC64"
        case 22: return "S/390"
        case 40: return "ARM"
        case 62: return "x86-64"
        case 183: return "AArch64"
        case 243: return "RISC-V"
        case 258: return "LoongArch"
        default: return "unknown"
        }
    }

    /// The platform of the machine `uname -m` names (`x86_64` → `linux/amd64`), nil if unknown.
    public static func platform(unameMachine m: String) -> String? {
        switch m {
        case "x86_64", "amd64": return "linux/amd64"
        case "aarch64", "arm64": return "linux/arm64"
        case "armv7l", "armv7", "armv8l": return "linux/arm/v7"
        case "i386", "i486", "i586", "i686": return "linux/386"
        case "riscv64": return "linux/riscv64"
        case "ppc64le": return "linux/ppc64le"
        case "s390x": return "linux/s390x"
        default: return nil
        }
    }
}
