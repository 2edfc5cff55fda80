import numpy as np
import pytest
from PIL import Image

from licodec.cli import main
from licodec.cli.main import EXIT_BAD_INPUT, EXIT_USAGE

from .conftest import smooth_image


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(smooth_image(37, 53)).save(path)
    return path


def encode(png, out, model, *extra):
    return main(["encode", str(png), str(out), "--model", str(model), *extra])


def test_encode_decode_info_round_trip(tmp_path, png, tiny_model_path, capsys):
    lic = tmp_path / "out.lic"
    assert encode(png, lic, tiny_model_path) == 0
    assert lic.stat().st_size > 20
    out = tmp_path / "out.png"
    assert main(["decode", str(lic), str(out), "--model", str(tiny_model_path)]) == 0
    img = Image.open(out)
    assert img.size == (53, 37) and img.mode == "RGB"
    capsys.readouterr()
    assert main(["info", str(lic)]) == 0
    text = capsys.readouterr().out
    assert "53x37" in text and "tiny-test" in text


def test_grayscale_file_decodes_to_grayscale(tmp_path, tiny_model_path):
    src = tmp_path / "g.png"
    Image.fromarray(smooth_image(20, 30, channels=1)).save(src)
    assert encode(src, tmp_path / "g.lic", tiny_model_path) == 0
    assert main(["decode", str(tmp_path / "g.lic"), str(tmp_path / "g2.png"),
                 "--model", str(tiny_model_path)]) == 0
    assert Image.open(tmp_path / "g2.png").mode == "L"


def test_existing_output_is_kept_without_force(tmp_path, png, tiny_model_path, capsys):
    lic = tmp_path / "out.lic"
    lic.write_bytes(b"precious")
    assert encode(png, lic, tiny_model_path) == EXIT_BAD_INPUT
    assert lic.read_bytes() == b"precious"
    assert "--force" in capsys.readouterr().err
    assert encode(png, lic, tiny_model_path, "--force") == 0
    assert lic.read_bytes()[:4] == b"\x89LIC"


def test_output_may_never_be_the_input(tmp_path, png, tiny_model_path):
    before = png.read_bytes()
    assert encode(png, png, tiny_model_path, "--force") == EXIT_BAD_INPUT
    assert png.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "magic", "empty", "trailing"])
def test_damaged_files_give_one_line_errors_and_exit_3(tmp_path, png, tiny_model_path, capsys, damage):
    lic = tmp_path / "out.lic"
    assert encode(png, lic, tiny_model_path) == 0
    data = bytearray(lic.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "bitflip":
        data[len(data) // 2] ^= 0x10
    elif damage == "magic":
        data[:4] = b"JUNK"
    elif damage == "empty":
        data = b""
    else:
        data += b"xx"
    lic.write_bytes(bytes(data))
    capsys.readouterr()
    out = tmp_path / "dec.png"
    code = main(["decode", str(lic), str(out), "--model", str(tiny_model_path)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith("licodec: ") and err.count("\n") == 1 and "Traceback" not in err
    expected = {"truncate": "truncated", "bitflip": "checksum", "magic": "magic", "empty": "magic",
                "trailing": "unexpected bytes"}[damage]
    assert expected in err
    assert not out.exists()
    assert main(["info", str(lic)]) == EXIT_BAD_INPUT


def test_bad_images_and_models_are_refused_cleanly(tmp_path, png, tiny_model_path, capsys):
    rgba = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(rgba)
    assert encode(rgba, tmp_path / "a.lic", tiny_model_path) == EXIT_BAD_INPUT
    assert "alpha" in capsys.readouterr().err
    assert encode(rgba, tmp_path / "a.lic", tiny_model_path, "--convert") == 0
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert encode(junk, tmp_path / "j.lic", tiny_model_path) == EXIT_BAD_INPUT
    assert "not a readable image" in capsys.readouterr().err
    assert encode(png, tmp_path / "m.lic", tmp_path / "nope.safetensors") == EXIT_BAD_INPUT
    assert "model file not found" in capsys.readouterr().err
    assert encode(tmp_path / "missing.png", tmp_path / "x.lic", tiny_model_path) == EXIT_BAD_INPUT
    assert not (tmp_path / "x.lic").exists()


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["encode"])
    assert exc.value.code == EXIT_USAGE
    for bad in (["--quality", "-1"], ["--quality", "high"], ["--size", "0"], ["--quality", "3", "--size", "900"]):
        with pytest.raises(SystemExit) as exc:
            main(["encode", "a.png", *bad])
        assert exc.value.code == EXIT_USAGE
    assert main([]) == EXIT_USAGE


def test_quality_a_model_cannot_take_is_a_clear_error(tmp_path, png, tiny_model_path, capsys):
    assert encode(png, tmp_path / "a.lic", tiny_model_path, "--quality", "4") == EXIT_BAD_INPUT
    assert "has one rate" in capsys.readouterr().err
    assert not (tmp_path / "a.lic").exists()


class _Stdin:
    def __init__(self, data: bytes):
        import io
        self.buffer = io.BytesIO(data)


def test_dash_means_standard_input_and_output(tmp_path, png, tiny_model_path, capsysbinary, monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin(png.read_bytes()))
    assert main(["encode", "-", "-", "--model", str(tiny_model_path)]) == 0
    captured = capsysbinary.readouterr()
    data = captured.out
    assert data[:4] == b"\x89LIC" and b"bytes" in captured.err  # the report goes to stderr
    lic = tmp_path / "a.lic"
    assert encode(png, lic, tiny_model_path) == 0
    assert lic.read_bytes() == data
    capsysbinary.readouterr()
    monkeypatch.setattr("sys.stdin", _Stdin(data))
    assert main(["decode", "-", "-", "--model", str(tiny_model_path)]) == 0
    out = capsysbinary.readouterr().out
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr("sys.stdin", _Stdin(data))
    assert main(["info", "-"]) == 0


def test_devices_fifos_and_symlinks_are_written_through_never_replaced(tmp_path, png, tiny_model_path):
    import os
    import threading
    assert encode(png, "/dev/null", tiny_model_path) == 0  # no --force needed, nothing replaced
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    target = tmp_path / "target.lic"
    link = tmp_path / "link.lic"
    link.symlink_to(target)
    assert encode(png, link, tiny_model_path) == 0
    assert link.is_symlink() and target.read_bytes()[:4] == b"\x89LIC"
    target.write_bytes(b"precious")
    assert encode(png, link, tiny_model_path) == EXIT_BAD_INPUT
    assert target.read_bytes() == b"precious" and link.is_symlink()
    assert encode(png, link, tiny_model_path, "--force") == 0
    assert link.is_symlink() and target.read_bytes()[:4] == b"\x89LIC"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert encode(png, fifo, tiny_model_path) == 0
    reader.join(10)
    assert got and got[0] == target.read_bytes() and fifo.exists() and not fifo.is_file()


def test_encode_never_writes_under_an_image_name_and_names_outputs_sensibly(tmp_path, png, tiny_model_path,
                                                                           capsys):
    other = tmp_path / "b.png"
    other.write_bytes(b"an image")
    for out in (other, tmp_path / "x.jpg"):
        assert encode(png, out, tiny_model_path, "--force") == EXIT_BAD_INPUT
        assert "image file name" in capsys.readouterr().err
    assert other.read_bytes() == b"an image" and not (tmp_path / "x.jpg").exists()
    assert main(["encode", str(png), "--model", str(tiny_model_path)]) == 0
    assert (tmp_path / "in.lic").exists() and not (tmp_path / "in.png.lic").exists()
    assert main(["decode", str(tmp_path / "in.lic"), "--model", str(tiny_model_path), "--force"]) == 0
    assert Image.open(tmp_path / "in.png").size == (53, 37)


def test_decoding_to_a_lossy_format_must_be_asked_for(tmp_path, png, tiny_model_path, capsys):
    lic = tmp_path / "a.lic"
    assert encode(png, lic, tiny_model_path) == 0
    dec = ["decode", str(lic), "--model", str(tiny_model_path)]
    for name in ("a.jpg", "a.webp"):
        assert main(dec[:2] + [str(tmp_path / name)] + dec[2:]) == EXIT_BAD_INPUT
        assert "--output-quality" in capsys.readouterr().err and not (tmp_path / name).exists()
    assert main(dec[:2] + [str(tmp_path / "a.gif")] + dec[2:]) == EXIT_BAD_INPUT
    assert "256 colours" in capsys.readouterr().err
    assert main(dec[:2] + [str(tmp_path / "a.jpg")] + dec[2:] + ["--output-quality", "95"]) == 0
    assert Image.open(tmp_path / "a.jpg").format == "JPEG"
    assert main(dec[:2] + [str(tmp_path / "b.png")] + dec[2:] + ["--output-quality", "95"]) == EXIT_BAD_INPUT


def test_models_lists_the_installed_models_and_unknown_names_are_explained(tmp_path, capsys):
    from licodec.zoo.registry import installed_names
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == installed_names()
    png = tmp_path / "a.png"
    Image.fromarray(smooth_image(16, 16)).save(png)
    assert main(["encode", str(png), "--model", "bls2017-nope"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown model 'bls2017-nope'" in err and all(n in err for n in installed_names())
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not read")
    assert main(["encode", str(png), "--model", str(ckpt)]) == EXIT_BAD_INPUT
    assert "licodec export" in capsys.readouterr().err


def test_commands_that_run_no_model_do_not_import_torch(tmp_path, png, tiny_model_path):
    import subprocess
    import sys
    lic = tmp_path / "a.lic"
    assert encode(png, lic, tiny_model_path) == 0
    code = ("import sys, contextlib, io\n"
            "from licodec.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['info', {str(lic)!r}]) == 0\n"
            "    assert main(['models']) == 0\n"
            "    try:\n"
            "        main(['--version'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_keeps_the_icc_profile_and_refuses_lic_as_an_image(tmp_path, tiny_model_path, capsys):
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "c.png"
    Image.fromarray(smooth_image(20, 24)).save(src, icc_profile=icc)
    lic = tmp_path / "c.lic"
    assert encode(src, lic, tiny_model_path) == 0
    for name in ("d.png", "d.tif"):
        assert main(["decode", str(lic), str(tmp_path / name), "--model", str(tiny_model_path)]) == 0
        assert Image.open(tmp_path / name).info.get("icc_profile") == icc
    assert main(["decode", str(lic), str(tmp_path / "e.lic"), "--model", str(tiny_model_path)]) == EXIT_BAD_INPUT
    assert encode(lic, tmp_path / "f.lic", tiny_model_path) == EXIT_BAD_INPUT
    assert "already a licodec file" in capsys.readouterr().err


def test_every_option_has_a_help_text_and_no_empty_default():
    import argparse

    from licodec.cli.main import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"licodec {name} {action.option_strings or action.dest}: no help text"
        text = command.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name


def test_batches_of_files_and_folders_with_workers(tmp_path, tiny_model_path, capsys):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.webp"]):
        Image.fromarray(smooth_image(24 + i, 30, seed=i)).save(src / name)
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    single = tmp_path / "single.png"
    Image.fromarray(smooth_image(20, 20, seed=9)).save(single)
    out = tmp_path / "out"
    code = main(["encode", str(src), str(single), "-o", str(out), "--model", str(tiny_model_path), "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT  # one file failed, the others were written
    assert "broken.png" in captured.err and captured.err.count("\n") == 1
    assert "4 of 5 files encoded" in captured.out and "1 failed" in captured.out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.lic"))
    assert written == ["photos/a.lic", "photos/b.lic", "photos/sub/c.lic", "single.lic"]
    dec = tmp_path / "dec"
    assert main(["decode", str(out), "-o", str(dec), "--model", str(tiny_model_path)]) == 0
    assert "4 of 4 files decoded" in capsys.readouterr().out
    assert Image.open(dec / "out" / "photos" / "sub" / "c.png").size == (30, 26)
    # three paths without -o are refused; a folder as OUTPUT receives the default name
    assert main(["encode", str(single), str(single), str(single)]) == EXIT_BAD_INPUT
    assert "-o OUTDIR" in capsys.readouterr().err
    folder = tmp_path / "into"
    folder.mkdir()
    assert encode(single, folder, tiny_model_path) == 0 and (folder / "single.lic").exists()
    # folders made for files that failed are removed again; a folder that was there stays
    (src / "bad").mkdir()
    (src / "bad" / "x.png").write_bytes(b"")
    mixed = tmp_path / "mixed"
    assert main(["encode", str(src / "bad"), str(single), "-o", str(mixed), "--model", str(tiny_model_path)]) == 3
    assert sorted(p.relative_to(mixed).as_posix() for p in mixed.rglob("*")) == ["single.lic"]
    failed = tmp_path / "failed" / "deeper"
    assert main(["encode", str(src / "bad"), "-o", str(failed), "--model", str(tiny_model_path)]) == 3
    assert not (tmp_path / "failed").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["encode", str(src / "bad"), "-o", str(kept), "--model", str(tiny_model_path)]) == 3
    assert kept.is_dir() and not any(kept.iterdir())


def test_a_command_that_needs_a_missing_extra_names_it(monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib.cbook", None)  # as on a base install
    assert main(["demo"]) == EXIT_BAD_INPUT
    assert "pip install 'licodec[demo]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)
    from licodec.errors import LicodecError
    from licodec.eval.metrics import ms_ssim
    with pytest.raises(LicodecError, match=r"licodec\[eval\]"):
        ms_ssim(smooth_image(8, 8), smooth_image(8, 8))


def test_an_installed_variable_rate_model_becomes_the_default(tmp_path, tiny_hp_artifact_bytes, monkeypatch,
                                                             capsys):
    import licodec.zoo.registry as registry
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / f"{registry.VARIABLE_RATE_MODEL}.safetensors").write_bytes(tiny_hp_artifact_bytes)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    png = tmp_path / "a.png"
    Image.fromarray(smooth_image(40, 48)).save(png)
    assert main(["encode", str(png), "--quality", "6.5"]) == 0
    assert "quality 6.5" in capsys.readouterr().out
    assert main(["decode", str(tmp_path / "a.lic"), str(tmp_path / "b.png")]) == 0  # model found by digest
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split("\n")[-2].startswith(registry.VARIABLE_RATE_MODEL)
    assert main(["demo", str(png)]) == 0
    out = capsys.readouterr().out
    assert "hp q1" in out and "hp q10" in out
