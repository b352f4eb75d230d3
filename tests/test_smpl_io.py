"""SMPL model loading: formats, directory lookup, validation, pickle safety."""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import struct
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import FIXTURES, SMPL_DIR, golden

from hybrik_jax.safe_pickle import UnsafePickleError
from hybrik_jax.smpl import tables
from hybrik_jax.smpl.io import (
  SMPLLoadError,
  load_model,
  load_raw_dict,
  model_file_candidates,
  resolve_model_file,
)

FORMATS = ("plain", "chumpy", "legacy")
FIXTURE_FILES = {
  "plain": "SMPL_NEUTRAL.pkl.gz",
  "chumpy": "SMPL_NEUTRAL_chumpy.pkl.gz",
  "legacy": "SMPL_NEUTRAL_legacy.pkl.gz",
}
MODEL_KEYS = (
  "v_template",
  "shapedirs",
  "posedirs",
  "J_regressor",
  "lbs_weights",
  "faces",
)
KINTREE_ROOT = 4294967295  # official files store the root's parent as uint32 -1


# ----------------------------------------------------------------------------
# Helpers.


def tiny_model(num_vertices=32, num_betas=10, offset=0.0, seed=0):
  """A small random model dict with the official key names and layouts."""
  rng = np.random.default_rng(seed)
  v = num_vertices
  jreg = rng.uniform(size=(24, v))
  weights = rng.uniform(size=(v, 24))
  kintree = np.stack([np.array(tables.SMPL_PARENTS, np.int64), np.arange(24)])
  kintree[0, 0] = KINTREE_ROOT
  v_template = rng.normal(size=(v, 3)) + offset
  jreg = jreg / jreg.sum(1, keepdims=True)
  return {
    "v_template": v_template,
    "shapedirs": rng.normal(size=(v, 3, num_betas)) * 0.01,
    "posedirs": rng.normal(size=(v, 3, 207)) * 0.01,
    "J_regressor": jreg,
    "weights": weights / weights.sum(1, keepdims=True),
    "f": rng.integers(0, v, size=(2 * v, 3)).astype(np.uint32),
    "kintree_table": kintree,
    "J": jreg @ v_template,
    "bs_style": "lbs",
    "bs_type": "lrotmin",
  }


def write_pickle(path: Path, obj, protocol=2) -> Path:
  path.write_bytes(pickle.dumps(obj, protocol=protocol))
  return path


def op_global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(s: str) -> bytes:
  b = s.encode()
  return b"X" + struct.pack("<I", len(b)) + b


class _FakeChumpy:
  """Pickles like a chumpy node: NEWOBJ(cls) + BUILD(__dict__)."""

  def __init__(self, **terms):
    self.__dict__.update(terms)


@contextlib.contextmanager
def fake_chumpy_modules():
  """Temporarily registers importable fake chumpy modules (to pickle only)."""
  spec = {
    "chumpy": (),
    "chumpy.ch": ("Ch", "ChLambda"),
    "chumpy.reordering": ("Select", "transpose", "Reshape", "Concatenate"),
    "chumpy.ch_ops": ("add", "subtract", "multiply", "divide", "dot"),
  }
  mods = {}
  for modname, names in spec.items():
    mod = types.ModuleType(modname)
    for name in names:
      setattr(
        mod,
        name,
        type(
          name, (_FakeChumpy,), {"__module__": modname, "__qualname__": name}
        ),
      )
    mods[modname] = mod
  with mock.patch.dict(sys.modules, mods):
    yield types.SimpleNamespace(
      **{n: getattr(mods[m], n) for m, ns in spec.items() for n in ns}
    )


# ----------------------------------------------------------------------------
# The three synthetic fixture pickles.


@pytest.fixture(scope="module")
def loaded():
  """{format: (model, raw dict)} for the three fixture pickles (gzipped)."""
  out = {}
  for fmt, name in FIXTURE_FILES.items():
    out[fmt] = (load_model(SMPL_DIR / name), load_raw_dict(SMPL_DIR / name))
  return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_fixture_invariants(loaded, fmt):
  model, raw = loaded[fmt]
  assert model.v_template.shape == (6890, 3)
  assert model.shapedirs.shape == (6890, 3, 10)
  assert model.posedirs.shape == (207, 6890 * 3)
  assert model.J_regressor.shape == (24, 6890)
  assert model.lbs_weights.shape == (6890, 24)
  assert model.faces.shape == (13668, 3) and model.faces.dtype == jnp.int32
  assert model.dtype == jnp.float32 and model.gender == "neutral"
  assert model.J_regressor_extra is None
  assert model.num_betas == 10 and model.num_vertices == 6890
  # Raw float64 arrays: weights and regressor rows sum to 1, and the
  # regressor reproduces the pickled joints J exactly.
  np.testing.assert_allclose(raw["weights"].sum(1), 1.0, atol=1e-12)
  np.testing.assert_allclose(raw["J_regressor"].sum(1), 1.0, atol=1e-12)
  np.testing.assert_allclose(
    raw["J_regressor"] @ raw["v_template"], raw["J"], atol=1e-12
  )
  # The float32 model does too, to float32 precision (metres).
  np.testing.assert_allclose(
    np.asarray(model.J_regressor) @ np.asarray(model.v_template),
    raw["J"],
    atol=1e-6,
  )
  np.testing.assert_allclose(
    np.asarray(model.lbs_weights).sum(1), 1.0, atol=1e-6
  )
  # Kinematic tree as stored officially.
  assert int(raw["kintree_table"][0, 0]) == KINTREE_ROOT
  assert tuple(raw["kintree_table"][0, 1:]) == tables.SMPL_PARENTS[1:]
  np.testing.assert_array_equal(np.asarray(model.faces), raw["f"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_posedirs_layout(loaded, fmt):
  model, raw = loaded[fmt]
  posedirs = np.asarray(model.posedirs)  # [207, V*3]
  src = raw["posedirs"]  # [V, 3, 207]
  assert src.shape == (6890, 3, 207)
  for k, v, c in [(0, 0, 0), (5, 411, 2), (206, 6889, 1), (100, 3216, 0)]:
    assert posedirs[k, 3 * v + c] == np.float32(src[v, c, k])
  np.testing.assert_array_equal(
    posedirs, np.transpose(src, (2, 0, 1)).reshape(207, -1).astype(np.float32)
  )


def test_three_formats_identical(loaded):
  ref_model, ref_raw = loaded["plain"]
  for fmt in ("chumpy", "legacy"):
    model, raw = loaded[fmt]
    for key in MODEL_KEYS:
      np.testing.assert_array_equal(
        np.asarray(getattr(model, key)),
        np.asarray(getattr(ref_model, key)),
        err_msg=f"{fmt}: {key}",
      )
    for key in (
      "v_template",
      "shapedirs",
      "posedirs",
      "J_regressor",
      "weights",
      "f",
      "J",
      "kintree_table",
      "weights_prior",
      "vert_sym_idxs",
    ):
      np.testing.assert_array_equal(
        raw[key], ref_raw[key], err_msg=f"{fmt}: {key}"
      )
  legacy_raw = loaded["legacy"][1]
  np.testing.assert_array_equal(
    legacy_raw["J_regressor_prior"], ref_raw["J_regressor"]
  )
  assert legacy_raw["pose_training_info"]["gender"] == "neutral"
  assert legacy_raw["bs_style"] == "lbs" and legacy_raw["bs_type"] == "lrotmin"


def test_rest_pose_matches_golden(loaded):
  """J_regressor . (v_template + shapedirs . beta) and the leaf vertices give
  mmhuman3d's HybrIK rest pose (golden_ik_transform), within 1e-5 m."""
  g = golden("golden_ik_transform.npz")
  model, _ = loaded["legacy"]
  betas = g["betas"]  # [8, 10]
  v_shaped = np.asarray(model.v_template)[None] + np.einsum(
    "vcb,nb->nvc", np.asarray(model.shapedirs), betas
  )
  joints = np.einsum("jv,nvc->njc", np.asarray(model.J_regressor), v_shaped)
  leaves = v_shaped[:, list(tables.LEAF_VERTEX_IDS)]
  rest = np.concatenate([joints, leaves], axis=1)  # [8, 29, 3]
  np.testing.assert_allclose(rest, g["rest_pose"], atol=1e-5)


def test_gunzipped_pickle_and_plain_directory(smpl_dir, smpl_pkl, loaded):
  for source in (smpl_pkl, smpl_dir):
    model = load_model(source)
    for key in MODEL_KEYS:
      np.testing.assert_array_equal(
        np.asarray(getattr(model, key)),
        np.asarray(getattr(loaded["plain"][0], key)),
      )


def test_loads_without_chumpy_or_scipy(loaded, monkeypatch):
  for name in (
    "chumpy",
    "chumpy.ch",
    "scipy",
    "scipy.sparse",
    "scipy.sparse._csc",
    "scipy.sparse.csc",
  ):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import` fail
  with pytest.raises(ImportError):
    import scipy.sparse  # noqa: F401
  model = load_model(SMPL_DIR / FIXTURE_FILES["legacy"])
  np.testing.assert_array_equal(
    np.asarray(model.shapedirs), np.asarray(loaded["plain"][0].shapedirs)
  )


# ----------------------------------------------------------------------------
# Other encodings of the same content.


def test_v11_300_betas_keeps_first(tmp_path, loaded):
  raw = loaded["plain"][1]
  rng = np.random.default_rng(1)
  d = {
    k: raw[k]
    for k in (
      "v_template",
      "posedirs",
      "J_regressor",
      "weights",
      "f",
      "kintree_table",
    )
  }
  d["shapedirs"] = np.concatenate(
    [raw["shapedirs"], rng.normal(size=(6890, 3, 290)) * 1e-3], axis=2
  )
  path = write_pickle(
    tmp_path / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", d
  )
  model = load_model(path)
  assert model.shapedirs.shape == (6890, 3, 10)
  np.testing.assert_array_equal(
    np.asarray(model.shapedirs), np.asarray(loaded["plain"][0].shapedirs)
  )
  model300 = load_model(tmp_path, num_betas=300)  # found by its v1.1 name
  assert model300.shapedirs.shape == (6890, 3, 300)
  np.testing.assert_array_equal(
    np.asarray(model300.shapedirs[..., 10:]),
    d["shapedirs"][..., 10:].astype(np.float32),
  )


def test_num_betas_checked(tmp_path):
  path = write_pickle(tmp_path / "m.pkl", tiny_model(num_betas=300))
  assert load_model(path).shapedirs.shape == (32, 3, 10)
  with pytest.raises(
    SMPLLoadError, match=r"m\.pkl.*'shapedirs'.*300.*301 requested"
  ):
    load_model(path, num_betas=301)
  with pytest.raises(ValueError, match="num_betas"):
    load_model(path, num_betas=0)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickle_protocols(tmp_path, protocol):
  d = tiny_model()
  path = write_pickle(tmp_path / "m.pkl", d, protocol=protocol)
  raw = load_raw_dict(path)
  for key, value in d.items():
    np.testing.assert_array_equal(raw[key], value)
  model = load_model(path)
  np.testing.assert_array_equal(
    np.asarray(model.v_template), d["v_template"].astype(np.float32)
  )


def test_npz_round_trip(tmp_path, loaded):
  model_pkl, raw = loaded["plain"]
  h36m = np.load(FIXTURES / "J_regressor_h36m.npy")
  arrays = {k: v for k, v in raw.items() if isinstance(v, np.ndarray)}
  np.savez(tmp_path / "SMPL_NEUTRAL.npz", J_regressor_extra=h36m, **arrays)
  model = load_model(tmp_path)  # the npz is picked from the folder
  for key in MODEL_KEYS:
    np.testing.assert_array_equal(
      np.asarray(getattr(model, key)), np.asarray(getattr(model_pkl, key))
    )
  np.testing.assert_array_equal(
    np.asarray(model.J_regressor_extra), h36m.astype(np.float32)
  )
  # An explicit extra regressor wins over the npz's.
  model2 = load_model(tmp_path, extra_regressor=h36m[:3])
  assert model2.J_regressor_extra.shape == (3, 6890)
  # posedirs may also be stored already in smplx's [207, V*3] layout.
  arrays["posedirs"] = np.asarray(model_pkl.posedirs, np.float64)
  np.savez(tmp_path / "flat.npz", **arrays)
  np.testing.assert_array_equal(
    np.asarray(load_model(tmp_path / "flat.npz").posedirs),
    np.asarray(model_pkl.posedirs),
  )


def test_gzipped_npz_and_pickle(tmp_path):
  d = tiny_model()
  buf = io.BytesIO()
  np.savez(buf, **{k: v for k, v in d.items() if isinstance(v, np.ndarray)})
  (tmp_path / "a.npz.gz").write_bytes(gzip.compress(buf.getvalue()))
  (tmp_path / "SMPL_MALE.pkl.gz").write_bytes(gzip.compress(pickle.dumps(d)))
  for path in (tmp_path / "a.npz.gz", tmp_path / "SMPL_MALE.pkl.gz"):
    np.testing.assert_array_equal(
      np.asarray(load_model(path).lbs_weights), d["weights"].astype(np.float32)
    )
  assert load_model(tmp_path, gender="male").gender == "male"


def test_extra_regressor_from_npy(loaded):
  h36m = np.load(FIXTURES / "J_regressor_h36m.npy")
  assert h36m.shape == (17, 6890)
  path = SMPL_DIR / FIXTURE_FILES["chumpy"]
  model = load_model(path, extra_regressor=FIXTURES / "J_regressor_h36m.npy")
  assert model.J_regressor_extra.shape == (17, 6890)
  assert model.J_regressor_extra.dtype == jnp.float32
  np.testing.assert_array_equal(
    np.asarray(model.J_regressor_extra), h36m.astype(np.float32)
  )
  model_arr = load_model(path, extra_regressor=h36m)
  np.testing.assert_array_equal(
    np.asarray(model_arr.J_regressor_extra), np.asarray(model.J_regressor_extra)
  )


def test_sparse_standins_match_scipy(tmp_path):
  import scipy.sparse as sp  # only the test needs scipy, to write the files

  rng = np.random.default_rng(3)
  dense = rng.uniform(size=(24, 32)) * (rng.uniform(size=(24, 32)) < 0.2)
  # A csc matrix with duplicate entries (scipy sums them when densifying).
  dup = sp.csc_matrix(
    (np.array([1.0, 2.0, 3.0]), (np.array([0, 0, 5]), np.array([1, 1, 7]))),
    shape=(24, 32),
  )
  objs = {
    "csc": sp.csc_matrix(dense),
    "csr": sp.csr_matrix(dense),
    "csc_array": sp.csc_array(dense),
    "dup": dup,
    "empty": sp.csr_matrix((24, 32)),
  }
  path = write_pickle(tmp_path / "sparse.pkl", objs)
  raw = load_raw_dict(path)
  for key, obj in objs.items():
    np.testing.assert_array_equal(raw[key], obj.toarray(), err_msg=key)
  assert raw["dup"][0, 1] == 3.0
  d = tiny_model()
  d["J_regressor"] = sp.csr_matrix(d["J_regressor"])
  model = load_model(write_pickle(tmp_path / "m.pkl", d))
  np.testing.assert_array_equal(
    np.asarray(model.J_regressor), d["J_regressor"].toarray().astype(np.float32)
  )


def test_chumpy_wrappers_are_evaluated(tmp_path):
  d = tiny_model()
  v = d["v_template"].shape[0]
  with fake_chumpy_modules() as ch:
    sd = d["shapedirs"]
    perm = np.random.default_rng(0).permutation(sd.size)
    flat = np.empty(sd.size)
    flat[perm] = sd.ravel()
    obj = dict(d)
    obj["shapedirs"] = ch.Select(
      a=ch.Ch(x=flat), idxs=perm, preferred_shape=sd.shape
    )
    obj["v_template"] = ch.add(
      a=ch.Ch(x=d["v_template"] - 1.0), b=ch.Ch(x=np.ones((v, 3)))
    )
    obj["posedirs"] = ch.Reshape(
      a=ch.transpose(
        a=ch.Ch(x=d["posedirs"].reshape(v * 3, 207).T), axes=(1, 0)
      ),
      newshape=(v, 3, 207),
    )
    obj["weights"] = ch.Concatenate(
      m0=ch.Ch(x=d["weights"][:10]),
      m1=d["weights"][10:],
      dterms=["m0", "m1"],
      axis=0,
    )
    obj["J"] = ch.divide(
      x1=ch.subtract(
        a=ch.multiply(
          a=ch.dot(a=d["J_regressor"], b=ch.Ch(x=d["v_template"])),
          b=ch.Ch(x=np.array(2.0)),
        ),
        b=ch.Ch(x=np.zeros((24, 3))),
      ),
      x2=np.array(2.0),
    )
    data = pickle.dumps(obj, protocol=2)
  assert b"chumpy.reordering" in data and b"chumpy.ch_ops" in data
  raw = load_raw_dict(write_bytes(tmp_path / "c.pkl", data))
  np.testing.assert_array_equal(raw["shapedirs"], d["shapedirs"])
  np.testing.assert_array_equal(raw["v_template"], d["v_template"] - 1.0 + 1.0)
  np.testing.assert_array_equal(raw["posedirs"], d["posedirs"])
  np.testing.assert_array_equal(raw["weights"], d["weights"])
  np.testing.assert_allclose(raw["J"], d["J"], rtol=1e-14)
  model = load_model(tmp_path / "c.pkl")
  np.testing.assert_array_equal(
    np.asarray(model.shapedirs), d["shapedirs"].astype(np.float32)
  )


def write_bytes(path: Path, data: bytes) -> Path:
  path.write_bytes(data)
  return path


# ----------------------------------------------------------------------------
# Directory lookup.


def test_gendered_directory_selection(tmp_path):
  offsets = {"neutral": 0.0, "male": 10.0, "female": 20.0}
  write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", tiny_model(offset=0.0))
  np.savez(
    tmp_path / "SMPL_MALE.npz",
    **{
      k: v
      for k, v in tiny_model(offset=10.0).items()
      if isinstance(v, np.ndarray)
    },
  )
  write_pickle(
    tmp_path / "basicModel_f_lbs_10_207_0_v1.0.0.pkl", tiny_model(offset=20.0)
  )
  for gender, offset in offsets.items():
    model = load_model(tmp_path, gender=gender)
    assert model.gender == gender
    np.testing.assert_allclose(
      np.asarray(model.v_template),
      (tiny_model()["v_template"] + offset).astype(np.float32),
    )
  assert resolve_model_file(tmp_path, "FEMALE").name.startswith("basicModel_f")
  with pytest.raises(ValueError, match="gender"):
    load_model(tmp_path, gender="child")


def test_official_names_and_priority(tmp_path):
  names = model_file_candidates("neutral")
  assert names[:2] == ("SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl")
  assert "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl" in names
  assert "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl" in names
  assert "basicModel_m_lbs_10_207_0_v1.0.0.pkl" in model_file_candidates("male")
  assert "basicmodel_f_lbs_10_207_0_v1.1.0.pkl" in model_file_candidates(
    "female"
  )
  sub = tmp_path / "smpl"
  sub.mkdir()
  write_pickle(
    sub / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", tiny_model(offset=1.0)
  )
  assert resolve_model_file(tmp_path).parent == sub  # smplx's smpl/ folder
  write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", tiny_model(offset=2.0))
  assert resolve_model_file(tmp_path).name == "SMPL_NEUTRAL.pkl"
  np.savez(
    tmp_path / "SMPL_NEUTRAL.npz",
    **{
      k: v
      for k, v in tiny_model(offset=3.0).items()
      if isinstance(v, np.ndarray)
    },
  )
  assert resolve_model_file(tmp_path).name == "SMPL_NEUTRAL.npz"


def test_missing_files(tmp_path):
  with pytest.raises(SMPLLoadError, match="does not exist") as e:
    load_model(tmp_path / "nope.pkl")
  assert "nope.pkl" in str(e.value)
  with pytest.raises(SMPLLoadError) as e:
    load_model(tmp_path, gender="female")
  msg = str(e.value)
  assert str(tmp_path) in msg and "SMPL_FEMALE.pkl" in msg
  assert "basicModel_f_lbs_10_207_0_v1.0.0.pkl" in msg
  assert "basicmodel_f_lbs_10_207_0_v1.1.0.pkl" in msg


# ----------------------------------------------------------------------------
# Corrupt files and wrong contents.


def test_truncated_and_random_bytes(tmp_path):
  data = gzip.decompress((SMPL_DIR / FIXTURE_FILES["legacy"]).read_bytes())
  cases = {
    "truncated.pkl": data[: len(data) // 2],
    "truncated_head.pkl": data[:100],
    "random.pkl": np.random.default_rng(0).bytes(4096),
    "random2.pkl": b"\x80\x02" + np.random.default_rng(1).bytes(4096),
    "empty.pkl": b"",
    "truncated.pkl.gz": (SMPL_DIR / FIXTURE_FILES["plain"]).read_bytes()[:5000],
    "bad.npz": b"PK\x03\x04" + b"\x00" * 100,
  }
  for name, payload in cases.items():
    path = write_bytes(tmp_path / name, payload)
    with pytest.raises(SMPLLoadError) as e:
      load_model(path)
    assert str(path) in str(e.value), name


def test_missing_key(tmp_path):
  d = tiny_model()
  for key in (
    "v_template",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "f",
  ):
    bad = {k: v for k, v in d.items() if k != key}
    path = write_pickle(tmp_path / f"no_{key}.pkl", bad)
    with pytest.raises(SMPLLoadError, match=f"'{key}' is missing") as e:
      load_model(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
  "key,value,pattern",
  [
    ("weights", np.full((32, 23), 1 / 23), r"'weights' has shape \(32, 23\)"),
    ("v_template", np.zeros((32, 2)), r"'v_template' has shape \(32, 2\)"),
    (
      "shapedirs",
      np.zeros((31, 3, 10)),
      r"'shapedirs' has shape \(31, 3, 10\)",
    ),
    (
      "posedirs",
      np.zeros((32, 3, 200)),
      r"'posedirs' has shape \(32, 3, 200\)",
    ),
    ("J_regressor", np.zeros((23, 32)), r"'J_regressor' has shape \(23, 32\)"),
    ("f", np.zeros((10, 4), np.uint32), r"'f' has shape \(10, 4\)"),
    ("f", np.full((10, 3), 32, np.uint32), r"'f' .*outside \[0, 32\)"),
    ("f", np.zeros((10, 3)), r"'f' .*dtype float64"),
    ("kintree_table", np.zeros((2, 24), np.int64), r"'kintree_table'"),
    ("v_template", np.full((32, 3), np.nan), r"'v_template'.*non-finite"),
    ("weights", "lbs", r"'weights' is not a numeric array"),
  ],
)
def test_wrong_contents(tmp_path, key, value, pattern):
  d = tiny_model()
  d[key] = value
  path = write_pickle(tmp_path / "bad.pkl", d)
  with pytest.raises(SMPLLoadError, match=pattern) as e:
    load_model(path)
  assert str(path) in str(e.value)


def test_not_a_dict_and_bad_extra(tmp_path):
  path = write_pickle(tmp_path / "list.pkl", [1, 2, 3])
  with pytest.raises(SMPLLoadError, match="list.pkl.*expected a dict"):
    load_model(path)
  good = write_pickle(tmp_path / "m.pkl", tiny_model())
  with pytest.raises(
    SMPLLoadError, match=r"'J_regressor_extra' has shape \(17, 33\)"
  ):
    load_model(good, extra_regressor=np.zeros((17, 33)))
  npy = tmp_path / "reg.npy"
  np.save(npy, np.zeros((17, 6890)))
  with pytest.raises(SMPLLoadError, match=r"reg\.npy.*\(17, 6890\)"):
    load_model(good, extra_regressor=npy)
  obj_npy = tmp_path / "obj.npy"
  np.save(obj_npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
  with pytest.raises(SMPLLoadError, match="obj.npy"):
    load_model(good, extra_regressor=obj_npy)
  with pytest.raises(SMPLLoadError, match="missing.npy"):
    load_model(good, extra_regressor=tmp_path / "missing.npy")


def test_object_arrays_refused(tmp_path):
  d = tiny_model()
  d["vert_sym_idxs"] = np.array(["a", 1], dtype=object)
  path = write_pickle(tmp_path / "obj.pkl", d)
  with pytest.raises(SMPLLoadError, match="obj.pkl.*object dtype"):
    load_model(path)
  np.savez(
    tmp_path / "obj.npz",
    **{k: v for k, v in d.items() if isinstance(v, np.ndarray)},
  )
  with pytest.raises(SMPLLoadError, match="obj.npz"):
    load_model(tmp_path / "obj.npz")


# ----------------------------------------------------------------------------
# Hostile pickles: refused before anything runs.


class _Payload:
  def __init__(self, fn, args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return self.fn, self.args


def _payloads(marker: Path):
  code = f"open({str(marker)!r}, 'w').close()"
  import os

  return {
    "os.system": _Payload(os.system, (f"touch '{marker}'",)),
    "builtins.eval": _Payload(eval, (code,)),
    "builtins.exec": _Payload(exec, (code,)),
    "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
  }


def _chumpy_wrapped_payload(marker: Path) -> bytes:
  """{'shapedirs': Ch with state {'x': os.system('touch marker')}}, by hand."""
  return (
    b"\x80\x02}"
    + op_str("shapedirs")
    + op_global("chumpy.ch", "Ch")
    + b")\x81}"
    + op_str("x")
    + op_global("posix", "system")
    + op_str(f"touch '{marker}'")
    + b"\x85Rsbs."
  )


class _PermissiveChumpy(pickle.Unpickler):
  """Unrestricted except for a chumpy stand-in: proves the payloads are live."""

  def find_class(self, module, name):
    if module.startswith("chumpy"):
      return _FakeChumpy
    return super().find_class(module, name)


def test_payloads_are_live(tmp_path):
  """Sanity check of the test itself: plain pickle would run each payload."""
  for i, (name, payload) in enumerate(_payloads(tmp_path / "x").items()):
    marker = tmp_path / f"live{i}"
    result = pickle.loads(pickle.dumps(_payloads(marker)[name], protocol=2))
    if isinstance(result, subprocess.Popen):
      result.wait()
    assert marker.exists(), name
  marker = tmp_path / "live_chumpy"
  _PermissiveChumpy(io.BytesIO(_chumpy_wrapped_payload(marker))).load()
  assert marker.exists()


@pytest.mark.parametrize(
  "name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"]
)
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickles_refused(tmp_path, name, protocol):
  marker = tmp_path / "pwned"
  payload = _payloads(marker)[name]
  for i, obj in enumerate(
    [payload, {"v_template": payload}, dict(tiny_model(), f=payload)]
  ):
    path = write_pickle(tmp_path / f"evil{i}.pkl", obj, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
      load_model(path)
    with pytest.raises(UnsafePickleError):
      load_raw_dict(path)
    gz = write_bytes(
      tmp_path / f"evil{i}.pkl.gz", gzip.compress(path.read_bytes())
    )
    with pytest.raises(UnsafePickleError):
      load_model(gz)
    assert not marker.exists()


def test_malicious_global_inside_chumpy_state(tmp_path):
  marker = tmp_path / "pwned"
  path = write_bytes(tmp_path / "evil.pkl", _chumpy_wrapped_payload(marker))
  with pytest.raises(UnsafePickleError, match="posix.system"):
    load_model(path)
  assert not marker.exists()
  # A chumpy class outside the allow-list is refused too (named in the error).
  evil = _chumpy_wrapped_payload(marker).replace(b"\nCh\n", b"\nChLambda\n")
  with pytest.raises(UnsafePickleError, match="chumpy.ch.ChLambda"):
    load_model(write_bytes(tmp_path / "evil2.pkl", evil))
  assert not marker.exists()


def test_codecs_encode_restricted(tmp_path):
  """_codecs.encode is allowed only for latin-1 (pickle's bytes encoding)."""
  data = (
    b"\x80\x02}"
    + op_str("k")
    + op_global("_codecs", "encode")
    + op_str("abc")
    + op_str("rot13")
    + b"\x86Rs."
  )
  with pytest.raises(SMPLLoadError, match="latin-1"):
    load_raw_dict(write_bytes(tmp_path / "codec.pkl", data))
  ok = data.replace(op_str("rot13"), op_str("latin1"))
  assert load_raw_dict(write_bytes(tmp_path / "ok.pkl", ok))["k"] == b"abc"


def test_numpy_scalars_py2_and_py3(tmp_path):
  """numpy scalars as Python 3 writes them and as a Python-2 str buffer."""
  py3 = pickle.dumps({"s": np.float64(1.5), "i": np.int64(7)}, protocol=2)
  raw = load_raw_dict(write_bytes(tmp_path / "py3.pkl", py3))
  assert raw["s"] == 1.5 and raw["s"].dtype == np.float64 and raw["i"] == 7
  dtype_f8 = (
    op_global("numpy", "dtype")
    + op_str("f8")
    + b"\x89\x88\x87R"
    + b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
  )
  py2 = (
    b"\x80\x02}U\x01s"
    + op_global("numpy.core.multiarray", "scalar")
    + dtype_f8
    + b"U\x08"
    + np.float64(-2.25).tobytes()
    + b"\x86Rs."
  )
  raw = load_raw_dict(write_bytes(tmp_path / "py2.pkl", py2))
  assert raw["s"] == -2.25 and raw["s"].dtype == np.float64


# ----------------------------------------------------------------------------
# dtype.


def test_dtype_float64_with_x64(tmp_path):
  d = tiny_model()
  path = write_pickle(tmp_path / "m.pkl", d)
  assert load_model(path).dtype == jnp.float32
  with pytest.raises(ValueError, match="x64"):
    load_model(path, dtype=np.float64)
  with jax.enable_x64(True):
    model = load_model(path)
    assert model.dtype == jnp.float64
    assert model.posedirs.dtype == jnp.float64
    assert model.faces.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(model.v_template), d["v_template"])
    np.testing.assert_array_equal(np.asarray(model.shapedirs), d["shapedirs"])
    model32 = load_model(
      path, dtype=jnp.float32, extra_regressor=d["J_regressor"][:5]
    )
    assert model32.dtype == jnp.float32
    assert model32.J_regressor_extra.dtype == jnp.float32
