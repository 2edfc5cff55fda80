"""Every kind of input image is coded correctly or refused with a clear message."""
import numpy as np
import pytest
from PIL import Image

from licodec.cli import main
from licodec.imageio import load_image

from .conftest import smooth_image


def roundtrip(tmp_path, model, src, *extra):
    lic, out = tmp_path / f"{src.stem}-out.lic", tmp_path / f"{src.stem}-out.png"
    code = main(["encode", str(src), str(lic), "--model", str(model), *extra])
    if code != 0:
        return code, None
    assert main(["decode", str(lic), str(out), "--model", str(model), "--force"]) == 0
    return code, Image.open(out)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 57), (61, 1), (2, 3000), (17, 17)])
def test_small_thin_and_very_wide_rgb(tmp_path, tiny_model_path, h, w):
    src = tmp_path / "in.png"
    Image.fromarray(smooth_image(h, w)).save(src)
    code, img = roundtrip(tmp_path, tiny_model_path, src)
    assert code == 0 and img.size == (w, h) and img.mode == "RGB"


def test_gray_and_palette(tmp_path, tiny_model_path):
    src = tmp_path / "g.png"
    Image.fromarray(smooth_image(30, 40, channels=1)).save(src)
    code, img = roundtrip(tmp_path, tiny_model_path, src)
    assert code == 0 and img.mode == "L" and img.size == (40, 30)
    pal = tmp_path / "p.png"
    Image.fromarray(smooth_image(30, 40)).quantize(16).save(pal)
    assert Image.open(pal).mode == "P"
    # the palette expands to RGB exactly: what is coded is the image a viewer shows
    assert np.array_equal(load_image(pal), np.asarray(Image.open(pal).convert("RGB")))
    code, img = roundtrip(tmp_path, tiny_model_path, pal)
    assert code == 0 and img.mode == "RGB"


def test_transparency_and_16_bit_need_convert(tmp_path, tiny_model_path, capsys):
    rgba = tmp_path / "a.png"
    Image.fromarray(np.dstack([smooth_image(20, 20), np.full((20, 20), 128, np.uint8)]), "RGBA").save(rgba)
    pal_t = tmp_path / "pt.png"
    p = Image.fromarray(smooth_image(20, 20)).quantize(8)
    p.info["transparency"] = 0
    p.save(pal_t, transparency=0)
    deep = tmp_path / "d.png"
    Image.fromarray((smooth_image(20, 20, channels=1).astype(np.uint16) * 257)).save(deep)
    for src, word in ((rgba, "alpha"), (pal_t, "transparency"), (deep, "16 bits")):
        capsys.readouterr()
        code, _ = roundtrip(tmp_path, tiny_model_path, src)
        assert code == 3 and word in capsys.readouterr().err
        code, img = roundtrip(tmp_path, tiny_model_path, src, "--convert", "--force")
        assert code == 0 and img.size == (20, 20)
    # 16-bit conversion maps 0..65535 onto 0..255
    assert np.array_equal(load_image(deep, convert=True), smooth_image(20, 20, channels=1))


def test_cmyk_jpeg_is_refused_unless_converted(tmp_path, tiny_model_path, capsys):
    src = tmp_path / "c.jpg"
    Image.fromarray(smooth_image(24, 24)).convert("CMYK").save(src, quality=95)
    code, _ = roundtrip(tmp_path, tiny_model_path, src)
    assert code == 3 and "CMYK" in capsys.readouterr().err
    code, img = roundtrip(tmp_path, tiny_model_path, src, "--convert")
    assert code == 0 and img.mode == "RGB"


@pytest.mark.parametrize("suffix", [".gif", ".png", ".tif"])
def test_an_animated_or_multi_page_file_is_refused_unless_converted(tmp_path, tiny_model_path, capsys, suffix):
    first, second = smooth_image(24, 28, seed=1), smooth_image(24, 28, seed=2)
    src = tmp_path / f"anim{suffix}"
    Image.fromarray(first).save(src, save_all=True, append_images=[Image.fromarray(second)])
    code, _ = roundtrip(tmp_path, tiny_model_path, src)
    assert code == 3 and "image has 2 frames (animated or multi-page)" in capsys.readouterr().err
    assert not (tmp_path / "anim-out.lic").exists()
    code, img = roundtrip(tmp_path, tiny_model_path, src, "--convert")
    assert code == 0 and img.size == (28, 24)
    with Image.open(src) as im:  # the first frame is the one coded
        assert np.array_equal(load_image(src, convert=True), np.asarray(im.convert("RGB")))


def test_exif_orientation_is_applied_like_a_viewer(tmp_path, tiny_model_path):
    arr = smooth_image(20, 50)
    src = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    Image.fromarray(arr).save(src, exif=exif, quality=95)
    shown = load_image(src)
    assert shown.shape[:2] == (50, 20)
    stored = np.asarray(Image.open(src))
    assert np.array_equal(shown, np.rot90(stored, k=-1))
    code, img = roundtrip(tmp_path, tiny_model_path, src)
    assert code == 0 and img.size == (20, 50)


def test_corrupt_and_truncated_images(tmp_path, tiny_model_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(smooth_image(40, 40)).save(good)
    data = good.read_bytes()
    for name, blob in (("trunc.png", data[: len(data) // 2]), ("junk.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50),
                       ("empty.png", b""), ("text.jpg", b"hello")):
        (tmp_path / name).write_bytes(blob)
        capsys.readouterr()
        code, _ = roundtrip(tmp_path, tiny_model_path, tmp_path / name)
        err = capsys.readouterr().err
        assert code == 3 and "not a readable image" in err and "Traceback" not in err, name


def test_a_forged_huge_png_header_is_refused_before_decoding(tmp_path, tiny_model_path, capsys):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    src = tmp_path / "bomb.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                    + chunk(b"IEND", b""))
    code, _ = roundtrip(tmp_path, tiny_model_path, src)
    err = capsys.readouterr().err
    assert code == 3 and ("larger than" in err or "too large" in err)
