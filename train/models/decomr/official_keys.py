"""Map the official DecoMR checkpoint onto this implementation (renames and drops only).

The released ``h36m_up3d.pt`` is ``torch.save({"CNet": sd, "LNet": sd, "optimizer": ...,
"epoch": ..., ...})`` (official ``utils/saver.py``); ``hmrt import-checkpoint`` flattens the two
state dicts to ``"CNet.<key>"`` / ``"LNet.<key>"`` (``OfficialLayout.parts``) and maps them here.
The paper variant has the official layer structure and names below ``cnet`` / ``lnet``, so
conversion is two prefix renames and one drop: ``CNet.`` -> ``cnet.``, ``LNet.`` -> ``lnet.``,
and the official ResNet's classifier ``CNet.resnet.fc.*`` (built but never used) is dropped.
``LNet.ref_map`` is not in the official state dict (a plain attribute) and hmrt rebuilds it from
the body file, as it does the sampler's tables and the joint regressor.

No value is changed. The released CNet predicts the IUV's V channel growing downward (hmrt's
charts: toward the head) and the transfer uses the official texel rule ``round(u (S-1))``; rather
than rewrite weights (negating the V output row would be exact through the sigmoid, but it is
not a rename), the importer builds the model with ``uv_convention="official"``
(``DecoMRConfig``), whose feature transfer reads the IUV that way. The weights then run as
released. What else parity with the official model needs (SMPL with the official BF chart,
reference-map and read-out texel conventions): docs/DEPLOY.md, "Official DecoMR weights".
"""

from __future__ import annotations

from hmrt.train.models.official_keys import KeyMap

RENAMES = (
    ("CNet.", "cnet."),
    ("LNet.", "lnet."),
)

DROPPED_PREFIXES = ("CNet.resnet.fc.",)


KEYMAP = KeyMap(RENAMES, DROPPED_PREFIXES)
official_to_hmrt_key = KEYMAP.to_hmrt
convert_official_state_dict = KEYMAP.convert
