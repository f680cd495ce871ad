"""Procedural appearance of the synthetic person: skin, hair, clothes, textures and lighting.

Clothing is assigned per mesh face from its DensePose part and its rest-pose position (sleeve
and trouser lengths, waist line, hair line are thresholds on rest-pose coordinates), so a
garment edge follows the body as it moves. Patterns are evaluated per pixel:

* ``solid``, ``stripes`` and ``checks`` are solid textures of the *rest-pose* 3D position of
  the visible surface point (no seams, fixed to the body);
* ``noise`` samples a per-sample value-noise image in the body's UV atlas (``vt``/``ft``);
* ``parts`` gives every DensePose part its own base colour (a body-suit look).

Shading is Lambert from interpolated vertex normals under an ambient term and one or two
directional lights in the camera frame, two-sided (normals turned towards the camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hmrt.runtime.render.maps import interpolate_corners, interpolate_vertices
from hmrt.runtime.render.overlay import vertex_normals
from hmrt.train.data.backgrounds import random_colors, value_noise

SKIN, TOP, BOTTOM, SHOES, HAIR = range(5)
GARMENTS = ("skin", "top", "bottom", "shoes", "hair")
PATTERNS = ("solid", "stripes", "checks", "noise", "parts")

# Skin tones (sRGB 0..1) spanning light to dark; jittered per sample.
_SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69], [0.92, 0.72, 0.58], [0.87, 0.67, 0.52], [0.80, 0.58, 0.43],
        [0.71, 0.49, 0.35], [0.60, 0.40, 0.27], [0.48, 0.31, 0.20], [0.36, 0.23, 0.15],
        [0.27, 0.17, 0.11],
    ]
)  # fmt: skip
_HAIR_COLOURS = np.array(
    [[0.05, 0.04, 0.03], [0.18, 0.11, 0.06], [0.35, 0.22, 0.12], [0.60, 0.45, 0.25],
     [0.75, 0.62, 0.40], [0.45, 0.18, 0.08], [0.55, 0.55, 0.55], [0.85, 0.85, 0.82]]
)  # fmt: skip
_ARM_PARTS = np.arange(15, 23)  # upper and lower arms
_LEG_PARTS = np.arange(7, 15)  # upper and lower legs


@dataclass
class Appearance:
    """One person's look: garment per face, colours, patterns and lights (camera frame)."""

    face_garment: np.ndarray  # (F,) uint8 garment index per face
    colors: np.ndarray  # (5, 2, 3) float32 primary/secondary colour per garment
    patterns: np.ndarray  # (5,) int pattern index per garment (into PATTERNS)
    pattern_freq: np.ndarray  # (5,) cycles per metre of solid textures
    pattern_dir: np.ndarray  # (5, 3) unit direction of stripes
    part_colors: np.ndarray  # (25, 3) float32 colours of the "parts" pattern
    noise: np.ndarray  # (64, 64) float32 value noise in the UV atlas
    ambient: float
    lights: np.ndarray  # (L, 3) unit directions *towards* the lights, camera frame
    light_colors: np.ndarray  # (L, 3) RGB intensities


class AppearanceModel:
    """Samples :class:`Appearance` for one body model and shades rasterized people with it."""

    def __init__(self, body):
        self.faces = np.ascontiguousarray(body.faces, dtype=np.int32)
        self.rest = np.asarray(body.v_template, dtype=np.float32)
        n_faces = len(self.faces)
        parts = body.dp_I if body.dp_I is not None else np.ones(n_faces, np.uint8)
        self.part = np.asarray(parts, dtype=np.uint8)
        self.centroid = self.rest[self.faces].mean(axis=1)  # (F, 3) rest-pose face centres
        joints = np.asarray(body.J_template, dtype=np.float32)
        self.joints = joints
        if body.vt is not None and body.ft is not None:
            self.atlas_corners = np.asarray(body.vt, np.float32)[np.asarray(body.ft)]  # (F,3,2)
        else:
            self.atlas_corners = None
        top = float(self.rest[:, 1].max())
        # Landmarks on the rest mesh (SMPL joint order) used to cut garments.
        self.shoulder_x = float(abs(joints[16, 0]))
        self.wrist_x = float(abs(joints[20, 0]))
        self.hip_y = float(joints[0, 1])
        self.knee_y = float(joints[4, 1])
        self.ankle_y = float(joints[7, 1])
        self.neck_y = float(joints[12, 1])
        self.head_y = float(joints[15, 1])
        self.head_z = float(joints[15, 2])
        self.top_y = top
        self.is_arm = np.isin(self.part, _ARM_PARTS)
        self.is_leg = np.isin(self.part, _LEG_PARTS)
        self.is_torso = np.isin(self.part, (1, 2))
        self.is_foot = np.isin(self.part, (5, 6))
        self.is_head = np.isin(self.part, (23, 24))

    # -- sampling ----------------------------------------------------------------------------
    def _garments(self, rng: np.random.Generator) -> np.ndarray:
        c = self.centroid
        g = np.full(len(c), SKIN, np.uint8)
        # Sleeves end between the shoulder (sleeveless) and the wrist (long).
        sleeve = self.shoulder_x + rng.choice([0.05, 0.3, 0.6, 1.0]) * (
            self.wrist_x - self.shoulder_x
        )
        waist_y = self.hip_y + rng.uniform(0.02, 0.12)
        hem_y = rng.choice([self.knee_y + 0.12, self.knee_y, self.ankle_y + 0.12, self.ankle_y])
        g[self.is_torso] = TOP
        g[self.is_arm & (np.abs(c[:, 0]) < sleeve)] = TOP
        g[self.is_torso & (c[:, 1] < waist_y)] = BOTTOM
        g[self.is_leg & (c[:, 1] > hem_y)] = BOTTOM
        if rng.uniform() < 0.9:
            g[self.is_foot] = SHOES
        if rng.uniform() < 0.85:  # hair: above the brow, or also down the back of the head
            brow = self.head_y + rng.uniform(0.06, 0.1)
            hair = self.is_head & (c[:, 1] > brow)
            if rng.uniform() < 0.6:
                nape = self.neck_y + rng.uniform(-0.05, 0.05)
                hair |= self.is_head & (c[:, 2] < self.head_z - 0.02) & (c[:, 1] > nape)
            g[hair] = HAIR
        return g

    def sample(self, rng: np.random.Generator) -> Appearance:
        """A random look and lighting."""
        colors = random_colors(rng, 2 * len(GARMENTS)).reshape(len(GARMENTS), 2, 3)
        skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
        colors[SKIN] = [skin, skin * 0.85]
        hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
        colors[HAIR] = [hair, hair * 0.7]
        patterns = rng.choice(4, size=5, p=[0.4, 0.25, 0.15, 0.2])
        patterns[SKIN], patterns[HAIR] = 3, 3  # subtle blotches on skin, strands on hair
        colors[SKIN, 1] = skin * rng.uniform(0.85, 0.97)
        if rng.uniform() < 0.1:
            patterns[TOP] = patterns[BOTTOM] = 4
        direction = rng.normal(size=(5, 3))
        direction[:, 1] += 2.0 * np.sign(rng.normal(size=5))  # mostly horizontal stripes
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        n_lights = int(rng.integers(1, 3))
        # Lights come from in front (towards -Z, the camera) and mostly from above (-Y).
        lights = np.stack(
            [
                rng.uniform(-1, 1, n_lights),
                rng.uniform(-1.2, 0.3, n_lights),
                -rng.uniform(0.3, 1.2, n_lights),
            ],
            axis=1,
        )
        lights /= np.linalg.norm(lights, axis=1, keepdims=True)
        warm = rng.uniform(-0.1, 0.1)
        light_colors = np.outer(rng.uniform(0.5, 1.0, n_lights), [1 + warm, 1.0, 1 - warm])
        return Appearance(
            face_garment=self._garments(rng),
            colors=np.clip(colors, 0, 1).astype(np.float32),
            patterns=patterns,
            pattern_freq=rng.uniform(8.0, 40.0, 5),
            pattern_dir=direction,
            part_colors=random_colors(rng, 25),
            noise=value_noise(rng, 64, 64, octaves=3, base=int(rng.integers(2, 8))),
            ambient=float(rng.uniform(0.25, 0.55)),
            lights=lights,
            light_colors=light_colors,
        )

    # -- shading -----------------------------------------------------------------------------
    def _albedo(
        self, app: Appearance, fid: np.ndarray, bary: np.ndarray, rest_p: np.ndarray
    ) -> np.ndarray:
        """Per-pixel albedo (P, 3) of covered pixels (faces, barycentrics, rest-pose points)."""
        garment = app.face_garment[fid]
        out = np.empty((len(fid), 3), np.float32)
        for g in np.unique(garment):
            sel = garment == g
            a, b = app.colors[g]
            kind = PATTERNS[app.patterns[g]]
            p = rest_p[sel]
            if kind == "stripes":
                t = np.sin(2 * np.pi * app.pattern_freq[g] * (p @ app.pattern_dir[g])) > 0.0
            elif kind == "checks":
                f = app.pattern_freq[g] * 0.5
                s = np.sin(2 * np.pi * f * p)
                t = (s[:, 0] * s[:, 1] * s[:, 2]) > 0.0
            elif kind == "noise" and self.atlas_corners is not None:
                uv = interpolate_corners(fid[sel], bary[sel], self.atlas_corners)
                n = app.noise.shape[0]
                ij = np.clip((uv * (n - 1)).astype(np.int64), 0, n - 1)
                t = app.noise[n - 1 - ij[:, 1], ij[:, 0]]
            elif kind == "parts":
                out[sel] = app.part_colors[self.part[fid[sel]]]
                continue
            else:
                out[sel] = a
                continue
            t = np.asarray(t, np.float32)[:, None]
            out[sel] = a * (1 - t) + b * t
        return out

    def shade(
        self,
        app: Appearance,
        vertices: np.ndarray,
        face_id: np.ndarray,
        bary: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shaded colours of the covered pixels of a raster.

        ``vertices`` (V, 3) camera frame; ``face_id`` (H, W) and ``bary`` (H, W, 3) from
        :func:`hmrt.runtime.render.rasterize`. Returns flat pixel indices (P,) into ``H*W`` and
        their RGB colours (P, 3) float32 in 0..1.
        """
        flat = np.flatnonzero(face_id.reshape(-1) >= 0)
        fid = face_id.reshape(-1)[flat]
        b = bary.reshape(-1, 3)[flat]
        # One interpolation pass for rest-pose point, normal and camera-frame point per pixel.
        vn = vertex_normals(vertices, self.faces)
        values = np.concatenate([self.rest, vn, np.asarray(vertices, np.float32)], axis=1)
        interp = interpolate_vertices(fid, b, self.faces, values)
        rest_p, n, point = interp[:, :3], interp[:, 3:6], interp[:, 6:]
        albedo = self._albedo(app, fid, b, rest_p)
        n /= np.maximum(np.sqrt((n * n).sum(axis=1, keepdims=True)), 1e-6)
        # Two-sided: turn normals towards the camera (at the origin) so back faces seen through
        # open mesh borders are lit like front faces.
        n *= np.where((n * point).sum(axis=1, keepdims=True) > 0, -1.0, 1.0)
        light = np.full((len(fid), 3), app.ambient, np.float32)
        for d, c in zip(app.lights, app.light_colors):
            light += np.maximum(n @ d, 0.0)[:, None] * c
        return flat, np.clip(albedo * light, 0.0, 1.0)
