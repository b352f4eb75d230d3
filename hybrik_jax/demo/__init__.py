"""Inference on images and videos (``demo.py``) and the body-model demo."""
