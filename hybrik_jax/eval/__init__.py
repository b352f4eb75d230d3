"""Evaluation: MPJPE / PA-MPJPE / PVE / 3DPCK / AUC (metrics.py) and
mmhuman3d's per-dataset protocol (protocol.py)."""
