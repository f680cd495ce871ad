"""hmrt.train.data: synthetic data engine, datasets, augmentation, SPIN npz loader, ``hmrt synth``.

Submodules are imported on demand (``from hmrt.train.data.synth import SyntheticGenerator``) so
that numpy-only users (e.g. the video writer) do not pull in torch.
"""
