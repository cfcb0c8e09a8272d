#!/usr/bin/env python3
"""Makes the vigil-privacy fixtures in fixtures/privacy/: a corpus of images loaded with every kind of metadata
the scrubber must remove, and a face photo. Deterministic: run it again and every byte is the same (with the
same Pillow and exiftool versions: pillow 13.0.0, exiftool 12.57 as in Debian 12's libimage-exiftool-perl).

    tools/make_privacy_fixtures.py [--out fixtures/privacy]

It uses Pillow from the virtual environment .local/privacy-venv (made on first use, pillow pinned) and the
exiftool command. The face photo is scikit-image's `astronaut` (NASA, public domain), taken from the pinned
scikit-image wheel on PyPI and checked against its sha256.

Every image carries the planted identifiers of the test printer (serial VG-2024-000123, MAC
dc:a6:32:01:02:03) and text markers starting with SECRET- somewhere in its metadata; the tests search every
output for them.

What it writes:
  corpus/jpeg-gps-makernote.jpg      EXIF with GPS position, serial numbers, a MakerNote block, owner name
  corpus/jpeg-exif-thumbnail.jpg     EXIF thumbnail (IFD1) that is itself a JPEG with its own EXIF
  corpus/jpeg-xmp-extended.jpg       XMP plus ExtendedXMP (an XMP packet > 64 kB split across APP1 segments)
  corpus/jpeg-iptc.jpg               IPTC (Photoshop APP13) keywords, city, by-line
  corpus/jpeg-icc-multi.jpg          a 150 kB ICC profile spread over three APP2 segments
  corpus/jpeg-com-app12-15.jpg       COM comments, APP12 (Ducky), APP13, APP14 (Adobe), APP15 segments
  corpus/jpeg-after-eoi.jpg          bytes after EOI
  corpus/jpeg-orientation-N.jpg      N = 2..8: EXIF orientation, an asymmetric picture
  corpus/png-chunks.png              tEXt, zTXt, iTXt (with XMP), eXIf, tIME, iCCP, data after IEND
  corpus/png-orientation-6.png       eXIf orientation 6
  corpus/webp-exif-xmp.webp          WebP (VP8X) with EXIF, XMP and ICC chunks
  corpus/webp-lossless-exif.webp     lossless WebP with EXIF
  astronaut.jpg                      the face photo (512x512, JPEG quality 92, no metadata)
"""
import argparse
import hashlib
import io
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".local", "privacy-venv")
PILLOW = "pillow==13.0.0"
SKIMAGE = "scikit-image==0.26.0"
SKIMAGE_WHEEL_SHA = "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
ASTRONAUT_SHA = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"

SERIAL = "VG-2024-000123"
MAC = "dc:a6:32:01:02:03"


def ensure_pillow():
    try:
        import PIL  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python3")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call([py, "-m", "pip", "install", "-q", PILLOW])
    os.execv(py, [py] + sys.argv)


ensure_pillow()
from PIL import Image, ImageCms, ImageDraw  # noqa: E402
from PIL.PngImagePlugin import PngInfo  # noqa: E402


def exiftool(path, *args):
    subprocess.check_call(["exiftool", "-q", "-overwrite_original", *args, path])


def scene(w=160, h=120, seed=1):
    """An asymmetric test picture: gradient, noise, a red block top-left and a blue bar along the bottom."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            n = rnd.randint(0, 24)
            px[x, y] = (60 + x * 120 // w + n, 80 + y * 100 // h + n, 120 + n)
    d = ImageDraw.Draw(img)
    d.rectangle([8, 8, 8 + w // 4, 8 + h // 4], fill=(230, 20, 20))
    d.rectangle([0, h - h // 8, w - 1, h - 1], fill=(20, 20, 230))
    return img


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def big_icc(size=150_000):
    """A real sRGB profile padded (header size updated) so it needs several APP2 segments."""
    p = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pad = (b"SECRET-ICC-PADDING-" * (size // 19 + 1))[: size - len(p)]
    data = bytearray(p + pad)
    data[0:4] = struct.pack(">I", len(data))
    data[24:36] = struct.pack(">6H", 2024, 5, 17, 13, 37, 0)  # a fixed creation date, for reproducibility
    data[84:100] = bytes(16)  # no profile ID (it would hash the date)
    return bytes(data)


def exif_with_identifiers(orientation=None):
    from PIL import ExifTags
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "SECRET-MAKE"
    ex[ExifTags.Base.Model] = "SECRET-MODEL " + SERIAL
    ex[ExifTags.Base.Artist] = "SECRET-OWNER Jane Doe"
    ex[ExifTags.Base.Software] = "vigil-fixture " + MAC
    if orientation:
        ex[ExifTags.Base.Orientation] = orientation
    ifd = ex.get_ifd(ExifTags.IFD.Exif)
    ifd[ExifTags.Base.BodySerialNumber] = SERIAL
    ifd[ExifTags.Base.MakerNote] = b"SECRET-MAKERNOTE\x00" + SERIAL.encode() + b"\x00" + bytes(range(64))
    ifd[ExifTags.Base.UserComment] = b"ASCII\x00\x00\x00SECRET-USERCOMMENT"
    gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.25)
    return ex


def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def insert_after_soi(jpeg, segs):
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segs) + jpeg[2:]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def astronaut(out):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               "--python-version", "3.11", "--implementation", "cp",
                               "--platform", "manylinux_2_28_x86_64", "-d", tmp, SKIMAGE])
        whl = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
        data = open(os.path.join(tmp, whl), "rb").read()
        if hashlib.sha256(data).hexdigest() != SKIMAGE_WHEEL_SHA:
            sys.exit(f"{whl}: sha256 mismatch")
        with zipfile.ZipFile(os.path.join(tmp, whl)) as z:
            png = z.read("skimage/data/astronaut.png")
    if hashlib.sha256(png).hexdigest() != ASTRONAUT_SHA:
        sys.exit("astronaut.png: sha256 mismatch")
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.save(os.path.join(out, "astronaut.jpg"), "JPEG", quality=92)


def corpus(out):
    c = os.path.join(out, "corpus")
    shutil.rmtree(c, ignore_errors=True)
    os.makedirs(c)
    base = scene()

    # EXIF: GPS, MakerNote, serial numbers, owner.
    p = os.path.join(c, "jpeg-gps-makernote.jpg")
    open(p, "wb").write(jpeg_bytes(base, exif=exif_with_identifiers()))
    exiftool(p, "-GPSAltitude=34.5", "-GPSAltitudeRef=0", "-OwnerName=SECRET-OWNERNAME",
             "-SerialNumber=" + SERIAL, "-LensSerialNumber=SECRET-LENS-SERIAL")

    # EXIF thumbnail that carries its own EXIF.
    with tempfile.TemporaryDirectory() as tmp:
        thumb = os.path.join(tmp, "thumb.jpg")
        open(thumb, "wb").write(jpeg_bytes(base.resize((40, 30)), exif=exif_with_identifiers()))
        exiftool(thumb, "-ImageDescription=SECRET-THUMBNAIL-EXIF")
        p = os.path.join(c, "jpeg-exif-thumbnail.jpg")
        open(p, "wb").write(jpeg_bytes(base, exif=exif_with_identifiers()))
        exiftool(p, "-ThumbnailImage<=" + thumb)

    # XMP and ExtendedXMP: a description long enough to overflow one APP1 segment.
    p = os.path.join(c, "jpeg-xmp-extended.jpg")
    open(p, "wb").write(jpeg_bytes(base))
    long_text = "SECRET-EXTENDED-XMP " + ("lorem ipsum dolor sit amet " * 3000)
    with tempfile.TemporaryDirectory() as tmp:
        argf = os.path.join(tmp, "args")
        with open(argf, "w") as f:
            f.write("-XMP-dc:Description=" + long_text + "\n")
            f.write("-XMP-dc:Creator=SECRET-XMP-CREATOR\n")
            f.write("-XMP-exif:GPSLatitude=52.52\n-XMP-exif:GPSLongitude=13.41\n")
            f.write("-XMP-aux:SerialNumber=" + SERIAL + "\n")
        exiftool(p, "-@", argf)

    # IPTC.
    p = os.path.join(c, "jpeg-iptc.jpg")
    open(p, "wb").write(jpeg_bytes(base))
    exiftool(p, "-IPTC:Keywords=SECRET-KEYWORD", "-IPTC:City=SECRET-CITY", "-IPTC:By-line=SECRET-BYLINE",
             "-IPTC:SpecialInstructions=" + MAC)

    # Multi-segment ICC.
    p = os.path.join(c, "jpeg-icc-multi.jpg")
    open(p, "wb").write(jpeg_bytes(base, icc_profile=big_icc()))

    # COM and APP12-APP15 written by hand.
    p = os.path.join(c, "jpeg-com-app12-15.jpg")
    segs = [
        segment(0xFE, b"SECRET-COMMENT " + SERIAL.encode()),
        segment(0xEC, b"Ducky\x00\x01\x00\x04\x00\x00\x00\x50\x00\x02\x00\x12\x00\x00\x00\x0eSECRET-DUCKY"),
        segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x14\x1c\x02\x78\x00\x0eSECRET-CAPTION\x00"),
        segment(0xEE, b"Adobe\x00\x64\x80\x00\x00\x00\x01"),
        segment(0xEF, b"SECRET-APP15 " + MAC.encode()),
        segment(0xFE, b"SECRET-COMMENT-2"),
    ]
    open(p, "wb").write(insert_after_soi(jpeg_bytes(base), segs))

    # Data after EOI.
    p = os.path.join(c, "jpeg-after-eoi.jpg")
    open(p, "wb").write(jpeg_bytes(base) + b"SECRET-AFTER-EOI " + SERIAL.encode() + bytes(range(256)))

    # Orientations 2-8 (the pixels are stored transformed, so applying the tag gives `base` back).
    inverse = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT],
        3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_90],
        7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }
    for n, ops in inverse.items():
        img = base
        for op in ops:
            img = img.transpose(op)
        p = os.path.join(c, f"jpeg-orientation-{n}.jpg")
        open(p, "wb").write(jpeg_bytes(img, exif=exif_with_identifiers(orientation=n)))

    # PNG with every text chunk, eXIf, tIME, iCCP and data after IEND.
    info = PngInfo()
    info.add_text("Author", "SECRET-PNG-TEXT " + SERIAL)
    info.add_text("Comment", "SECRET-PNG-ZTXT " + MAC, zip=True)
    info.add_itxt("Description", "SECRET-PNG-ITXT", lang="en", tkey="Description")
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                  'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                  'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="SECRET-PNG-XMP"/></rdf:RDF></x:xmpmeta>')
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 13, 37, 0))
    buf = io.BytesIO()
    base.save(buf, "PNG", pnginfo=info, exif=exif_with_identifiers(), icc_profile=big_icc(4000))
    open(os.path.join(c, "png-chunks.png"), "wb").write(buf.getvalue() + b"SECRET-AFTER-IEND " + SERIAL.encode())

    buf = io.BytesIO()
    base.transpose(Image.Transpose.ROTATE_90).save(buf, "PNG", exif=exif_with_identifiers(orientation=6))
    open(os.path.join(c, "png-orientation-6.png"), "wb").write(buf.getvalue())

    # WebP with EXIF, XMP and ICC.
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="SECRET-WEBP-XMP '
           + SERIAL + '"/></rdf:RDF></x:xmpmeta>').encode()
    buf = io.BytesIO()
    base.save(buf, "WEBP", quality=90, exif=exif_with_identifiers(), xmp=xmp, icc_profile=big_icc(3000))
    open(os.path.join(c, "webp-exif-xmp.webp"), "wb").write(buf.getvalue())
    buf = io.BytesIO()
    base.save(buf, "WEBP", lossless=True, exif=exif_with_identifiers())
    open(os.path.join(c, "webp-lossless-exif.webp"), "wb").write(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "privacy"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus(args.out)
    astronaut(args.out)
    for d, _, files in sorted(os.walk(args.out)):
        for f in sorted(files):
            p = os.path.join(d, f)
            print(f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()[:16]}  {os.path.getsize(p):>7}  "
                  f"{os.path.relpath(p, args.out)}")


if __name__ == "__main__":
    main()
