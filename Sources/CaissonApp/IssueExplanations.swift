/// Plain words for issue codes: what a code means and what to do, for a person who is not the
/// package's author (the console shows them; the code and the technical message stay beside).
public enum IssueExplanations {
    public struct Explanation: Sendable, Equatable {
        public var meaning: String
        public var action: String
    }

    static let table: [String: Explanation] = [
        "package.invalid_extension": .init(meaning: "This file is not an update package (its name must end in .edgepkg).", action: "Choose the .edgepkg file you were given."),
        "package.not_found": .init(meaning: "The package file is no longer there.", action: "Check that the USB stick is still plugged in, then look again."),
        "package.not_a_file": .init(meaning: "This is a folder or a special file, not a package.", action: "Choose the .edgepkg file you were given."),
        "package.read_failed": .init(meaning: "The package could not be read to the end.", action: "The USB stick may have been pulled out or be damaged. Plug it in again, or copy the file again."),
        "package.unknown_service": .init(meaning: "The package is for a service this device does not have.", action: "Ask for the package made for this device."),
        "package.service_revision_mismatch": .init(meaning: "The package was made for another set-up of this service.", action: "Ask for a package made for this device's configuration."),
        "package.platform_mismatch": .init(meaning: "The package was made for another kind of computer.", action: "Ask for the package built for this device's platform."),
        "package.updater_too_old": .init(meaning: "The package needs a newer Caisson than this device has.", action: "Update Caisson first, then this package."),
        "package.downgrade_refused": .init(meaning: "The package is older than what is installed.", action: "Nothing to do, unless someone asked you to go back on purpose (command line: --allow-downgrade)."),
        "package.already_applied": .init(meaning: "This version is already installed.", action: "Nothing to do. The service already runs this version."),
        "package.stale": .init(meaning: "The package was made before one already installed.", action: "Ask for the newest package."),
        "package.changed": .init(meaning: "The package file changed while it was being checked.", action: "Leave the USB stick in place and try again."),
        "package.checksum_mismatch": .init(meaning: "The package's contents do not match its own checksum: it is damaged or was altered.", action: "Copy the package again from the original, then retry."),
        "package.size_mismatch": .init(meaning: "The package's contents are not the size it says: it is damaged or was altered.", action: "Copy the package again from the original, then retry."),
        "signature.missing": .init(meaning: "This device only accepts signed packages, and this one is not signed.", action: "Ask for a signed package."),
        "signature.invalid": .init(meaning: "The package's signature does not match its contents: it was altered or damaged.", action: "Do not install it. Ask for a fresh copy from the publisher."),
        "signature.untrusted_key": .init(meaning: "The package is signed by someone this device does not trust.", action: "Ask for a package signed with this device's release key."),
        "signature.malformed": .init(meaning: "The package's signature file is unreadable.", action: "Ask for a fresh copy of the package."),
        "signature.unbound_payload": .init(meaning: "The signature does not cover the software inside the package.", action: "Ask for a package built and signed with Caisson."),
        "staging.insufficient_space": .init(meaning: "The device does not have enough free disk space to take the package.", action: "Free some space (remove old packages), then try again."),
        "staging.copy_failed": .init(meaning: "The package could not be copied onto the device.", action: "Check the free space and try again."),
        "docker.insufficient_space": .init(meaning: "The device does not have enough free space to install the new software.", action: "Free some space (remove old packages and versions), then try again."),
        "docker.unreachable": .init(meaning: "The software that runs the services is not answering.", action: "Restart the device or call support."),
        "docker.load_failed": .init(meaning: "The new software could not be installed; the service was not touched.", action: "Try again; if it fails again, call support with the details below."),
        "health_check.failed": .init(meaning: "The new version did not start properly.", action: "Nothing to do now: the previous version was put back. Report the package to its publisher."),
        "health_check.timed_out": .init(meaning: "The new version did not become ready in time.", action: "Nothing to do now: the previous version was put back. Report the package to its publisher."),
        "lock.busy": .init(meaning: "Another update is running on this device.", action: "Wait for it to finish, then try again."),
        "rollback.no_previous_release": .init(meaning: "There is no earlier version to go back to.", action: "Nothing can be rolled back for this service."),
        "rollback.image_missing": .init(meaning: "The earlier version is no longer stored on this device.", action: "Install that version again from its package instead."),
        "image.reference_outside_service": .init(meaning: "The package would rename software that belongs to another service or is outside this service.", action: "Do not install it. Ask the publisher for the package made for this service."),
        "image.reference_reserved": .init(meaning: "The package would overwrite a name Caisson keeps to go back to earlier versions.", action: "Do not install it. Report the package to its publisher."),
        "image.reference_in_use": .init(meaning: "The package would change the software another service runs.", action: "Do not install it. Ask the publisher for the package made for this service."),
        "image.reserved_label": .init(meaning: "The package's software pretends to belong to another service or to Caisson.", action: "Do not install it. Report the package to its publisher."),
        "update.network_dependents": .init(meaning: "Other containers share this service's network and would lose it in the update.", action: "Nothing was changed. To update anyway and recreate them with it, use the command line with --recreate-dependents."),
        "console.path_refused": .init(meaning: "That file is not on a USB stick or in the uploads.", action: "Choose a package from the list."),
    ]

    /// What an issue code means and what to do, in plain words.
    public static func explain(_ code: String) -> Explanation {
        if let e = table[code] { return e }
        let area = code.split(separator: ".").first.map(String.init) ?? code
        switch area {
        case "archive", "manifest": return .init(meaning: "The package file is not built correctly, or is damaged.", action: "Ask the publisher for a correct package. Nothing was changed.")
        case "image": return .init(meaning: "The software inside the package is damaged, or is not what the package says.", action: "Do not install it. Ask the publisher for a correct package. Nothing was changed.")
        case "signature": return .init(meaning: "The package's signature is not acceptable.", action: "Ask for a package signed with this device's release key.")
        case "rollback": return .init(meaning: "Going back to the previous version did not work.", action: "The service needs a technician. Call support with the details below.")
        case "docker", "compose": return .init(meaning: "Changing the service did not work.", action: "Caisson put the previous version back if it could. Call support with the details below.")
        default: return .init(meaning: "Something went wrong.", action: "Call support with the details below.")
        }
    }
}
