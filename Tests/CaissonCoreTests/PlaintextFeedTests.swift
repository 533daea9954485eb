@testable import CaissonCore
import Foundation
import Testing

/// One decryption for validation and the upload (issue 15): validation's authenticated
/// plaintext of image.tar.age goes through a bounded `PlaintextFeed` to the upload, which sees a
/// clean end only when the final chunk authenticated.
@Suite("PlaintextFeed: validation's plaintext for the upload")
struct PlaintextFeedTests {
    /// Reads the whole feed on another thread; the bytes read and how it ended.
    final class Reader: @unchecked Sendable {
        var bytes: [UInt8] = []
        var error: PlaintextFeed.FeedError?
        let done = DispatchSemaphore(value: 0)
        init(_ feed: PlaintextFeed, readSize: Int = 7_777, stopAfter: Int = .max) {
            Thread { [self] in
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 16)
                defer { buffer.deallocate() }
                do throws(PlaintextFeed.FeedError) {
                    while bytes.count < stopAfter {
                        let n = try feed.read(into: buffer)
                        if n == 0 { break }
                        bytes += buffer[0..<n]
                    }
                } catch { self.error = error }
                if bytes.count >= stopAfter { feed.readerFinished() }
                done.signal()
            }.start()
        }
    }

    static func write(_ feed: PlaintextFeed, _ bytes: [UInt8], piece: Int) {
        var at = 0
        while at < bytes.count {
            let n = min(piece, bytes.count - at)
            bytes[at..<(at + n)].withUnsafeBytes { feed.write($0) }
            at += n
        }
    }

    @Test(arguments: [1_000, 65_536, 300_001])
    func everyByteArrivesInOrderThroughASmallRing(piece: Int) {
        let data = DockerSaveWriter.randomBytes(1_000_003, seed: 15)
        let feed = PlaintextFeed(capacity: 65_536)  // far smaller than the data: the ring wraps
        let reader = Reader(feed)
        Self.write(feed, data, piece: piece)
        #expect(!feed.isComplete)
        feed.close(complete: true)
        reader.done.wait()
        #expect(reader.error == nil)
        #expect(reader.bytes == data)
        #expect(feed.writtenCount == Int64(data.count))
    }

    @Test func aFeedClosedAsFailedNeverEndsCleanly() {
        let feed = PlaintextFeed(capacity: 65_536)
        let reader = Reader(feed)
        Self.write(feed, Array(repeating: 7, count: 200_000), piece: 50_000)
        feed.close(complete: false, reason: "chunk 3 does not authenticate")
        feed.close(complete: true)  // the first close counts
        reader.done.wait()
        #expect(reader.error == .failed("chunk 3 does not authenticate"))
        #expect(!feed.isComplete)
    }

    @Test func aReaderThatGoesAwayLetsTheProducerFinishAlone() {
        let feed = PlaintextFeed(capacity: 65_536)
        let reader = Reader(feed, stopAfter: 100_000)
        // 1 MB through a 64 KiB ring whose reader stops after 100 kB: the writes must not block.
        Self.write(feed, Array(repeating: 1, count: 1_000_000), piece: 65_536)
        feed.close(complete: true)
        reader.done.wait()
        #expect(reader.bytes.count >= 100_000 && reader.bytes.count < 1_000_000)
    }

    /// An encrypted package scanned with a feed: the feed carries exactly image.tar, complete
    /// only when the file authenticated to its end; a flipped bit or a cut leaves it failed,
    /// having carried only what authenticated before it.
    @Test func theScannerFeedsExactlyTheAuthenticatedPlaintext() throws {
        let layer = DockerSaveWriter.layer([("bin/big", DockerSaveWriter.randomBytes(400_000, seed: 151))])
        let image = DockerSaveWriter(layout: .legacy, layers: [layer], repoTags: ["example/app:1.0"]).build()
        let id = try AgeX25519Identity.generate(randomness: testRandomness(seed: 1515))
        var age: [UInt8] = []
        let enc = try AgeEncryptor(recipients: [id.recipient], randomness: testRandomness(seed: 1516)) { age += Array($0) }
        try enc.write(image)
        try enc.finish()
        let chunks = (image.count + 65535) / 65536
        let payloadStart = age.count - image.count - 16 * chunks
        func package(_ ageFile: [UInt8]) -> [UInt8] {
            ArchiveFixtures.tar { tar in
                tar.addFile("manifest.toml", ArchiveFixtures.manifest)
                tar.addFile("image.tar.age", ageFile)
            }
        }
        func scan(_ ageFile: [UInt8]) -> (PackageScan, Reader, PlaintextFeed) {
            let feed = PlaintextFeed(capacity: 100_000)
            let reader = Reader(feed)
            var scanner = PackageScanner()
            scanner.ageIdentities = [id]
            scanner.plaintextFeed = feed
            let result = scanner.scan(MemoryByteSource(package(ageFile), maxReadSize: 50_000))
            reader.done.wait()
            return (result, reader, feed)
        }
        let (good, goodReader, goodFeed) = scan(age)
        #expect(good.encryptedImage?.sha256 == SHA256.hash(age).hex)
        #expect(goodFeed.isComplete && goodReader.error == nil)
        #expect(goodReader.bytes == image)

        var flipped = age
        flipped[payloadStart + 2 * 65552 + 10] ^= 0x01  // in chunk 2
        let (bad, badReader, badFeed) = scan(flipped)
        #expect(bad.codes.contains("encryption.payload_invalid"))
        #expect(!badFeed.isComplete && badReader.error != nil)
        #expect(badReader.bytes.count <= 2 * 65536 && image.starts(with: badReader.bytes))

        let cut = Array(age[..<(payloadStart + 3 * 65552)])  // at a chunk boundary
        let (short, shortReader, shortFeed) = scan(cut)
        #expect(short.codes.contains("encryption.payload_invalid"))
        #expect(!shortFeed.isComplete && shortReader.error != nil)
        #expect(image.starts(with: shortReader.bytes))

        let (wrongKey, wrongReader, wrongFeed) = try {
            var other: [UInt8] = []
            let stranger = try AgeX25519Identity.generate(randomness: testRandomness(seed: 1517))
            let e = try AgeEncryptor(recipients: [stranger.recipient], randomness: testRandomness(seed: 1518)) { other += Array($0) }
            try e.write(image)
            try e.finish()
            return scan(other)
        }()
        #expect(wrongKey.codes.contains("encryption.no_identity"))
        #expect(!wrongFeed.isComplete && wrongReader.error != nil && wrongReader.bytes.isEmpty)
    }
}
