import CaissonCore
import Foundation

/// Retention and thin packages (issue 16): a thin package built from the last exported inventory
/// may leave out any layer chain that inventory lists. `package cleanup` therefore removes an
/// image only when every listed chain it holds stays on the device in another image.
extension Application {
    /// Of `candidates` (image ids cleanup would remove, in its order), those to keep. Without an
    /// exported inventory, nothing. An inventory or host that cannot be read keeps them all (and
    /// says so in `problems`).
    func inventoryProtectedImages(candidates: [String], host: any ContainerHost, problems: inout [Issue]) -> Set<String> {
        guard !candidates.isEmpty, FileManager.default.fileExists(atPath: lastInventoryPath) else { return [] }
        let listed: Set<String>
        do {
            guard let data = FileManager.default.contents(atPath: lastInventoryPath) else {
                throw CaissonError("inventory.read_failed", "cannot read \(lastInventoryPath)")
            }
            listed = try DeviceInventory.decode(Array(data), path: lastInventoryPath).heldChainIDs
        } catch {
            problems.append(Issue("cleanup.inventory_unreadable", "the last exported inventory cannot be read (\(error.message)); the images it may list were kept"))
            return Set(candidates)
        }
        let images: [ImageInfo]
        do { images = try host.listImages() } catch {
            problems.append(Issue("cleanup.inventory_check_failed", "could not list images to keep the layers of the last exported inventory (\(error.message)); those images were kept"))
            return Set(candidates)
        }
        return Self.inventoryProtected(candidates: candidates, images: images, listed: listed)
    }

    /// Pure: removing the candidates in order, keep each whose listed chains no other image that
    /// stays would still hold.
    static func inventoryProtected(candidates: [String], images: [ImageInfo], listed: Set<String>) -> Set<String> {
        var chains: [String: [String]] = [:]
        for i in images { chains[i.id] = LayerChain.chainIDs(i.layers) }
        var removed = Set<String>()
        var kept = Set<String>()
        for c in candidates where !removed.contains(c) && !kept.contains(c) {
            let needed = (chains[c] ?? []).filter(listed.contains)
            let stays = images.filter { $0.id != c && !removed.contains($0.id) }
            let held = Set(stays.flatMap { chains[$0.id] ?? [] })
            if needed.allSatisfy(held.contains) { removed.insert(c) } else { kept.insert(c) }
        }
        return kept
    }
}
