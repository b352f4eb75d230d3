"""Outputs that must not clobber files (issue #17, items H and I).

H: ``demo.py`` gives every output file a distinct name (inputs sharing a
stem keep their extension), reports the true number of files written, warns
when it replaces files of an earlier run and refuses to replace an input.
I: the synthetic dataset generator writes only into a new or empty folder or
one it wrote before; ``train.py`` on a data root holding other files exits 1
with one ``error:`` line and leaves the files untouched.

The entry points run as subprocesses, as a user runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, subprocess_env, train_cmd

from hybrik_jax.data import synthetic
from hybrik_jax.demo import outputs

USER_JPEG = b"\xff\xd8 the user's own image, not the generator's \xff\xd9"


def _snapshot(root: Path) -> dict[str, bytes | None]:
  """relative path -> file bytes (None for a folder), for all of ``root``."""
  return {
    str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
    for p in sorted(root.rglob("*"))
  }


def _run(argv, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run(
    argv,
    capture_output=True,
    text=True,
    cwd=REPO,
    env=subprocess_env(),
    timeout=timeout,
    check=False,
  )


# ----------------------------------------------------------------------------
# H: demo outputs.


def test_output_names_are_unique():
  def names(*files):
    return outputs.output_names([Path("in") / f for f in files])

  assert names("b.jpg", "c.png") == ["b", "c"]  # no clash: today's names
  assert names("a.jpg", "a.png", "b.jpg") == ["a_jpg", "a_png", "b"]
  # Case-insensitive file systems would merge A.* and a.*.
  assert names("A.jpg", "a.png") == ["A_jpg", "a_png"]
  # A derived name that another input already has gets a counter.
  assert names("a.jpg", "a.png", "a_jpg.png") == ["a_jpg", "a_png", "a_jpg_2"]
  assert names("a.jpg", "a_jpg.png", "a.png", "a_jpg_2.png") == [
    "a_jpg",
    "a_jpg_3",
    "a_png",
    "a_jpg_2",
  ]


def _demo_cmd(run_dir, input_path, out) -> list[str]:
  return [
    sys.executable,
    str(REPO / "demo.py"),
    "--checkpoint",
    str(run_dir),
    "--input",
    str(input_path),
    "--out",
    str(out),
    "--batch-size=2",
    "--no-progress",
  ]


def test_demo_same_stem_inputs_and_rerun_subprocess(
  synthetic_dir, tiny_run_dir, tmp_path
):
  """a.jpg + a.png give 6 distinct files ("wrote 6 files"); a second run
  into the same --out replaces them with one warning naming the count;
  nothing outside --out changes."""
  imgs = tmp_path / "imgs"
  imgs.mkdir()
  src = synthetic_dir / "images"
  (imgs / "a.jpg").write_bytes((src / "000000.jpg").read_bytes())
  cv2.imwrite(str(imgs / "a.png"), cv2.imread(str(src / "000001.jpg")))
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("kept")  # a file the demo does not write
  before = _snapshot(tmp_path)
  want = {
    f"a_{ext}{suffix}"
    for ext in ("jpg", "png")
    for suffix in ("_overlay.png", ".obj", ".npz")
  }

  proc = _run(_demo_cmd(tiny_run_dir, imgs, out))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"wrote 6 files to {out}\n" in proc.stdout, proc.stdout
  assert "replacing" not in proc.stderr and "Traceback" not in proc.stderr
  after = _snapshot(tmp_path)
  added = {k for k in after if k not in before}
  assert added == {f"out/{n}" for n in want}
  assert {k: after[k] for k in before} == before  # inputs, notes.txt intact
  # Two different images, two different overlays.
  assert after["out/a_jpg_overlay.png"] != after["out/a_png_overlay.png"]

  # Again into the same --out: the same 6 files, replaced with a warning.
  proc = _run(_demo_cmd(tiny_run_dir, imgs, out))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (
    f"warning: replacing 6 existing file(s) in {out} (a_jpg_overlay.png, "
    "...); use another --out to keep them"
  ) in proc.stderr.splitlines(), proc.stderr
  assert f"wrote 6 files to {out} (6 replaced)\n" in proc.stdout, proc.stdout
  again = _snapshot(tmp_path)
  assert set(again) == set(after)
  assert {k: again[k] for k in before} == before


def test_demo_refuses_to_replace_an_input_subprocess(tmp_path):
  """--out = the input folder, where a.png's overlay name is an input:
  exit 1, one error line, nothing written (fails before the model loads)."""
  imgs = tmp_path / "imgs"
  imgs.mkdir()
  pixels = np.full((8, 8, 3), 128, np.uint8)
  cv2.imwrite(str(imgs / "a.png"), pixels)
  cv2.imwrite(str(imgs / "a_overlay.png"), pixels)
  ckpt = tmp_path / "ckpt"
  ckpt.mkdir()
  before = _snapshot(tmp_path)
  proc = _run(_demo_cmd(ckpt, imgs, imgs), timeout=300)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: output {imgs / 'a_overlay.png'} would replace the input of the "
    "same name; choose another --out"
  )
  assert "Traceback" not in proc.stderr
  assert _snapshot(tmp_path) == before


# ----------------------------------------------------------------------------
# I: the synthetic generator's output folder.


def _tiny(folder, **kw):
  return synthetic.generate(
    folder, num=2, num_test=1, image_size=(48, 64), progress=False, **kw
  )


def _occupied(root: Path) -> Path:
  """A folder holding a user's images/000001.jpg and notes.txt."""
  (root / "images").mkdir(parents=True)
  (root / "images" / "000001.jpg").write_bytes(USER_JPEG)
  (root / "notes.txt").write_text("mine")
  return root


def test_generate_refuses_a_folder_with_other_files(tmp_path, capsys):
  data = _occupied(tmp_path / "data")
  before = _snapshot(tmp_path)
  want = (
    f"refusing to generate the synthetic dataset into {data}: it holds "
    "files that this generator did not write (notes.txt, "
    "images/000001.jpg); point config.data.root (or --out) at an empty or new folder"
  )
  with pytest.raises(synthetic.OccupiedFolderError) as err:
    _tiny(data)
  assert str(err.value) == want
  assert isinstance(err.value, ValueError)
  assert _snapshot(tmp_path) == before
  # The command-line generator: exit status 1, one error line.
  assert synthetic.main(["--out", str(data), "--num=2", "--no-progress"]) == 2
  assert capsys.readouterr().err.strip() == f"error: {want}"
  assert _snapshot(tmp_path) == before
  # More than 3 foreign files: the first 3 (top level first) and "...".
  for k in range(3):
    (data / f"z{k}.txt").write_text("x")
  with pytest.raises(
    synthetic.OccupiedFolderError,
    match=r"\(notes.txt, z0.txt, z1.txt, \.\.\.\)",
  ):
    _tiny(data)
  # A file where the folder should be.
  (tmp_path / "file").write_text("x")
  with pytest.raises(synthetic.OccupiedFolderError, match="not a folder"):
    _tiny(tmp_path / "file")


def test_generate_accepts_new_empty_and_own_folders(tmp_path):
  _tiny(tmp_path / "new" / "deeper")  # created
  (tmp_path / "empty" / "images").mkdir(parents=True)  # no files
  _tiny(tmp_path / "empty")
  own = tmp_path / "empty"
  assert (own / synthetic.MARKER_NAME).is_file()
  first = _snapshot(own)
  _tiny(own)  # a folder it wrote: regenerated, identical apart from timing
  again = _snapshot(own)
  assert set(again) == set(first)
  for name, data in first.items():
    if name != "synthetic_info.json":
      assert again[name] == data, name
  # Interrupted before the annotations: the marker is already there.
  (own / "synthetic_train.npz").unlink()
  (own / "synthetic_info.json").unlink()
  _tiny(own)
  # Generated before the marker existed: recognised by synthetic_info.json.
  (own / synthetic.MARKER_NAME).unlink()
  _tiny(own)
  assert synthetic.is_generated_folder(own)


def test_train_refuses_an_occupied_data_root_subprocess(tmp_path):
  data = _occupied(tmp_path / "data")
  before = _snapshot(tmp_path)
  proc = _run(
    train_cmd(
      tmp_path / "work",
      data,
      tmp_path / "xla",
      "--config.model.image_size=64",
      "--config.per_device_batch_size=2",
      "--config.data.synthetic.num_train=8",
      "--config.data.synthetic.num_test=4",
      "--config.max_steps=1",
    ),
    timeout=300,
  )
  assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: refusing to generate the synthetic dataset into {data}: it "
    "holds files that this generator did not write (notes.txt, "
    "images/000001.jpg); point config.data.root (or --out) at an empty or new folder"
  )
  assert "Traceback" not in proc.stderr
  assert (data / "images" / "000001.jpg").read_bytes() == USER_JPEG
  # Unchanged but for the (empty) --workdir train.py creates first.
  assert _snapshot(tmp_path) == {**before, "work": None}
