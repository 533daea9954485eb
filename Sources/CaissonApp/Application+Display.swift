import CaissonCore
import CaissonStore
import Foundation

/// What the operator reads never names Caisson's internal pin tags (issue 11 item 7): the update's
/// step lines (and a journal entry shown by the console) name an image by its reference and short id.
extension Application {
    /// `step` with every `caisson-pin/SERVICE:HEX` replaced by `REFERENCE (short id)`; the pin's
    /// own creation (`tag ID as caisson-pin/...`) reads "keep image REFERENCE (short id) for the way back".
    public func operatorText(_ step: String) -> String {
        guard step.contains("caisson-pin/") else { return step }
        let words = step.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if words.count == 4, words[0] == "tag", words[2] == "as", let name = pinnedName(words[3]) {
            return name.hasPrefix("image (") ? "keep image \(words[1]) for the way back" : "keep image \(name) for the way back"
        }
        return words.map { pinnedName($0) ?? $0 }.joined(separator: " ")
    }

    /// `REFERENCE (short id)` for a pin tag, nil for any other word.
    func pinnedName(_ word: String) -> String? {
        guard word.hasPrefix("caisson-pin/") else { return nil }
        let rest = word.dropFirst("caisson-pin/".count)
        guard let colon = rest.lastIndex(of: ":") else { return "an earlier image" }
        let service = String(rest[..<colon])
        let hex = String(rest[rest.index(after: colon)...])
        guard !hex.isEmpty, hex.allSatisfy(\.isHexDigit) else { return "an earlier image" }
        let id = fullImageID(prefix: hex, service: service) ?? "sha256:" + hex
        return displayImage(nil, id: id, service: service)
    }

    /// The full image id the store knows for a pin's hex prefix (its service's releases).
    func fullImageID(prefix hex: String, service: String) -> String? {
        guard let s = try? store() else { return nil }
        let wanted = "sha256:" + hex
        if let st = try? s.serviceState(service) {
            for id in [st.activeImageID, st.previousKnownGoodImageID].compactMap({ $0 }) where id.hasPrefix(wanted) { return id }
        }
        return (try? s.candidateReleases(service: service))?.records.first { $0.imageID.hasPrefix(wanted) }?.imageID
    }
}
