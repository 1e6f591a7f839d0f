"""docs/guides/photos-to-coral.md, run as written: every ```bash block of the page, in order.

The commands are read from the page itself, so the page cannot drift from what works. They run in a
directory holding what the page assumes the reader has, in miniature: `parts/train/<class>/` and
`parts/val/<class>/` (5 classes of generated images) and `efficientnet-edgetpu-S/`, a stand-in for the
released TF1 checkpoint (a tiny EdgeTPU-shaped model in the release's layout, as tests/test_checkpoints.py
makes). Only sizes change, with the overrides the page documents: the search gets a tiny skeleton, a
32 px one-epoch proxy and 2 trials (`--set ...`), training one epoch (`--epochs 1`), and the fine-tuning
names the stand-in's spec (`--spec tiny-edgetpu.yaml`) where the page names S. Blocks marked "needs
edgetpu_compiler" run only where the compiler is installed.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from tests.export_helpers import released_layout, tiny_spec, write_tf1_checkpoint

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "photos-to-coral.md"
CLASSES = ("bolt", "gear", "nut", "spring", "washer")
MARKER = re.compile(r"<!-- guide-test: (run|needs edgetpu_compiler) -->\n```bash\n(.*?)```", re.DOTALL)
TINY_SEARCH = ("--set search_space.skeleton=tiny-skeleton.yaml --set proxy.resolution=32 --set proxy.epochs=1 "
               "--set run.trials=2 --set controller.batch_size=2 --set execution.max_concurrent=1")


def page_commands() -> list[tuple[str, str]]:
    """(marker, command) for every line of every marked ```bash block, in page order."""
    text = PAGE.read_text()
    assert text.count("```bash") == len(MARKER.findall(text)), "a ```bash block of the page has no guide-test marker"
    return [(kind, line.strip()) for kind, block in MARKER.findall(text)
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def miniature(command: str) -> list[str]:
    """The page's command with the documented size overrides."""
    if command.startswith("nas search"):
        command += " " + TINY_SEARCH
    if command.startswith("nas train"):
        command = command.replace("--model efficientnet-edgetpu-S", "--spec tiny-edgetpu.yaml") + " --epochs 1"
    return shlex.split(command)[1:]  # without "nas"


def write_images(root: Path, per_class: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (48, 64, 3)).astype(np.uint8)
            pixels[..., c % 3] += np.uint8(120 + 30 * (c // 3))  # each class its own tint
            Image.fromarray(pixels).save(root / name / f"{i}.png")


@pytest.fixture
def reader_folder(tmp_path, monkeypatch):
    from search_space.builder import build_model

    write_images(tmp_path / "parts" / "train", 8, seed=0)
    write_images(tmp_path / "parts" / "val", 3, seed=1)
    reference = build_model(dataclasses.replace(tiny_spec(), fused_stride_on="project"), seed=1, drop_connect=False)
    write_tf1_checkpoint(tmp_path / "efficientnet-edgetpu-S", *released_layout(reference))
    (tmp_path / "tiny-edgetpu.yaml").write_text(tiny_spec().to_yaml())
    (tmp_path / "tiny-skeleton.yaml").write_text(
        dataclasses.replace(tiny_spec(), name="tiny-skeleton", num_classes=5, include_background=False).to_yaml())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_page_lists_the_whole_path():
    commands = [c for _, c in page_commands()]
    verbs = [" ".join(c.split()[:2]) for c in commands]
    assert verbs == ["nas search", "nas search", "nas scale", "nas train", "nas train", "nas export", "nas export",
                     "nas export", "nas export", "nas eval", "nas eval", "nas compare"]
    assert "--init-from efficientnet-edgetpu-S" in commands[4]  # the fair comparison: S from its checkpoint


def test_the_guide_runs_as_written(reader_folder, capsys):
    outputs = []
    for kind, command in page_commands():
        if kind == "needs edgetpu_compiler" and shutil.which("edgetpu_compiler") is None:
            continue
        try:
            code = main(miniature(command))
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        assert code == 0, f"'{command}' failed: {out.err[-2000:]}"
        outputs.append((command, out.out))

    folder = reader_folder
    assert (folder / "runs/photos/best.yaml").is_file() and list((folder / "scaled/photos").glob("*.yaml"))
    assert (folder / "searched_int8.tflite").is_file() and (folder / "s_int8.tflite").is_file()
    evals = [out for command, out in outputs if command.startswith("nas eval")]
    assert all(f"{len(CLASSES) * 3} images of {len(CLASSES)} classes" in out for out in evals), evals
    command, table = outputs[-1]
    assert command.startswith("nas compare")
    rows = [line.split() for line in table.splitlines() if line.startswith(("searched_int8", "s_int8"))]
    assert [row[0] for row in rows] == ["searched_int8.tflite", "s_int8.tflite"], table
    for row in rows:  # input, images, top-1 %, predicted ms, size, host ops
        assert row[1:3] == ["32", "px"] and int(row[3]) == len(CLASSES) * 3
        assert 0 <= float(row[4]) <= 100 and float(row[5]) > 0 and int(row[6]) >= 0
    assert "Edge TPU ms (predicted)" in table
