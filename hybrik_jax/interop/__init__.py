"""PyTorch interoperability without PyTorch: the ``.pth`` reader
(torch_format.py), state_dict <-> Flax variables (weight_mapping.py) and the
checkpoint converter behind ``convert_torch_weights.py`` (convert.py)."""
