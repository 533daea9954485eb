import CaissonApp
import CaissonCore
import CaissonHTTP
import Foundation

/// The upload form as a browser sends it without JavaScript (`multipart/form-data`): the same
/// streamed, hashed, disk-checked `Application.receiveUpload` as the script's upload, answered
/// with a page instead of JSON. The form's CSRF token comes before the file in the body and is
/// checked before any of the file is kept.
extension Console {
    func formUpload(_ ctx: Context, boundary: String) -> HTTPServerResponse {
        let request = ctx.request
        let session = ctx.session!
        func refused(_ status: Int, _ text: String) -> HTTPServerResponse {
            Pages.message(self, ctx: ctx, status: status, title: "The upload was refused", text: text)
        }
        guard let length = request.bodyFraming.declaredLength, !request.bodyFraming.isChunked else {
            return refused(411, "The browser did not say how large the package is. Try again, or use another browser.")
        }
        guard Int64(clamping: length) <= config.maxUploadBytes else {
            return refused(413, "The package is larger than this console accepts (\(Format.bytes(config.maxUploadBytes))).")
        }
        struct CSRFRefused: Error {}
        let app = Application(options: config.options)
        let reader = MultipartStream(boundary: boundary)
        var csrf: String?
        var fileName: String?
        do {
            let stored = try app.receiveUpload(maxLength: Int64(length), exact: false) { sink in try withoutActuallyEscaping(sink) { sink in
                defer { reader.onFileData = { _ in } }
                reader.onField = { name, value in if name == "csrf" { csrf = value } }
                reader.onFileStart = { head in
                    guard let c = csrf, ConsoleAuth.equal(c, session.csrf) else { throw CSRFRefused() }
                    guard fileName == nil else { throw MultipartStream.malformed("more than one file") }
                    guard let raw = head.filename, !raw.isEmpty else {
                        throw CaissonError("upload.no_file", "no package file was chosen")
                    }
                    let name = MediaLibrary.uploadName(raw)
                    try Application.checkUploadName(name)
                    fileName = name
                }
                reader.onFileData = { try sink($0) }
                try request.readBody(limit: length) { try reader.feed($0) }
                try reader.finish()
                guard let fileName else { throw CaissonError("upload.no_file", "no package file was chosen") }
                return fileName
            } }
            try? app.auditFrontEndAction("\(ctx.actor) uploaded \(Console.fileName(stored.path)) (\(stored.size) bytes, sha256 \(stored.sha256)) with the form")
            return Pages.uploaded(self, ctx: ctx, id: MediaLibrary.id(stored.path), name: Console.fileName(stored.path),
                                  size: stored.size, sha256: stored.sha256)
        } catch is CSRFRefused {
            return Pages.plain(403, "Forbidden: this form is out of date or did not come from the console. Reload the page and try again.")
        } catch let e as CaissonError {
            switch e.code {
            case "staging.insufficient_space":
                return refused(507, "There is not enough free space on this device for this package. Nothing was kept.")
            case "package.invalid_extension":
                return refused(415, "That file is not an update package (its name must end in .edgepkg). Nothing was kept.")
            case "upload.no_file":
                return refused(400, "Choose a package file first, then press Upload.")
            default:
                return refused(400, "The upload did not arrive whole (\(e.message)). Nothing was kept; try again.")
            }
        } catch {
            return refused(400, "The upload was cut off. Nothing was kept; try again.")
        }
    }
}

extension Pages {
    /// After an upload with the form: what arrived, and the button to check it.
    static func uploaded(_ console: Console, ctx: Console.Context, id: String, name: String, size: Int64, sha256: String) -> HTTPServerResponse {
        html(201, title: "Package uploaded", ctx: ctx, console: console, body: """
        <h1>Package uploaded</h1>
        <section class="card" aria-labelledby="up"><h2 id="up">\(e(name))</h2>
        <p id="upload-result">The package arrived whole (\(e(Format.bytes(size)))). Check it before anything changes on this device.</p>
        <details><summary>Technical details</summary><p>SHA-256 <code>\(e(sha256))</code></p></details>
        <div class="actions"><form method="post" action="/check">\(csrfField(ctx))<input type="hidden" name="package" value="\(e(id))">\
        <button type="submit" class="primary">Check this package</button></form>\
        <a class="button" href="/">Back to this device</a></div></section>
        """)
    }
}
