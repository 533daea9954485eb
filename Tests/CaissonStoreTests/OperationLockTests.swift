import CaissonCore
@testable import CaissonStore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct OperationLockTests {
    @Test func secondAcquireIsBusyAndNamesTheHolder() throws {
        try withTempDir { dir in
            let lock = try OperationLock.acquire(stateDir: dir.stateDir, operation: "package load frontend",
                                                 pid: 1234, since: "2026-03-16T18:30:00Z")
            #expect(lock.isHeld)
            #expect(lock.path == dir.stateDir + "/lock")
            let error = expectCaissonError("lock.busy") {
                _ = try OperationLock.acquire(stateDir: dir.stateDir, operation: "package cleanup", since: "later")
            }
            #expect(error?.message.hasPrefix(
                "another Caisson operation is running: package load frontend (pid 1234, since 2026-03-16T18:30:00Z)") == true)
            #expect(OperationLock.currentHolder(stateDir: dir.stateDir)
                    == LockHolder(operation: "package load frontend", pid: 1234, since: "2026-03-16T18:30:00Z"))
            lock.release()
            lock.release()  // idempotent
            #expect(!lock.isHeld)
            #expect(OperationLock.currentHolder(stateDir: dir.stateDir) == nil)  // description cleared
            let again = try OperationLock.acquire(stateDir: dir.stateDir, operation: "package cleanup", since: "later")
            #expect(again.holder.operation == "package cleanup")
            #expect(again.holder.pid == getpid())
        }
    }

    @Test func deinitReleases() throws {
        try withTempDir { dir in
            do {
                let lock = try OperationLock.acquire(stateDir: dir.stateDir, operation: "a", since: "t")
                #expect(lock.isHeld)
            }
            let next = try OperationLock.acquire(stateDir: dir.stateDir, operation: "b", since: "t")
            #expect(next.isHeld)
        }
    }

    @Test func createsTheStateDirectory0700() throws {
        try withTempDir { dir in
            let lock = try OperationLock.acquire(stateDir: dir.stateDir, operation: "a", since: "t")
            defer { lock.release() }
            let attributes = try FileManager.default.attributesOfItem(atPath: dir.stateDir)
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
        }
    }

    @Test func lockDescriptorIsCloseOnExec() throws {
        try withTempDir { dir in
            let lock = try OperationLock.acquire(stateDir: dir.stateDir, operation: "a", since: "t")
            defer { lock.release() }
            let flags = lock.descriptorFlags
            #expect(flags >= 0 && flags & FD_CLOEXEC != 0)
        }
    }

    @Test func stateDirThatIsAFileIsLockFailed() throws {
        try withTempDir { dir in
            let file = dir.path + "/f"
            #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
            expectCaissonError("lock.failed") { _ = try OperationLock.acquire(stateDir: file, operation: "a", since: "t") }
        }
    }

    /// A holder that is SIGKILLed never leaves a permanent block: the kernel drops its flock.
    @Test(.enabled(if: Python.available)) func lockOfAKilledProcessIsReleased() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            let child = try Python.start("""
                import fcntl, json, os, sys
                fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"operation": "package load frontend", "pid": os.getpid(),
                                         "since": "2026-03-16T18:30:00Z"}).encode())
                print("locked", flush=True)
                sys.stdin.read()
                """, [dir.stateDir + "/lock"])
            defer { child.killHard() }
            #expect(child.readLine() == "locked", "child failed: \(child.stderrText)")
            let error = expectCaissonError("lock.busy") {
                _ = try OperationLock.acquire(stateDir: dir.stateDir, operation: "package cleanup", since: "t")
            }
            #expect(error?.message.contains("package load frontend (pid \(child.pid), since 2026-03-16T18:30:00Z)") == true)

            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            #expect(child.process.terminationReason == .uncaughtSignal)
            let lock = try OperationLock.acquire(stateDir: dir.stateDir, operation: "package cleanup", since: "t")
            #expect(lock.isHeld)
            #expect(OperationLock.currentHolder(stateDir: dir.stateDir)?.operation == "package cleanup")
        }
    }

    @Test func busyWithoutADescriptionYetStillSaysBusy() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            let fd = open(dir.stateDir + "/lock", O_RDWR | O_CREAT, 0o600)
            #expect(fd >= 0)
            defer { close(fd) }
            #expect(flock(fd, LOCK_EX) == 0)
            let error = expectCaissonError("lock.busy") {
                _ = try OperationLock.acquire(stateDir: dir.stateDir, operation: "x", since: "t")
            }
            #expect(error?.message.contains("not written yet") == true)
        }
    }
}
