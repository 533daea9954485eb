#!/usr/bin/env python3
"""Fuzz/make-corpus.py OUTDIR [REPO]: seed corpora for the libFuzzer harnesses (scripts/fuzz).

OUTDIR/toml      fixtures/manifests/*.toml, fixtures/catalogs/*.toml and a few TOML 1.0 shapes
OUTDIR/image     small `docker save` archives: legacy + OCI layout, ustar/pax/gnu, links
OUTDIR/scanner   small .edgepkg packages around those images (signature entries, odd headers)
OUTDIR/minisign  minisign public keys, signatures (prehashed, legacy) and a secret key
Everything is generated from fixed inputs: the same files every run.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

out = sys.argv[1]
repo = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def put(kind, name, data):
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar_bytes(members, fmt=tarfile.USTAR_FORMAT):
    """members: (name, bytes | None for a directory | ('symlink', target))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def dumps(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


# ---- TOML
for sub in ("manifests", "catalogs"):
    d = os.path.join(repo, "fixtures", sub)
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.endswith(".toml"):
                with open(os.path.join(d, n), "rb") as f:
                    put("toml", sub + "-" + n, f.read())
shapes = {
    "arrays.toml": b'a = [1, 2.5, "x", [true, false], {b = 1}]\n[[t]]\nx = 1\n[[t]]\nx = 2\n[t.sub]\ny = "z"\n',
    "strings.toml": b's1 = "esc \\u00e9 \\t \\n"\ns2 = \'lit\'\ns3 = """\nmulti\nline"""\ns4 = \'\'\'\nraw\n\'\'\'\n',
    "dates.toml": b"d1 = 1979-05-27T07:32:00Z\nd2 = 1979-05-27T00:32:00.999999-07:00\nd3 = 1979-05-27\nt = 07:32:00\n",
    "numbers.toml": b"i = +99\nh = 0xDEADBEEF\no = 0o755\nb = 0b1101\nf = 6.626e-34\ninf1 = inf\nn = nan\nu = 1_000\n",
    "dotted.toml": b'a.b.c = 1\n"quoted key".x = 2\n[x.y.z]\nw = {p = {q = [1]}}\n',
}
for n, b in shapes.items():
    put("toml", n, b)

# ---- images
layer = tar_bytes([("hello.txt", b"hello\n"), ("bin", None), ("bin/sh", ("symlink", "busybox"))])
diff_id = "sha256:" + sha(layer)


def config(arch="amd64"):
    return dumps({"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
                  "config": {"Env": ["A=1"], "Cmd": ["/bin/sh"], "Labels": {"k": "v"},
                             "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]}})


def legacy_image(ref="example/frontend:1.2.3", fmt=tarfile.USTAR_FORMAT, arch="amd64"):
    cfg = config(arch)
    ch = sha(cfg)
    ld = sha(diff_id.encode())
    repo_name, tag = ref.rsplit(":", 1)
    return tar_bytes([
        (ld, None), (ld + "/VERSION", b"1.0"), (ld + "/json", dumps({"id": ld})), (ld + "/layer.tar", layer),
        (ch + ".json", cfg),
        ("manifest.json", dumps([{"Config": ch + ".json", "RepoTags": [ref], "Layers": [ld + "/layer.tar"]}])),
        ("repositories", dumps({repo_name: {tag: ld}})),
    ], fmt)


def oci_image(ref="example/frontend:1.2.3", fmt=tarfile.PAX_FORMAT):
    cfg = config()
    ch, lh = sha(cfg), sha(layer)
    man = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + ch, "size": len(cfg)},
                 "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + lh, "size": len(layer)}]})
    mh = sha(man)
    index = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mh,
                                  "size": len(man), "annotations": {"io.containerd.image.name": "docker.io/" + ref,
                                                                     "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}]})
    return tar_bytes([
        ("blobs", None), ("blobs/sha256", None),
        ("blobs/sha256/" + ch, cfg), ("blobs/sha256/" + lh, layer), ("blobs/sha256/" + mh, man),
        ("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("manifest.json", dumps([{"Config": "blobs/sha256/" + ch, "RepoTags": [ref], "Layers": ["blobs/sha256/" + lh]}])),
        ("repositories", dumps({ref.rsplit(":", 1)[0]: {ref.rsplit(":", 1)[1]: lh}})),
    ], fmt)


images = {
    "legacy-ustar.tar": legacy_image(),
    "legacy-gnu.tar": legacy_image(fmt=tarfile.GNU_FORMAT),
    "legacy-arm64.tar": legacy_image(arch="arm64"),
    "oci-pax.tar": oci_image(),
    "oci-ustar.tar": oci_image(fmt=tarfile.USTAR_FORMAT),
    "long-names.tar": tar_bytes([("d" * 120 + "/" + "f" * 120, b"x" * 10), ("manifest.json", b"[]")], tarfile.PAX_FORMAT),
}
# gzip-compressed image.tar (issue 11): the same archives through the inflating reader.
import gzip as _gzip
images["legacy-ustar.tar.gz"] = _gzip.compress(images["legacy-ustar.tar"], mtime=0)
images["oci-pax.tar.gz"] = _gzip.compress(images["oci-pax.tar"], mtime=0)
for n, b in images.items():
    put("image", n, b)

# ---- packages
manifest = b"""format_version = 1
package_type = "service"
package_version = "1.2.3"
created_at = "2026-03-16T18:30:00Z"
[target]
service = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
[image]
reference = "example/frontend:1.2.3"
"""
img = images["legacy-ustar.tar"]
bound = manifest + ('sha256 = "%s"\nsize = %d\n' % (sha(img), len(img))).encode()
sig = (b"untrusted comment: signature from minisign secret key\n"
       b"RUR8m2J+bhjCBZz2LfPl0ZD/zy/2StxoLptqT85pdffM00jvbfZyXO1J7VuTrQjNCAxzaSN/B49BusIdK/F71JFnNa1egig1Lgw=\n"
       b"trusted comment: tc here\n"
       b"7Qgeof65Jdkg436P7lDK/+ZT1Qprm5jCGgogL0ROE9fngyvF1DDbKtmhPi0Tk6EdUb1Irj5NTy3qIXoYa8p6DA==\n")
packages = {
    "plain.edgepkg": tar_bytes([("manifest.toml", manifest), ("image.tar", img)]),
    "bound-signed.edgepkg": tar_bytes([("manifest.toml", bound), ("image.tar", img), ("manifest.toml.minisig", sig)]),
    "image-first-pax.edgepkg": tar_bytes([("image.tar", images["oci-pax.tar"]), ("manifest.toml", manifest)], tarfile.PAX_FORMAT),
    "gnu.edgepkg": tar_bytes([("manifest.toml", manifest), ("image.tar", images["legacy-gnu.tar"])], tarfile.GNU_FORMAT),
    "gzip-image.edgepkg": tar_bytes([("manifest.toml", manifest), ("image.tar", images["legacy-ustar.tar.gz"])]),
    "bad-entries.edgepkg": tar_bytes([("./manifest.toml", manifest), ("dir", None), ("link", ("symlink", "image.tar")),
                                      ("manifest.toml", manifest), ("manifest.toml", b"dup")]),
}
for n, b in packages.items():
    put("scanner", n, b)

# ---- minisign
put("minisign", "prehashed.minisig", sig)
put("minisign", "legacy.minisig",
    b"untrusted comment: signature from minisign secret key\n"
    b"RWR8m2J+bhjCBQ9AlgkU+p5iBbJtVk8CgCGg20gtFirZ1trzuPVSQ/AXgCLibsNSa4TJQS7SOcwpTBk7RbrZtkPA1ivrlBblQAU=\n"
    b"trusted comment: timestamp:1795449008\tfile:m\n"
    b"45UAs6NZmz/aj3+xxHFDTMvEmj4Mg5fHevHhX+Fo7kNyLtREpGx9I86WNVUvKydxua6FxiHC6/zsovnzpVzzDQ==\n")
put("minisign", "key.pub", b"untrusted comment: minisign public key 5C2186E7E629B7C\nRWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps\n")
put("minisign", "key-line.pub", b"RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps")
# An unencrypted secret key (fixed seed bytes; not a real key anyone uses).
import base64
raw = b"Ed\0\0B2" + bytes(48) + bytes(range(8)) + bytes(range(64)) + bytes(32)
put("minisign", "unencrypted.key", b"untrusted comment: minisign encrypted secret key\n" + base64.b64encode(raw) + b"\n")
raw = b"EdScB2" + bytes(range(32)) + (33554432).to_bytes(8, "little") + (1073741824).to_bytes(8, "little") + bytes(104)
put("minisign", "encrypted.key", b"untrusted comment: minisign encrypted secret key\n" + base64.b64encode(raw) + b"\n")
