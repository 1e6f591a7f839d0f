"""The evaluation preprocessing against TensorFlow's own ops, as the reference (TF1) ran them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.export_helpers import save_png
from nas.deploy.preprocessing import crop_window, list_images, load_image, preprocess, resize_bilinear
from search_space import UserError


def test_crop_window_keeps_a_fixed_32_pixel_padding():
    # 224 / (224 + 32) = 0.875 of the short side, centred with the reference's (d + 1) // 2 offsets.
    assert crop_window(480, 640, 224) == (30, 110, 420)
    assert crop_window(375, 500, 224) == (24, 86, 328)
    # M and L keep 32 pixels of padding too (kept fraction 240/272 and 300/332), not 12.5%.
    assert crop_window(480, 640, 240)[2] == int(240 / 272 * 480) == 423
    assert crop_window(480, 640, 300)[2] == int(300 / 332 * 480) == 433
    assert crop_window(480, 640, 300, crop_padding=43)[2] == 419


def test_resize_matches_tf1_legacy_bilinear_and_not_half_pixel():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for shape, size in (((37, 53, 3), 24), ((20, 20, 3), 64), ((301, 301, 3), 224)):
        image = rng.integers(0, 256, shape).astype(np.uint8)
        ours = resize_bilinear(image, size)
        legacy = tf.compat.v1.image.resize_bilinear(image[None], [size, size], align_corners=False,
                                                    half_pixel_centers=False)[0].numpy()
        np.testing.assert_allclose(ours, legacy, atol=1e-3)
        half_pixel = tf.image.resize(image[None].astype(np.float32), [size, size], method="bilinear")[0].numpy()
        assert np.abs(ours - half_pixel).max() > 1.0


def test_preprocess_matches_the_reference_pipeline_written_in_tensorflow(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (90, 130, 3)).astype(np.uint8)
    path = save_png(tmp_path / "photo.png", pixels)
    size = 40

    # The reference's _decode_and_center_crop + _resize_image, on the PNG's bytes.
    decoded = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
    h, w = decoded.shape[0], decoded.shape[1]
    side = tf.cast((size / (size + 32)) * tf.cast(tf.minimum(h, w), tf.float32), tf.int32)
    crop = tf.image.crop_to_bounding_box(decoded, (h - side + 1) // 2, (w - side + 1) // 2, side, side)
    expected = tf.compat.v1.image.resize_bilinear(crop[None], [size, size])[0].numpy()

    ours = preprocess(load_image(path), size)
    assert ours.shape == (size, size, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_load_image_reads_png_and_jpeg_as_rgb(tmp_path):
    from PIL import Image

    gray = np.full((10, 12), 200, np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.jpg")
    image = load_image(tmp_path / "g.jpg")
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8
    assert abs(int(image.mean()) - 200) <= 2


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d / "absent.jpg", "does not exist"),
    (lambda d: (d / "notes.jpg").write_text("not an image") and d / "notes.jpg", "is not an image"),
    (lambda d: d, "is not a file"),
])
def test_bad_image_files_are_user_errors(tmp_path, make, fragment):
    with pytest.raises(UserError, match=fragment):
        load_image(make(tmp_path))


def test_list_images_is_recursive_sorted_and_complains_when_empty(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint8)
    save_png(tmp_path / "b" / "2.png", pixels)
    save_png(tmp_path / "a" / "deep" / "1.PNG", pixels)
    (tmp_path / "a" / "readme.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a/deep/1.PNG", "b/2.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist"):
        list_images(tmp_path / "missing")
