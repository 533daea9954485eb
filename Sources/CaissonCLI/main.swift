import CaissonApp
#if canImport(Glibc)
import Glibc
#endif

exit(CaissonCLI.main(Array(CommandLine.arguments.dropFirst())))
