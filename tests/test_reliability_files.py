"""Issue 12 (reliability): images of every PIL mode, labels maps, corrupt checkpoints, atomic outputs."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.common.errors import UserError
from nas.common.files import atomic_path, write_bytes
from nas.data.images import to_rgb8
from nas.deploy.evaluate import read_labels_map
from nas.deploy.preprocessing import load_image
from tests.cli_helpers import assert_one_line_error, run_cli

GREY16 = (np.arange(8 * 8, dtype=np.uint16).reshape(8, 8) * 1000)  # 0 .. 63000


def _png48(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG, written by hand (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def test_a_16_bit_greyscale_png_is_scaled_not_clipped_to_white(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(GREY16).save(path)
    rgb = load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    expected = np.rint(GREY16 * (255 / 65535)).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb.min() == 0 and 240 < rgb.max() < 255  # not all 255


def test_a_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 0
    assert load_image(_png48(tmp_path / "rgb48.png", rgb16))[0, 0].tolist() == [255, 128, 0]


@pytest.mark.parametrize("mode", ["1", "L", "P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "RGB", "HSV", "LAB"])
def test_every_8_bit_mode_becomes_rgb8(mode):
    image = Image.new("RGB", (6, 4), (200, 40, 90)).convert(mode)
    rgb = to_rgb8(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 6, 3)


def test_alpha_is_composited_on_white_and_palette_transparency_too():
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert to_rgb8(clear)[0, 0].tolist() == [255, 255, 255]
    half = Image.new("LA", (2, 2), (0, 128))
    assert 120 <= to_rgb8(half)[0, 0, 0] <= 135
    palette = clear.convert("P")
    palette.info["transparency"] = 0
    assert to_rgb8(palette)[0, 0].tolist() == [255, 255, 255]


def test_integer_and_float_modes_are_scaled():
    i32 = Image.fromarray(GREY16.astype(np.int32), mode="I")
    assert to_rgb8(i32)[..., 0].max() == round(63000 * 255 / 65535)
    unit = Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), mode="F")
    assert to_rgb8(unit)[0, 0, 0] == 0 and to_rgb8(unit)[-1, -1, 0] == 255
    wide = Image.fromarray(np.linspace(0, 5000, 16, dtype=np.float32).reshape(4, 4), mode="F")
    assert to_rgb8(wide)[-1, -1, 0] == 255 and to_rgb8(wide)[1, 1, 0] < 255


def test_a_directory_data_set_of_16_bit_pngs_trains_on_scaled_pixels(tmp_path):
    from nas.data import DataConfig
    from nas.data.directory import DirectorySource

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(GREY16).save(tmp_path / cls / f"{i}.png")
    data = DirectorySource.load(DataConfig(source="directory", path=str(tmp_path), val_fraction=0.34), 8)
    assert 0 < data.train_images.mean() < 200


def test_a_json_labels_map_with_a_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"0": "cat",\n "1": "dog",}\n')
    with pytest.raises(UserError, match=r"is not valid JSON at line 2") as info:
        read_labels_map(path)
    assert "\n" not in str(info.value)
    text = tmp_path / "labels.txt"
    text.write_text('{"0": "cat",\n')
    assert read_labels_map(text) == ['{"0": "cat",']  # other files: one label per line


@pytest.fixture(scope="module")
def project_checkpoint(tmp_path_factory):
    from search_space.builder import build_model

    from nas.deploy.checkpoints import save_checkpoint
    from tests.export_helpers import tiny_spec

    spec = tiny_spec()
    return save_checkpoint(build_model(spec, seed=0), spec, tmp_path_factory.mktemp("ckpt") / "ckpt")


@pytest.mark.parametrize("damage", ["truncate-data", "garbage-index", "empty-data"])
def test_a_damaged_checkpoint_is_one_line_and_leaves_no_output(tmp_path, capsys, project_checkpoint, damage):
    import shutil

    ckpt = Path(shutil.copytree(project_checkpoint, tmp_path / "ckpt"))
    (data,) = ckpt.glob("model.ckpt.data-*")
    if damage == "truncate-data":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    elif damage == "empty-data":
        data.write_bytes(b"")
    else:
        (ckpt / "model.ckpt.index").write_bytes(os.urandom(200))
    out = tmp_path / "m.tflite"
    code, _, err = run_cli(capsys, "export", "--ckpt", ckpt, "--output-tflite", out, "--no-quantize")
    assert_one_line_error(code, err, str(ckpt))
    assert not out.exists() and not list(tmp_path.glob(".m.tflite*"))


def test_checkpoints_are_published_whole(project_checkpoint):
    names = sorted(p.name for p in project_checkpoint.iterdir())
    assert "model.ckpt.index" in names and not [n for n in names if n.startswith(".")]


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temporary(tmp_path):
    final = tmp_path / "model.tflite"
    final.write_bytes(b"the old, whole file")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("the converter crashed")
    assert final.read_bytes() == b"the old, whole file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_temporary_names_are_unique_per_write(tmp_path):
    with atomic_path(tmp_path / "a.yaml") as one, atomic_path(tmp_path / "a.yaml") as two:
        assert one != two
        one.write_text("1")
        two.write_text("2")
    assert (tmp_path / "a.yaml").read_text() == "1"  # the outer write renames last
    assert [p.name for p in tmp_path.iterdir()] == ["a.yaml"]


def test_a_failed_saved_model_write_keeps_the_old_directory(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True) as tmp:
            tmp.mkdir()
            (tmp / "half.pb").write_text("partial")
            raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["saved"] and (target / "old.pb").exists()


def test_an_unwritable_destination_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write") as info:
        write_bytes(tmp_path / "file" / "out.csv", b"a,b\n")
    assert "\n" not in str(info.value)
