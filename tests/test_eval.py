"""`nas eval`: labels maps, the reference's top-5 printout (background shift included), data-set
accuracy with progress, from checkpoints and .tflite files; mistakes as one line, exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nas.deploy.checkpoints import save_checkpoint
from nas.deploy.evaluate import format_top5, labelled_directory, read_labels_map, softmax
from search_space import UserError
from search_space.builder import build_model
from tests.cli_helpers import assert_one_line_error
from tests.cli_helpers import run_cli as nas
from tests.export_helpers import save_png, tiny_spec


def fixed_output_checkpoint(directory, spec, bias):
    """A checkpoint whose logits are `bias` whatever the image: the dense kernel is zero."""
    model = build_model(spec, seed=0, drop_connect=False)
    dense = model.get_layer("head.dense")
    kernel, _ = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), np.asarray(bias, np.float32)])
    return save_checkpoint(model, spec, directory)


# Labels maps -------------------------------------------------------------------------------------


def test_labels_map_formats(tmp_path):
    (tmp_path / "ref.txt").write_text(json.dumps({"1": "goldfish", "0": "tench", "2": "shark"}))
    assert read_labels_map(tmp_path / "ref.txt") == ["tench", "goldfish", "shark"]
    (tmp_path / "list.json").write_text('["a", "b"]')
    assert read_labels_map(tmp_path / "list.json") == ["a", "b"]
    (tmp_path / "lines.txt").write_text("tench, Tinca tinca\ngoldfish\n\n")
    assert read_labels_map(tmp_path / "lines.txt") == ["tench, Tinca tinca", "goldfish"]
    (tmp_path / "gap.txt").write_text(json.dumps({"0": "a", "2": "c"}))
    with pytest.raises(UserError, match="indices 0..1"):
        read_labels_map(tmp_path / "gap.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        read_labels_map(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="does not exist"):
        read_labels_map(tmp_path / "absent.txt")


def test_top5_printout_shifts_past_the_background_class():
    probs = np.array([0.30, 0.01, 0.05, 0.40, 0.20, 0.04])
    labels = ["cat", "dog", "eel", "fox", "gnu"]
    assert format_top5("x.jpg", probs, labels, offset=1) == [
        "predicted class for image x.jpg:",
        "  -> top_0 (40.00%): eel",
        "  -> top_1 (30.00%): background",
        "  -> top_2 (20.00%): fox",
        "  -> top_3 (5.00%): dog",
        "  -> top_4 (4.00%): gnu",
    ]


# Top 5 of an image through the CLI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """A 1001-output model (output 0 = background) with known logits, a 1000-line labels map, an image."""
    root = tmp_path_factory.mktemp("imagenet_like")
    spec = tiny_spec(num_classes=1001, head_filters=16)
    bias = np.zeros(1001, np.float32)
    bias[[419, 11, 1000, 0, 2]] = [6.0, 5.0, 4.0, 3.0, 2.5]  # outputs; labels are one lower
    ckpt = fixed_output_checkpoint(root / "ckpt", spec, bias)
    labels = root / "labels_map.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(1000)))
    image = save_png(root / "panda.png", np.random.default_rng(0).integers(0, 256, (60, 80, 3)))
    return ckpt, labels, image, softmax(bias.astype(np.float64))


def expected_top5(image, probs):
    p = [probs[i] * 100 for i in (419, 11, 1000, 0, 2)]
    return (f"predicted class for image {image}:\n"
            f"  -> top_0 ({p[0]:4.2f}%): class 418\n"
            f"  -> top_1 ({p[1]:4.2f}%): class 10\n"
            f"  -> top_2 ({p[2]:4.2f}%): class 999\n"
            f"  -> top_3 ({p[3]:4.2f}%): background\n"
            f"  -> top_4 ({p[4]:4.2f}%): class 1\n")


def test_top5_from_a_checkpoint_with_include_background_label(imagenet_like, capsys):
    ckpt, labels, image, probs = imagenet_like
    code, out, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image, "--labels-map", labels,
                         "--include-background-label")
    assert code == 0, err
    assert out.endswith(expected_top5(image, probs))


def test_top5_from_an_int8_tflite_file(imagenet_like, tmp_path, capsys):
    ckpt, labels, image, probs = imagenet_like
    code, _, err = nas(capsys, "export", "--ckpt", ckpt, "--output-tflite", tmp_path / "q.tflite",
                       "--num-calibration", "8")
    assert code == 0, err
    code, out, err = nas(capsys, "eval", "--tflite", tmp_path / "q.tflite", "--image", image, image,
                         "--labels-map", labels, "--include-background-label")
    assert code == 0, err
    assert f"(recorded in '{tmp_path / 'q.preprocessing.yaml'}')" in out  # export wrote how to prepare its input
    blocks = out.split("predicted class for image ")[1:]
    assert len(blocks) == 2
    lines = blocks[0].splitlines()
    # uint8 probabilities step by 1/256: the order survives, the values within a step.
    assert [line.split(": ", 1)[1] for line in lines[1:]] == ["class 418", "class 10", "class 999", "background",
                                                             "class 1"]
    assert abs(float(lines[1].split("(")[1].split("%")[0]) - probs[419] * 100) < 100 / 256


def test_labels_map_of_the_wrong_length(imagenet_like, tmp_path, capsys):
    ckpt, labels, image, _ = imagenet_like
    # The checkpoint's spec says output 0 is the background: 1000 labels fit without the flag.
    code, out, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image, "--labels-map", labels)
    assert code == 0, err
    code, flagged, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image, "--labels-map", labels,
                             "--include-background-label")
    assert out == flagged
    (tmp_path / "999.txt").write_text("".join(f"c{i}\n" for i in range(999)))
    code, _, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image, "--labels-map", tmp_path / "999.txt")
    assert_one_line_error(code, err, "has 999 labels but the model has 1001 outputs",
                          "with --include-background-label")
    (tmp_path / "short.txt").write_text("a\nb\n")
    code, _, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image, "--labels-map", tmp_path / "short.txt",
                       "--include-background-label")
    assert_one_line_error(code, err, "has 2 labels", "it needs 1000 with --include-background-label")


@pytest.mark.parametrize("make, fragment", [
    (lambda d, image: [d / "missing.jpg"], "does not exist"),
    (lambda d, image: [image, (d / "t.png").write_text("text") and d / "t.png"], "is not an image"),
])
def test_bad_images(imagenet_like, tmp_path, capsys, make, fragment):
    ckpt, labels, image, _ = imagenet_like
    code, out, err = nas(capsys, "eval", "--ckpt", ckpt, "--labels-map", labels, "--include-background-label",
                         "--image", *make(tmp_path, image))
    assert_one_line_error(code, err, fragment)
    assert "predicted class" not in out


def test_eval_mistakes(imagenet_like, tmp_path, capsys):
    ckpt, labels, image, _ = imagenet_like
    code, _, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", image)
    assert_one_line_error(code, err, "--image needs class names: --labels-map FILE")
    # A missing image is named before the missing labels are.
    code, _, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", tmp_path / "nope.jpg")
    assert_one_line_error(code, err, "nope.jpg' does not exist")
    code, _, err = nas(capsys, "eval", "--model", "efficientnet-edgetpu-S", "--image", image, "--labels-map", labels)
    assert_one_line_error(code, err, "nothing to evaluate", "--ckpt", "--tflite")
    (tmp_path / "bad.tflite").write_bytes(b"\0" * 64)
    code, _, err = nas(capsys, "eval", "--tflite", tmp_path / "bad.tflite", "--offline")
    assert_one_line_error(code, err, "is not a TFLite model")


# Data-set evaluation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory):
    """12 PNG digits of each class 0..9 under <root>/<class>/, and a checkpoint that always ranks
    the classes 3, 7, 1, 0, 9 first (outputs one higher: output 0 is the background)."""
    from nas.data.offline import load_offline

    root = tmp_path_factory.mktemp("digits")
    images, labels = load_offline(48, "all")
    for c in range(10):
        for k, i in enumerate(np.flatnonzero(labels == c)[:12]):
            save_png(root / "tree" / str(c) / f"{k}.png", images[i])
    bias = np.zeros(11, np.float32)
    bias[[4, 8, 2, 1, 10]] = [5.0, 4.0, 3.0, 2.0, 1.0]
    ckpt = fixed_output_checkpoint(root / "ckpt", tiny_spec(), bias)
    return root / "tree", ckpt


def test_data_set_top1_top5_with_progress(digits_tree, capsys):
    tree, ckpt = digits_tree
    code, out, err = nas(capsys, "eval", "--ckpt", ckpt, "--data-dir", tree, "--include-background-label")
    assert code == 0, err
    assert "evaluating 120 images of 10 classes" in out and "folder names are class indices" in out
    # Every image is predicted 3, then 7, 1, 0, 9: top-1 is class 3's share, top-5 five classes' share.
    assert "Step 0: top1_acc = 0.00%  top5_acc = 100.00%" in out  # image 0 is a 0: in the top 5 only
    assert "Step 100: " in out
    assert out.strip().splitlines()[-1] == "Final: top1_acc = 10.00%  top5_acc = 50.00%"

    code, out, _ = nas(capsys, "eval", "--ckpt", ckpt, "--data-dir", tree, "--num-images", "30")
    # Without the shift the model "predicts" 4, 8, 2, 1, 10: top-5 covers classes 1, 2, 4, 8 only.
    assert "evaluating 30 images" in out and out.strip().splitlines()[-1].startswith("Final: ")


def test_class_folders_by_label_or_sorted_name(tmp_path):
    for name in ("zebra", "ant", "cat"):
        save_png(tmp_path / name / "a.png", np.zeros((4, 4, 3)))
    labels = ["cat", "zebra", "ant"]
    by_label = labelled_directory(tmp_path, labels)
    assert [p.parent.name for p in by_label.paths] == ["ant", "cat", "zebra"]
    assert by_label.targets.tolist() == [2, 0, 1]
    assert labelled_directory(tmp_path).targets.tolist() == [0, 1, 2]
    with pytest.raises(UserError, match="'zebra'.*neither class indices nor labels"):
        labelled_directory(tmp_path, ["cat", "ant"])


# A checkpoint with non-trivial weights: outputs depend on the image -----------------------------


def varied_checkpoint(directory, spec):
    """Random non-zero weights with a dense kernel scaled up, so that the logits spread over several
    units and differ from image to image: checkpoint and TFLite agree only if preprocessing,
    weights and conversion all do."""
    model = build_model(spec, seed=7, drop_connect=False)
    dense = model.get_layer("head.dense")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 40.0, bias])
    return model, save_checkpoint(model, spec, directory)


def reference_input(path, size, mean=127.0, std=128.0):
    """The reference's evaluation preprocessing written out independently of nas.deploy.preprocessing:
    PIL decode, the padded centre crop `int(size / (size + 32) * min(h, w))` with offsets
    `((h - crop) + 1) // 2`, TF1's legacy bilinear resize, then `(x - mean) / std`."""
    import tensorflow as tf
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    h, w = pixels.shape[:2]
    crop = int((size / (size + 32)) * min(h, w))
    top, left = ((h - crop) + 1) // 2, ((w - crop) + 1) // 2
    window = tf.constant(pixels[top:top + crop, left:left + crop][None], tf.float32)
    resized = tf.compat.v1.image.resize_bilinear(window, [size, size], align_corners=False)[0].numpy()
    return (resized - mean) / std


def top1_lines(out):
    """(label, percent) of each image's top_0 line, in order."""
    found = []
    for line in out.splitlines():
        if "-> top_0 (" in line:
            percent, label = line.split("(", 1)[1].split("%): ", 1)
            found.append((label, float(percent)))
    return found


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """The varied checkpoint, 20 photographs-in-miniature (offline digits upscaled by PIL to 57 x 73 and
    61 x 45, so cropping and resizing matter), a labels map, and the reference probabilities."""
    from PIL import Image

    from nas.data.offline import load_offline

    root = tmp_path_factory.mktemp("varied")
    spec = tiny_spec()
    model, ckpt = varied_checkpoint(root / "ckpt", spec)
    images, _ = load_offline(32, "val")
    paths = []
    for k in range(20):
        size = (73, 57) if k % 2 else (45, 61)  # PIL sizes are (width, height)
        picture = Image.fromarray(images[k * 7]).resize(size, Image.BICUBIC)
        paths.append(save_png(root / "images" / f"{k:02d}.png", np.asarray(picture)))
    labels = root / "labels.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    batch = np.stack([reference_input(p, spec.resolution) for p in paths]).astype(np.float32)
    probs = softmax(np.asarray(model(batch, training=False), np.float64))
    return ckpt, labels, paths, probs


def test_varied_checkpoint_is_not_constant(varied):
    *_, probs = varied
    assert len(set(probs.argmax(axis=1))) >= 3  # the images do not all get one class
    assert probs.max(axis=1).min() < 0.95 and probs.max(axis=1).max() > 0.3


def test_checkpoint_eval_equals_the_reference_preprocessing_and_keras(varied, capsys):
    ckpt, labels, paths, probs = varied
    code, out, err = nas(capsys, "eval", "--ckpt", ckpt, "--image", *paths, "--labels-map", labels,
                         "--include-background-label")
    assert code == 0, err
    expected = [(("background" if i == 0 else f"digit {i - 1}"), 100 * p[i]) for p, i in zip(probs, probs.argmax(1))]
    found = top1_lines(out)
    assert [label for label, _ in found] == [label for label, _ in expected]
    assert [percent for _, percent in found] == pytest.approx([percent for _, percent in expected], abs=0.006)


def test_float_and_int8_tflite_agree_with_the_checkpoint_on_real_images(varied, tmp_path, capsys):
    ckpt, labels, paths, probs = varied
    reference = [(("background" if i == 0 else f"digit {i - 1}"), 100 * p[i]) for p, i in zip(probs, probs.argmax(1))]
    for flags, name in ((["--no-quantize"], "f.tflite"), ([], "q.tflite")):
        code, _, err = nas(capsys, "export", "--ckpt", ckpt, *flags, "--output-tflite", tmp_path / name,
                           "--data-dir", paths[0].parent, "--num-calibration", "20")
        assert code == 0, err
        code, out, err = nas(capsys, "eval", "--tflite", tmp_path / name, "--image", *paths, "--labels-map", labels,
                             "--include-background-label")
        assert code == 0, err
        found = top1_lines(out)
        if flags:  # float: the same numbers as Keras up to float reassociation
            assert [label for label, _ in found] == [label for label, _ in reference]
            assert [p for _, p in found] == pytest.approx([p for _, p in reference], abs=0.02)
        else:  # int8: top-1 agrees wherever Keras's top-1 is clear, probabilities within a few uint8 steps
            clear = [k for k, p in enumerate(probs) if np.sort(p)[-1] - np.sort(p)[-2] > 0.1]
            assert len(clear) >= 10
            assert [found[k][0] for k in clear] == [reference[k][0] for k in clear]
            assert max(abs(found[k][1] - reference[k][1]) for k in clear) < 8.0  # points of %


def test_offline_digits_through_tflite_and_checkpoint_agree(tmp_path, capsys):
    _, ckpt = varied_checkpoint(tmp_path / "ckpt", tiny_spec())
    code, _, err = nas(capsys, "export", "--ckpt", ckpt, "--no-quantize", "--output-tflite", tmp_path / "f.tflite")
    assert code == 0, err
    finals = []
    for source in (["--ckpt", ckpt], ["--tflite", tmp_path / "f.tflite"]):
        code, out, err = nas(capsys, "eval", *source, "--offline", "--include-background-label")
        assert code == 0, err
        assert "validation split" in out
        finals.append(out.strip().splitlines()[-1])
    # The same accuracies from a model whose predictions depend on the image (not a constant output).
    assert finals[0] == finals[1] and finals[0].startswith("Final: top1_acc = ")
    assert finals[0] != "Final: top1_acc = 10.00%  top5_acc = 50.00%"
