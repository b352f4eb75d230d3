"""state_dict <-> Flax variables mapping, recipe rebuild, layer layouts."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from checkpoint_recipe import (
  build_recipe_state_dict,
  load_checkpoint_keys,
  recipe_keys,
  recipe_uniform,
)
from helpers import FIXTURES, load_synthetic_body

from hybrik_jax.interop import weight_mapping
from hybrik_jax.interop.weight_mapping import (
  WeightMappingError,
  load_pretrained_backbone,
  state_dict_to_variables,
  torchvision_resnet34_to_backbone,
  variables_to_state_dict,
)
from hybrik_jax.model import (
  TorchBatchNorm,
  attach_body_model,
  count_params,
  init_variables,
)
from hybrik_jax.model.resnet import torch_conv

NUM_TRAINABLE = 27_589_816  # mmhuman3d: backbone 21,284,672 + head 6,305,144


@pytest.fixture(scope="module")
def recipe():
  return build_recipe_state_dict()


@pytest.fixture(scope="module")
def recipe_variables(recipe):
  return state_dict_to_variables(recipe)


def _shapes(tree):
  return jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), tree)


# ----------------------------------------------------------------- recipe --


def test_recipe_matches_checkpoint_keys(recipe):
  entries = load_checkpoint_keys()
  filled = recipe_keys(entries)
  assert len(filled) == 205
  assert filled == sorted(e["key"] for e in entries if e["recipe"])
  non_smpl = [e for e in entries if not e["key"].startswith("smpl.")]
  assert sorted(recipe) == sorted(e["key"] for e in non_smpl)
  for e in non_smpl:
    arr = recipe[e["key"]]
    assert arr.shape == tuple(e["shape"]), e["key"]
    assert arr.dtype == np.dtype(e["dtype"]), e["key"]
  for k in filled:
    assert np.all(np.isfinite(recipe[k])) and np.any(recipe[k] != 0), k
  np.testing.assert_array_equal(
    recipe["head.init_shape"],
    np.load(FIXTURES / "h36m_mean_beta.npy").astype(np.float32),
  )


def test_recipe_hash_values():
  # Element 0 of key 0: h = 97531, then the xorshift-multiply rounds (by hand
  # with Python integers, independent of the vectorised uint64 code).
  def scalar(i, k):
    m = 0xFFFFFFFF
    h = (i * 2654435761 + (k + 1) * 97531) & m
    h ^= h >> 15
    h = (h * 2246822519) & m
    h ^= h >> 13
    h = (h * 3266489917) & m
    h ^= h >> 16
    return h / 2**32

  u = recipe_uniform(5000, 7)
  for i in (0, 1, 2, 4095, 4999):
    assert u[i] == scalar(i, 7)
  assert np.all((u >= 0) & (u < 1))


def test_recipe_value_rules(recipe):
  assert np.all(
    (recipe["backbone.bn1.running_var"] >= 0.5)
    & (recipe["backbone.bn1.running_var"] < 1.5)
  )
  assert np.all(np.abs(recipe["backbone.bn1.weight"] - 0.5) <= 0.05)
  b = np.sqrt(6.0 / 256) * 40
  w = recipe["head.final_layer.weight"]
  assert np.max(np.abs(w)) <= b and np.max(np.abs(w)) > 0.9 * b


# ---------------------------------------------------------------- mapping --


def test_entries_follow_checkpoint_order():
  entries = load_checkpoint_keys()
  expected = [
    e["key"]
    for e in entries
    if not e["key"].startswith("smpl.")
    and not e["key"].endswith("num_batches_tracked")
  ]
  got = [e.torch_key for e in weight_mapping.hybrik_entries()]
  assert got == expected
  shapes = {e["key"]: tuple(e["shape"]) for e in entries}
  for e in weight_mapping.hybrik_entries():
    assert e.torch_shape == shapes[e.torch_key], e.torch_key


def test_mapped_tree_equals_initialised_tree(recipe_variables):
  # Structure only (tracing, no compile): jax.eval_shape of the real init.
  fresh = jax.eval_shape(
    lambda: init_variables(jax.random.key(0), image_size=64)
  )
  for col in ("params", "batch_stats", "constants"):
    assert _shapes(recipe_variables[col]) == _shapes(fresh[col]), col
  assert count_params(fresh["params"]) == NUM_TRAINABLE
  assert count_params(recipe_variables["params"]) == NUM_TRAINABLE
  for leaf in jax.tree_util.tree_leaves(recipe_variables):
    assert leaf.dtype == np.float32


@pytest.mark.slow
def test_init_variables(smpl_model):
  """PyTorch-style init values; constants filled (compiles the init)."""
  v = init_variables(
    jax.random.key(0),
    smpl_model=smpl_model,
    init_shape=FIXTURES / "h36m_mean_beta.npy",
    image_size=64,
  )
  assert count_params(v["params"]) == NUM_TRAINABLE
  np.testing.assert_array_equal(
    v["constants"]["init_shape"],
    np.load(FIXTURES / "h36m_mean_beta.npy").astype(np.float32),
  )
  assert v["constants"]["smpl"]["v_template"].shape == (6890, 3)
  head = v["params"]["head"]
  k = np.asarray(head["deconv_layers_0"]["kernel"])
  assert 0.0009 < k.std() < 0.0011  # N(0, 0.001^2)
  np.testing.assert_array_equal(head["final_layer"]["bias"], 0.0)
  fc2 = np.asarray(head["fc2"]["kernel"])
  assert np.abs(fc2).max() <= 1 / 32 and np.abs(fc2).max() > 0.99 / 32
  np.testing.assert_array_equal(head["deconv_layers_1"]["scale"], 1.0)
  np.testing.assert_array_equal(
    v["batch_stats"]["head"]["deconv_layers_1"]["var"], 1.0
  )
  conv1 = np.asarray(v["params"]["backbone"]["conv1"]["kernel"])
  np.testing.assert_allclose(conv1.std(), np.sqrt(2 / (64 * 49)), rtol=0.1)


def test_layouts(recipe, recipe_variables):
  p = recipe_variables["params"]
  np.testing.assert_array_equal(
    p["backbone"]["conv1"]["kernel"],
    recipe["backbone.conv1.weight"].transpose(2, 3, 1, 0),
  )
  np.testing.assert_array_equal(
    p["backbone"]["layer3_0"]["downsample_conv"]["kernel"][0, 0],
    recipe["backbone.layer3.0.downsample.0.weight"][:, :, 0, 0].T,
  )
  np.testing.assert_array_equal(
    p["head"]["fc1"]["kernel"], recipe["head.fc1.weight"].T
  )
  w = recipe["head.deconv_layers.3.weight"]  # [in, out, kh, kw]
  k = p["head"]["deconv_layers_3"]["kernel"]  # [kh, kw, in, out], flipped
  np.testing.assert_array_equal(k[0, 1, 5, 7], w[5, 7, 3, 2])
  s = recipe_variables["batch_stats"]["head"]["deconv_layers_7"]
  np.testing.assert_array_equal(
    s["var"], recipe["head.deconv_layers.7.running_var"]
  )
  np.testing.assert_array_equal(
    recipe_variables["constants"]["init_shape"], recipe["head.init_shape"]
  )


def test_round_trip(recipe):
  back = variables_to_state_dict(state_dict_to_variables(recipe))
  assert list(back) == list(recipe)  # same keys, same (torch) order
  for k, v in recipe.items():
    assert back[k].dtype == v.dtype, k
    np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_module_prefix_smpl_and_dtypes_accepted(recipe, recipe_variables):
  sd = {"module." + k: v for k, v in recipe.items()}
  sd["module.smpl.v_template"] = np.zeros((6890, 3), np.float32)
  sd["module.smpl.children_map"] = np.zeros((29,), np.int64)
  sd["module.backbone.bn1.weight"] = recipe["backbone.bn1.weight"].astype(
    np.float16
  )
  v = state_dict_to_variables(sd)
  assert v["params"]["backbone"]["bn1"]["scale"].dtype == np.float32
  np.testing.assert_array_equal(
    v["params"]["head"]["decphi"]["kernel"],
    recipe_variables["params"]["head"]["decphi"]["kernel"],
  )
  np.testing.assert_allclose(
    v["params"]["backbone"]["bn1"]["scale"],
    recipe["backbone.bn1.weight"],
    atol=1e-3,
  )


def test_all_problems_reported_at_once(recipe):
  sd = dict(recipe)
  del sd["head.fc2.bias"]
  del sd["backbone.layer4.2.bn2.running_var"]
  sd["head.deccam.weight"] = np.zeros((3, 1024), np.float32)
  sd["head.fc1.num_batches_tracked"] = np.zeros((), np.int64)
  sd["backbone.layer1.0.conv1.weight"] = np.zeros((64, 64, 1, 1), np.float32)
  sd["head.decshape.bias"] = np.zeros((10,), np.int64)
  with pytest.raises(WeightMappingError) as exc:
    state_dict_to_variables(sd, source="ckpt.pth")
  problems = exc.value.problems
  assert len(problems) == 6, problems
  msg = str(exc.value)
  assert msg.startswith("ckpt.pth: 6 problem(s)")
  for needle in (
    "missing key 'head.fc2.bias'",
    "missing key 'backbone.layer4.2.bn2.running_var'",
    "unexpected key 'head.deccam.weight'",
    "unexpected key 'head.fc1.num_batches_tracked'",
    "'backbone.layer1.0.conv1.weight': shape [64, 64, 1, 1], "
    "expected [64, 64, 3, 3]",
    "'head.decshape.bias': dtype int64",
  ):
    assert needle in msg, (needle, msg)


def test_torchvision_backbone(recipe, recipe_variables):
  tv = {
    k[len("backbone.") :]: v
    for k, v in recipe.items()
    if k.startswith("backbone.")
  }
  tv["fc.weight"] = np.zeros((1000, 512), np.float32)
  tv["fc.bias"] = np.zeros((1000,), np.float32)
  bb = torchvision_resnet34_to_backbone(tv)
  assert count_params(bb["params"]) == 21_284_672
  for col in ("params", "batch_stats"):
    jax.tree_util.tree_map(
      np.testing.assert_array_equal, bb[col], recipe_variables[col]["backbone"]
    )
  fresh = jax.tree_util.tree_map(np.zeros_like, recipe_variables)
  loaded = load_pretrained_backbone(fresh, tv)
  np.testing.assert_array_equal(
    loaded["params"]["backbone"]["layer2_0"]["conv1"]["kernel"],
    recipe_variables["params"]["backbone"]["layer2_0"]["conv1"]["kernel"],
  )
  assert loaded["params"]["head"] is fresh["params"]["head"]
  with pytest.raises(
    WeightMappingError, match="unexpected key 'backbone.conv1"
  ):
    torchvision_resnet34_to_backbone(recipe)


def test_attach_body_model(recipe_variables, smpl_model):
  plain = load_synthetic_body(h36m_regressor=False)
  with pytest.raises(ValueError, match="J_regressor_h36m"):
    attach_body_model(recipe_variables, plain)
  v = attach_body_model(recipe_variables, smpl_model)
  assert "smpl" not in recipe_variables["constants"]
  assert v["constants"]["smpl"]["posedirs"].shape == (207, 6890 * 3)
  assert v["constants"]["smpl"]["J_regressor_extra"].shape == (17, 6890)
  assert v["params"] is recipe_variables["params"]


# ------------------------------------------------------- layer semantics --


def _torch_conv_transpose2d(x, w, stride=2, padding=1):
  """Direct (scatter) definition of torch ConvTranspose2d, NCHW, float64."""
  b, cin, h, wd = x.shape
  _, cout, kh, kw = w.shape
  full = np.zeros((b, cout, (h - 1) * stride + kh, (wd - 1) * stride + kw))
  for i in range(h):
    for j in range(wd):
      full[
        :, :, i * stride : i * stride + kh, j * stride : j * stride + kw
      ] += np.einsum("bc,cokl->bokl", x[:, :, i, j], w)
  return full[
    :, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding
  ]


def test_deconv_mapping_equals_conv_transpose():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 3, 4))  # NCHW
  w = rng.normal(size=(5, 6, 4, 4))  # torch [in, out, kh, kw]
  want = _torch_conv_transpose2d(x, w)  # [2, 6, 6, 8]
  conv = nn.Conv(
    6, (4, 4), padding=((2, 2), (2, 2)), input_dilation=(2, 2), use_bias=False
  )
  kernel = weight_mapping.torch_to_flax("deconv", w)
  got = conv.apply(
    {"params": {"kernel": kernel}},
    jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32),
  )
  got = np.asarray(got).transpose(0, 3, 1, 2)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_array_equal(
    weight_mapping.flax_to_torch("deconv", kernel), w.astype(np.float32)
  )


@pytest.mark.parametrize("kernel,stride", [(7, 2), (3, 2), (3, 1), (1, 2)])
def test_conv_mapping_equals_torch_conv(kernel, stride):
  rng = np.random.default_rng(kernel * 10 + stride)
  x = rng.normal(size=(1, 3, 9, 10))  # NCHW, odd/even sizes
  w = rng.normal(size=(4, 3, kernel, kernel))  # torch OIHW
  p = kernel // 2
  xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
  ho = (9 + 2 * p - kernel) // stride + 1
  wo = (10 + 2 * p - kernel) // stride + 1
  want = np.zeros((1, 4, ho, wo))
  for i in range(ho):
    for j in range(wo):
      patch = xp[
        :, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel
      ]
      want[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, w)
  conv = torch_conv(
    4, kernel, stride, name="c", dtype=jnp.float32, precision=None
  )
  got = conv.apply(
    {"params": {"kernel": weight_mapping.torch_to_flax("conv", w)}},
    jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32),
  )
  np.testing.assert_allclose(
    np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-4
  )


def test_batchnorm_matches_torch_semantics():
  rng = np.random.default_rng(0)
  x = rng.normal(1.0, 2.0, size=(3, 4, 5, 6)).astype(np.float32)
  scale = rng.uniform(0.5, 1.5, 6).astype(np.float32)
  bias = rng.normal(size=6).astype(np.float32)
  mean0 = rng.normal(size=6).astype(np.float32)
  var0 = rng.uniform(0.5, 1.5, 6).astype(np.float32)
  v = {
    "params": {"scale": scale, "bias": bias},
    "batch_stats": {"mean": mean0, "var": var0},
  }
  x64 = x.astype(np.float64)
  # Eval: running statistics.
  y = TorchBatchNorm(use_running_average=True).apply(v, x)
  np.testing.assert_allclose(
    y, (x64 - mean0) / np.sqrt(var0 + 1e-5) * scale + bias, atol=1e-5
  )
  # Train: biased batch variance to normalise, unbiased for running_var,
  # torch momentum 0.1.
  y, upd = TorchBatchNorm(use_running_average=False).apply(
    v, x, mutable=["batch_stats"]
  )
  m = x64.mean((0, 1, 2))
  var_b = x64.var((0, 1, 2))
  n = 3 * 4 * 5
  np.testing.assert_allclose(
    y, (x64 - m) / np.sqrt(var_b + 1e-5) * scale + bias, atol=1e-5
  )
  np.testing.assert_allclose(
    upd["batch_stats"]["mean"], 0.9 * mean0 + 0.1 * m, atol=1e-6
  )
  np.testing.assert_allclose(
    upd["batch_stats"]["var"], 0.9 * var0 + 0.1 * var_b * n / (n - 1), rtol=1e-6
  )
