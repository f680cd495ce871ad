"""Map the official HEMlets pose network onto this implementation (renames and drops only).

The released ``hemlets_h36m_lastest.pth`` (github.com/redrock303/HEMlets, research-only notice,
no licence: never redistributed) is a bare ``Network.state_dict()`` of 375 entries, no
``module.`` prefix (``official_manifest.json``, written by ``tools/hemlets_official_manifest.py``).
The ``paper`` variant keeps the official attribute names (``backbone``, ``conv_feature``,
``conv_FBI``, ``FBI_encoder``, ``conv_tail``, ``volume_reg``), so every official key is its own
hmrt key: no rename, no drop. ``volume_reg.dis_map`` (the soft-argmax grid ``i/63``) is loaded
as it is, and the importer checks it equals the grid the model computes with.

The official code has no PoSh (the SMPL regressor) and no weights for it are released: hmrt's
PoSh keys are absent from the file by design and keep their initial values on import (listed in
``UNTRAINED_PREFIXES``; the importer marks them untrained in the checkpoint and says so).
"""

from __future__ import annotations

from hmrt.train.models.official_keys import KeyMap

RENAMES: tuple[tuple[str, str], ...] = ()

# hmrt-only modules the official release cannot contain: (key prefix, what it is).
UNTRAINED_PREFIXES: tuple[tuple[str, str], ...] = (("posh.", "PoSh (the SMPL regressor)"),)

# Buffers the official constructor computes; hmrt's soft-argmax uses its own copy of the grid, so
# the importer checks that the file's values are that grid (a different one would load silently).
CONSTANT_KEYS: tuple[str, ...] = ("volume_reg.dis_map",)

KEYMAP = KeyMap(RENAMES)
official_to_hmrt_key = KEYMAP.to_hmrt
convert_official_state_dict = KEYMAP.convert
