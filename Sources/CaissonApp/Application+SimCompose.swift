import CaissonCore
import CaissonSimulator
import Foundation

/// `--host sim` provisioning from a compose file: the catalog service runs the `image:` its file
/// names, and the file's services with `network_mode: service:<it>` run beside it (they share its
/// network namespace). Read with a deliberately small scan of plain block YAML (`services:`, each
/// service's key, its `image:` and `network_mode:`): the real driver never scans YAML, it asks
/// `docker compose config`.
extension Application {
    struct SimComposeService: Equatable {
        var image: String?
        var networkMode: String?
    }

    static func simComposeServices(file: String) -> [String: SimComposeService] {
        guard let data = FileManager.default.contents(atPath: file) else { return [:] }
        var out: [String: SimComposeService] = [:]
        var inServices = false
        var serviceIndent: Int?
        var current: String?
        for raw in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            let indent = line.prefix { $0 == " " }.count
            if indent == 0 { inServices = text == "services:"; current = nil; serviceIndent = nil; continue }
            guard inServices else { continue }
            if serviceIndent == nil { serviceIndent = indent }
            if indent == serviceIndent {
                let key = text.hasSuffix(":") ? String(text.dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) : ""
                current = key.isEmpty ? nil : key
                if let current { out[current] = SimComposeService() }
                continue
            }
            guard let name = current else { continue }
            for key in ["image:", "network_mode:"] where text.hasPrefix(key) {
                let value = text.dropFirst(key.count).trimmingCharacters(in: .whitespaces)
                    .trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                if key == "image:" { out[name]?.image = value.isEmpty ? nil : value } else { out[name]?.networkMode = value.isEmpty ? nil : value }
            }
        }
        return out
    }

    /// Runs the file's services sharing `target`'s network namespace (sorted by name).
    static func provisionSimComposeDependents(_ h: SimulatedHost, of target: ComposeTarget) throws {
        let services = simComposeServices(file: target.file)
        for name in services.keys.sorted() where name != target.service {
            guard let svc = services[name], svc.networkMode == "service:" + target.service else { continue }
            let ref = svc.image ?? "caisson-sim/\(name):current"
            let id = SimulatedHost.fakeImageID(ref)
            do {
                if h.image(id) == nil {
                    _ = try h.addImage(id: id, tags: [ref], config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true))
                }
                _ = try h.provisionCompose(target: ComposeTarget(project: target.project, file: target.file, service: name),
                                           imageReference: ref, networkMode: svc.networkMode)
            } catch {
                throw CaissonError("sim.provision_failed", "could not provision compose service \(name) on the simulated host: \(error.message)")
            }
        }
    }
}
