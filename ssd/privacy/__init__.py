"""The privacy audit: per-example membership inference against unlearned models (U-LiRA),
with the shadow models trained together as one vectorised ensemble (`ensemble.py`)."""
