#!/usr/bin/env python3
"""Writes the starting corpus for the fuzz targets into fuzz/corpus/<target>/.

Layers are small tars covering what layer.md gives meaning to (files, directories, symlinks,
hard links, devices, whiteouts, opaque whiteouts, PAX xattrs); archives are real exports of
a small image by the strata binary (OCI and docker, plain and gzip); documents are the
example layout's JSON blobs and reference strings. Usage: fuzz/seeds.py STRATA_BINARY
"""
import gzip, io, json, os, pathlib, subprocess, sys, tarfile, tempfile

HERE = pathlib.Path(__file__).resolve().parent
SEP = b"\n--strata-next-layer--\n"


def tar_of(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            name, kind = e[0], e[1]
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.mode = 0o755 if kind in ("dir", "sym") else 0o644
            data = None
            if kind == "file":
                data = e[2] if len(e) > 2 else b"content of " + name.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            if len(e) > 3:
                info.pax_headers = e[3]
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def layers():
    base = [("etc", "dir"), ("etc/passwd", "file"), ("usr", "dir"), ("usr/bin", "dir"),
            ("usr/bin/tool", "file"), ("lib", "sym", "usr/lib"), ("usr/lib", "dir"),
            ("usr/lib/libx.so", "file"), ("w", "dir"), ("w/old", "file"),
            ("dev", "dir"), ("dev/null", "chr"), ("run", "dir"), ("run/fifo", "fifo")]
    yield "base", tar_of(base)
    yield "two_layers_whiteouts", tar_of(base) + SEP + tar_of(
        [("etc/.wh.passwd", "file", b""), ("w/new", "file"), (".wh.w", "file", b""),
         ("usr/.wh..wh..opq", "file", b""), ("usr/bin", "dir"), ("usr/bin/tool2", "file")])
    yield "hardlinks", tar_of(base + [("etc/hl", "hard", "etc/passwd"),
                                      ("usr/bin/hl2", "hard", "usr/bin/tool")])
    yield "dirlinks", tar_of(base) + SEP + tar_of(
        [("lib", "dir"), ("lib/new.so", "file"), ("abs", "sym", "/etc"), ("abs/x", "file")])
    yield "dot_prefix", tar_of([("./", "dir"), ("./a", "dir"), ("./a/b", "file")])
    yield "xattrs", tar_of([("f", "file", b"x", {"SCHILY.xattr.user.test": "value",
                                                  "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})])
    yield "gnu_longname", tar_of([("d" * 150, "dir"), ("d" * 150 + "/" + "f" * 120, "file")],
                                 tarfile.GNU_FORMAT)
    yield "escapes", tar_of([("../outside", "file"), ("a", "sym", "../../"),
                             ("a/x", "file"), (".wh...", "file", b""), ("/abs", "file")])
    yield "overwrite", tar_of(base) + SEP + tar_of(
        [("etc", "file"), ("usr/bin/tool", "dir"), ("lib", "file")]) + SEP + tar_of(
        [("etc/.wh..wh..opq", "file", b""), ("etc", "dir")])


def archives(strata):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        src = tmp / "src"
        (src / "etc").mkdir(parents=True)
        (src / "etc" / "hello").write_text("hello\n")
        os.symlink("hello", src / "etc" / "link")
        lay = tmp / "lay"
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        run = lambda *a: subprocess.run([strata, *a], check=True, env=env,
                                        stdout=subprocess.DEVNULL)
        run("build", str(src), f"{lay}:app")
        run("artifact", "attach", f"{lay}:app", "--artifact-type", "application/x-sig",
            str(src / "etc" / "hello"))
        out = {}
        for fmt in ("oci", "docker"):
            path = tmp / f"{fmt}.tar"
            run("export", f"{lay}:app", "-o", str(path), "--format", fmt)
            out[fmt] = path.read_bytes()
        for name, data in out.items():
            yield name, b"\x00" + data
            yield name + "_gz", b"\x00" + gzip.compress(data, mtime=0)
        yield "oci_dry_run", b"\x01" + out["oci"]


def documents():
    blobs = HERE.parent / "testdata" / "example-layout" / "blobs" / "sha256"
    for p in sorted(blobs.iterdir()):
        data = p.read_bytes()
        if len(data) < 8192 and data.lstrip().startswith(b"{"):
            yield p.name[:16], data
    yield "index", (HERE.parent / "testdata" / "example-layout" / "index.json").read_bytes()
    for i, s in enumerate(["lay:tag", "lay@sha256:" + "a" * 64, "sha256:" + "0" * 64,
                           "sha512:" + "1" * 128, "linux/arm64/v8", "docker.io/library/debian:12",
                           "a--b.c_d", "lay:a/b:c"]):
        yield f"name{i}", s.encode()


def write(target, items):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for name, data in items:
        (d / name).write_bytes(data)


def main():
    strata = os.path.abspath(sys.argv[1])
    # Layers start with the options byte: 0 = as root, 2 = keep dirlinks, 1 = rootless.
    write("apply_layers", ((n, (b"\x02" if n == "dirlinks" else b"\x00") + d)
                           for n, d in layers()))
    write("apply_layers", ((n + "_rootless", b"\x01" + d) for n, d in layers()))
    write("import_archive", archives(strata))
    write("documents", documents())


if __name__ == "__main__":
    main()
