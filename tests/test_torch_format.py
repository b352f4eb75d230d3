"""Tests for hybrik_jax.interop.torch_format (torch-free reader of torch.save files)."""

from __future__ import annotations

import collections
import pickle
import zipfile

import numpy as np
import pytest
import torch_writer as tw
from helpers import FIXTURES, golden

from hybrik_jax import safe_pickle
from hybrik_jax.interop.torch_format import (
  CheckpointFormatError,
  load_torch_checkpoint,
)

SAMPLE = FIXTURES / "torch_format_sample.pth"
SAMPLE_PREFIX = "torch_format_sample/"


@pytest.fixture(scope="module")
def sample():
  return load_torch_checkpoint(SAMPLE)


@pytest.fixture(scope="module")
def expected():
  return golden("torch_format_sample_expected.npz")


# -----------------------------------------------------------------------------
# The real torch.save fixture.
# -----------------------------------------------------------------------------


def test_sample_container(sample):
  assert list(sample) == ["meta", "state_dict", "optimizer"]
  assert sample["meta"] == {
    "epoch": 3,
    "mmhuman3d_version": "0.11.0",
    "note": "format sample",
  }
  assert isinstance(sample["state_dict"], collections.OrderedDict)
  assert sample["optimizer"] == {"state": {}, "param_groups": [{"lr": 0.001}]}


def test_sample_tensors_exact(sample, expected):
  state_dict = sample["state_dict"]
  assert list(state_dict) == list(expected)
  want_dtypes = {
    "backbone.conv1.weight": np.float32,
    "backbone.bn1.weight": np.float32,
    "backbone.bn1.num_batches_tracked": np.int64,
    "head.fc1.weight": np.float32,
    "head.fc1.bias": np.float32,
    "head.half": np.float16,
    "smpl.faces_tensor": np.int64,
  }
  for key, want in expected.items():
    got = state_dict[key]
    assert got.dtype == want_dtypes[key], key
    assert got.shape == want.shape, key
    assert got.flags.c_contiguous, key
    # float16 -> float32 is exact, so exact equality holds for every tensor.
    np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=key)


def test_sample_special_layouts(sample, expected):
  state_dict = sample["state_dict"]
  # 0-d int64 tensor.
  assert state_dict["backbone.bn1.num_batches_tracked"].shape == ()
  assert state_dict["backbone.bn1.num_batches_tracked"].ndim == 0
  # head.fc1.weight is stored transposed (stride (1, 5)) and head.fc1.bias
  # lives in the same storage at offset 5: the storage is weight.T.ravel().
  storage = expected["head.fc1.weight"].T.ravel()
  np.testing.assert_array_equal(state_dict["head.fc1.bias"], storage[5:10])
  # Arrays are independent, writeable copies of the shared storage.
  assert not np.shares_memory(
    state_dict["head.fc1.bias"], state_dict["head.fc1.weight"]
  )
  assert state_dict["head.fc1.weight"].flags.writeable


def test_writer_reproduces_torch_save_bytes(expected):
  """tests/torch_writer.py writes torch's data.pkl byte for byte."""
  tensor = tw.Tensor
  shared = tw.Storage(expected["head.fc1.weight"].T.ravel())
  state_dict = collections.OrderedDict(
    [
      ("backbone.conv1.weight", tensor.of(expected["backbone.conv1.weight"])),
      ("backbone.bn1.weight", tensor.of(expected["backbone.bn1.weight"])),
      (
        "backbone.bn1.num_batches_tracked",
        tensor.of(expected["backbone.bn1.num_batches_tracked"]),
      ),
      ("head.fc1.weight", tensor(shared, 0, (5, 6), (1, 5))),
      ("head.fc1.bias", tensor(shared, 5, (5,), (1,))),
      ("head.half", tensor.of(expected["head.half"].astype(np.float16))),
      ("smpl.faces_tensor", tensor.of(expected["smpl.faces_tensor"])),
    ]
  )
  obj = {
    "meta": {
      "epoch": 3,
      "mmhuman3d_version": "0.11.0",
      "note": "format sample",
    },
    "state_dict": state_dict,
    "optimizer": {"state": {}, "param_groups": [{"lr": 0.001}]},
  }
  data_pkl, storages = tw.dumps_data_pkl(obj)
  with zipfile.ZipFile(SAMPLE) as zf:
    assert data_pkl == zf.read(SAMPLE_PREFIX + "data.pkl")
    assert [k for k, _ in storages] == ["0", "1", "2", "3", "4", "5"]
    for key, storage in storages:
      assert storage.flat.tobytes() == zf.read(f"{SAMPLE_PREFIX}data/{key}")


# -----------------------------------------------------------------------------
# Round trips through the test writer.
# -----------------------------------------------------------------------------


def test_round_trip_dtypes_and_views(tmp_path):
  rng = np.random.default_rng(0)
  base = rng.normal(size=(24,)).astype(np.float32)
  storage = tw.Storage(base)
  obj = {
    "f64": rng.normal(size=(2, 3)),
    "f32": rng.normal(size=(3, 4, 5)).astype(np.float32),
    "f16": rng.normal(size=(7,)).astype(np.float16),
    "i64": np.arange(-5, 7, dtype=np.int64).reshape(3, 4),
    "i32": np.arange(6, dtype=np.int32),
    "i16": np.arange(-3, 3, dtype=np.int16),
    "i8": np.arange(-3, 3, dtype=np.int8),
    "u8": np.arange(250, 256, dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(2.5, np.float32),
    "empty": np.zeros((0, 3), np.float32),
    "transposed": tw.Tensor(storage, 0, (4, 6), (1, 4)),
    "offset": tw.Tensor(storage, 10, (2, 3), (3, 1)),
    "broadcast": tw.Tensor(storage, 2, (3, 2), (0, 1)),
    "nested": [{"x": np.ones(2, np.float32)}, (1, "a")],
  }
  path = tmp_path / "ckpt.pth"
  tw.save(obj, path)
  got = load_torch_checkpoint(path)
  for key in (
    "f64",
    "f32",
    "f16",
    "i64",
    "i32",
    "i16",
    "i8",
    "u8",
    "bool",
    "scalar",
    "empty",
  ):
    assert got[key].dtype == obj[key].dtype, key
    assert got[key].shape == obj[key].shape, key
    np.testing.assert_array_equal(got[key], obj[key], err_msg=key)
  np.testing.assert_array_equal(got["transposed"], base.reshape(6, 4).T)
  np.testing.assert_array_equal(got["offset"], base[10:16].reshape(2, 3))
  np.testing.assert_array_equal(
    got["broadcast"], np.broadcast_to(base[2:4], (3, 2))
  )
  assert got["transposed"].flags.c_contiguous
  np.testing.assert_array_equal(got["nested"][0]["x"], np.ones(2))
  assert got["nested"][1] == (1, "a")


def test_bfloat16_and_big_endian(tmp_path):
  values = np.array([1.0, -2.5, 3.140625, 1e-3], np.float32)
  bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # truncate to bf16
  want = (bits.astype(np.uint32) << 16).view(np.float32)
  path = tmp_path / "bf16.pth"
  tw.save(
    {"w": tw.Tensor(tw.Storage(bits, "BFloat16Storage"), 0, (4,), (1,))}, path
  )
  got = load_torch_checkpoint(path)["w"]
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, want)
  assert got[0] == 1.0 and got[1] == -2.5 and got[2] == 3.140625

  path = tmp_path / "big.pth"
  obj = {
    "a": np.arange(6, dtype=np.int64).reshape(2, 3) - 2,
    "b": np.linspace(-1, 1, 5).astype(np.float32),
  }
  tw.save(obj, path, byteorder="big")
  got = load_torch_checkpoint(path)
  for key in obj:
    assert got[key].dtype.isnative
    np.testing.assert_array_equal(got[key], obj[key])


def test_state_dict_metadata_attribute(tmp_path):
  """state_dict() OrderedDicts carry `_metadata` (pickled via BUILD)."""
  state_dict = collections.OrderedDict(w=np.ones(3, np.float32))
  state_dict._metadata = collections.OrderedDict([("", {"version": 1})])
  path = tmp_path / "meta.pth"
  tw.save({"state_dict": state_dict}, path)
  got = load_torch_checkpoint(path)["state_dict"]
  assert list(got) == ["w"]
  metadata = got._metadata  # pylint: disable=protected-access
  assert metadata == {"": {"version": 1}}


def test_meta_numpy_scalars(tmp_path):
  """mmcv `meta` may hold numpy scalars (e.g. best scores)."""
  path = tmp_path / "np.pth"
  tw.save({"meta": {"best": np.float64(41.5), "n": np.int64(7)}}, path)
  got = load_torch_checkpoint(path)["meta"]
  assert got == {"best": 41.5, "n": 7}
  assert isinstance(got["best"], np.float64)


def test_rebuild_v3_untyped_storage_and_parameter(tmp_path):
  """_rebuild_tensor_v3 on an UntypedStorage (byte counts) and Parameters."""
  values = np.arange(6, dtype=np.float32) * 0.5
  raw = tw.Storage(values.view(np.uint8), "UntypedStorage")
  v3 = tw.Call(
    tw.Global("torch._utils", "_rebuild_tensor_v3"),
    raw,
    2,
    (2, 2),
    (1, 2),
    False,
    collections.OrderedDict(),
    tw.Global("torch", "float32"),
  )
  param = tw.Call(
    tw.Global("torch._utils", "_rebuild_parameter"),
    np.full((2, 3), 7, np.int16),
    True,
    collections.OrderedDict(),
  )
  path = tmp_path / "v3.pth"
  tw.save({"v3": v3, "param": param, "blob": b"\x00\xffbytes"}, path)
  got = load_torch_checkpoint(path)
  assert got["v3"].dtype == np.float32
  np.testing.assert_array_equal(got["v3"], values[2:6].reshape(2, 2).T)
  assert got["param"].dtype == np.int16
  np.testing.assert_array_equal(got["param"], np.full((2, 3), 7))
  assert got["blob"] == b"\x00\xffbytes"


# -----------------------------------------------------------------------------
# Malicious and broken files.
# -----------------------------------------------------------------------------


@pytest.mark.parametrize(
  "module,name",
  [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("subprocess", "call"),
    ("torch", "load"),
  ],
)
def test_malicious_data_pkl_refused(tmp_path, module, name):
  marker = tmp_path / f"pwned_{name}"
  command = f"touch {marker}"
  payload = tw.Call(tw.Global(module, name), command)
  data_pkl, _ = tw.dumps_data_pkl({"state_dict": payload})
  path = tmp_path / "evil.pth"
  tw.save({}, path, data_pkl=data_pkl)
  with pytest.raises(safe_pickle.UnsafePickleError) as info:
    load_torch_checkpoint(path)
  assert f"{module}.{name}" in str(info.value)
  assert str(path) in str(info.value)
  assert not marker.exists()


def test_malicious_payload_is_live(tmp_path):
  """Control: the os.system payload does run under a plain unpickler."""
  marker = tmp_path / "pwned"
  data_pkl, _ = tw.dumps_data_pkl(
    tw.Call(tw.Global("os", "system"), f"touch {marker}")
  )
  pickle.loads(data_pkl)  # the unsafe way, on purpose
  assert marker.exists()


def test_malicious_persistent_id_storage_type(tmp_path):
  """A persistent id whose storage type is not a torch storage is refused."""
  data_pkl, _ = tw.dumps_data_pkl(
    {
      "w": tw.Tensor(
        tw.Storage(np.ones(2, np.float32), "EvilStorage"), 0, (2,), (1,)
      )
    }
  )
  path = tmp_path / "evil.pth"
  tw.save(
    {},
    path,
    data_pkl=data_pkl,
    extra_records={"data/0": np.ones(2, np.float32).tobytes()},
  )
  with pytest.raises(safe_pickle.UnsafePickleError, match="EvilStorage"):
    load_torch_checkpoint(path)


def test_codecs_encode_only_latin1(tmp_path):
  data_pkl, _ = tw.dumps_data_pkl(
    {"x": tw.Call(tw.Global("_codecs", "encode"), "abc", "rot13")}
  )
  path = tmp_path / "codec.pth"
  tw.save({}, path, data_pkl=data_pkl)
  with pytest.raises(safe_pickle.UnsafePickleError, match="rot13"):
    load_torch_checkpoint(path)


def test_random_bytes(tmp_path):
  path = tmp_path / "random.pth"
  path.write_bytes(np.random.default_rng(1).bytes(4096))
  with pytest.raises(CheckpointFormatError, match="not a torch checkpoint"):
    load_torch_checkpoint(path)


def test_truncated_zip(tmp_path):
  data = SAMPLE.read_bytes()
  for cut in (len(data) // 2, len(data) - 10):
    path = tmp_path / f"cut{cut}.pth"
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointFormatError, match="truncated") as info:
      load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_zip_without_data_pkl(tmp_path):
  path = tmp_path / "nopkl.pth"
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/version", b"3\n")
    zf.writestr("archive/data/0", b"\0" * 16)
  with pytest.raises(CheckpointFormatError, match="data.pkl"):
    load_torch_checkpoint(path)


def test_torchscript_archive(tmp_path):
  path = tmp_path / "scripted.pt"
  tw.save(
    {"a": np.ones(2, np.float32)},
    path,
    extra_records={
      "constants.pkl": b"\x80\x02).",
      "code/__torch__/m.py": b"class M: ...",
    },
  )
  with pytest.raises(CheckpointFormatError, match="TorchScript"):
    load_torch_checkpoint(path)


def test_missing_storage_record(tmp_path):
  path = tmp_path / "nostorage.pth"
  tw.save(
    {"a": np.ones(3, np.float32), "b": np.zeros(2, np.float32)},
    path,
    skip_records=("data/1",),
  )
  with pytest.raises(CheckpointFormatError, match="archive/data/1"):
    load_torch_checkpoint(path)


def test_storage_record_too_short(tmp_path):
  path = tmp_path / "short.pth"
  tw.save(
    {"a": np.ones(8, np.float32)}, path, extra_records={"data/0": b"\0" * 12}
  )
  with pytest.raises(CheckpointFormatError, match="12 bytes"):
    load_torch_checkpoint(path)


def test_tensor_larger_than_storage(tmp_path):
  path = tmp_path / "view.pth"
  storage = tw.Storage(np.arange(4, dtype=np.float32))
  tw.save({"a": tw.Tensor(storage, 2, (4,), (1,))}, path)
  with pytest.raises(CheckpointFormatError, match="too small"):
    load_torch_checkpoint(path)


def test_corrupt_data_pkl(tmp_path):
  data_pkl, _ = tw.dumps_data_pkl({"a": np.ones(3, np.float32)})
  path = tmp_path / "cutpkl.pth"
  tw.save({"a": np.ones(3, np.float32)}, path, data_pkl=data_pkl[:-20])
  with pytest.raises(
    CheckpointFormatError, match="corrupt or truncated archive/data.pkl"
  ):
    load_torch_checkpoint(path)


def _legacy_obj():
  rng = np.random.default_rng(3)
  shared = tw.Storage(rng.normal(size=30).astype(np.float32))
  state_dict = collections.OrderedDict(
    [
      ("conv.weight", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
      ("bn.num_batches_tracked", np.array(5, np.int64)),
      ("fc.weight", tw.Tensor(shared, 0, (5, 6), (1, 5))),
      ("fc.bias", tw.Tensor(shared, 5, (5,), (1,))),
      ("half", rng.normal(size=(3,)).astype(np.float16)),
      ("faces", np.arange(12, dtype=np.int64).reshape(4, 3)),
    ]
  )
  return {"meta": {"epoch": 2}, "state_dict": state_dict}, shared


def test_legacy_format_round_trip(tmp_path):
  """torch < 1.6 / _use_new_zipfile_serialization=False stream format."""
  obj, shared = _legacy_obj()
  path = tmp_path / "legacy.pth"
  tw.save_legacy(obj, path)
  assert path.read_bytes()[:2] != b"PK"
  got = load_torch_checkpoint(path)
  assert got["meta"] == {"epoch": 2}
  sd, want = got["state_dict"], obj["state_dict"]
  assert list(sd) == list(want)
  for key in ("conv.weight", "bn.num_batches_tracked", "half", "faces"):
    assert sd[key].dtype == want[key].dtype and sd[key].shape == want[key].shape
    np.testing.assert_array_equal(sd[key], want[key], err_msg=key)
  np.testing.assert_array_equal(sd["fc.weight"], shared.flat.reshape(6, 5).T)
  np.testing.assert_array_equal(sd["fc.bias"], shared.flat[5:10])


def test_legacy_storage_view(tmp_path):
  root = tw.Storage(np.arange(10, dtype=np.float64))
  view = tw.StorageView(root, 4, 5)
  path = tmp_path / "view.pth"
  tw.save_legacy(
    {
      "v": tw.Tensor(view, 1, (2, 2), (2, 1)),
      "r": tw.Tensor(root, 0, (3,), (3,)),
    },
    path,
  )
  got = load_torch_checkpoint(path)
  np.testing.assert_array_equal(got["v"], [[5, 6], [7, 8]])
  np.testing.assert_array_equal(got["r"], [0, 3, 6])
  path = tmp_path / "badview.pth"
  tw.save_legacy({"v": tw.Tensor(view, 2, (4,), (1,))}, path)
  with pytest.raises(CheckpointFormatError, match="too small"):
    load_torch_checkpoint(path)


def test_legacy_truncated(tmp_path):
  obj, _ = _legacy_obj()
  full = tmp_path / "full.pth"
  tw.save_legacy(obj, full)
  size = full.stat().st_size
  for cut in (30, 300, size - 4):
    path = tmp_path / f"cut{cut}.pth"
    tw.save_legacy(obj, path, truncate_to=cut)
    with pytest.raises(CheckpointFormatError, match="truncated") as info:
      load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_legacy_malicious(tmp_path):
  marker = tmp_path / "pwned"
  body, _ = tw.dumps_data_pkl(
    tw.Call(tw.Global("os", "system"), f"touch {marker}"), legacy=True
  )
  path = tmp_path / "evil.pth"
  with open(path, "wb") as f:
    for header in (tw.LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(body)
    pickle.dump([], f, protocol=2)
  with pytest.raises(safe_pickle.UnsafePickleError, match="os.system"):
    load_torch_checkpoint(path)
  assert not marker.exists()


def test_legacy_tar_format_message(tmp_path):
  import tarfile

  path = tmp_path / "ancient.pth"
  with tarfile.open(path, "w") as tar:
    info = tarfile.TarInfo("storages")
    info.size = 4
    import io

    tar.addfile(info, io.BytesIO(b"\0" * 4))
  with pytest.raises(
    CheckpointFormatError,
    match="tar format .* not supported; re-save with "
    r"torch>=1.6",
  ):
    load_torch_checkpoint(path)
