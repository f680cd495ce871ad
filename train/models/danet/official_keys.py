"""Map the official DaNet checkpoint (``torch.load(ckpt)["model"]``) onto this implementation.

The paper variant has the official layer structure, so conversion is renames and drops only:
heads at ``img2iuv.final_pred`` (officially ``img2iuv.iuv_est.final_pred``), the learned RoI
ratio/offset and mean pose inside their modules, the regressor at ``regressor`` (officially
``iuv2smpl.smpl_para_Outs``) and torchvision's ``fc`` for the global ResNet's ``final_layer``.
Dropped: the SMPL layer, modules unused in ``gcn`` mode (``rot2pos``, ``pos2rot``) and the graph
constants that this implementation rebuilds from :mod:`tables`.

Caveat: official weights regress SMPL parameters; with hmrt's open body model (not SMPL) the
meshes differ. Parity with the released checkpoints needs a real SMPL file as ``body``.
"""

from __future__ import annotations

from hmrt.train.models.official_keys import KeyMap

RENAMES = (
    ("img2iuv.iuv_est.final_pred.", "img2iuv.final_pred."),
    ("img2iuv.learned_ratio", "img2iuv.roi_theta.learned_ratio"),
    ("img2iuv.learned_offset", "img2iuv.roi_theta.learned_offset"),
    ("iuv2smpl.smpl_para_Outs.mean_pose", "regressor.rotation.mean_pose"),
    ("iuv2smpl.smpl_para_Outs.body_net.3.final_layer.", "regressor.body_net.3.fc."),
    ("iuv2smpl.smpl_para_Outs.", "regressor."),
)

DROPPED_PREFIXES = (
    "iuv2smpl.smpl.",
    "iuv2smpl.smpl_para_Outs.rot2pos.",
    "iuv2smpl.smpl_para_Outs.pos2rot.",
)
DROPPED_KEYS = tuple(
    f"iuv2smpl.smpl_para_Outs.{name}" for name in ("I_n", "A_link", "A", "A_mask", "r2p_A", "p2r_A")
)


KEYMAP = KeyMap(RENAMES, DROPPED_PREFIXES, DROPPED_KEYS)
official_to_hmrt_key = KEYMAP.to_hmrt
convert_official_state_dict = KEYMAP.convert
