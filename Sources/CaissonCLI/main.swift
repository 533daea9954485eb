import CaissonApp
import CaissonConsole
#if canImport(Glibc)
import Glibc
#endif

exit(CaissonCLI.main(Array(CommandLine.arguments.dropFirst()), frontEnds: [ConsoleCommand.frontEnd]))
