import Applets
@preconcurrency import Glibc

exit(bpfboxMain(CommandLine.arguments))
