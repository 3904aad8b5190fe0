"""Procedural street scenes with exact per-pixel Cityscapes labels.

One image is a one-point-perspective street seen from a car: a camera
``cam_h`` metres above a flat ground plane, focal length ``f`` pixels,
horizon row ``horizon`` and vanishing column ``vp_x``. A point ``X`` metres
to the right, ``v`` metres up and ``Z`` metres ahead projects to

    x = vp_x + f * X / Z,        y = horizon + f * (cam_h - v) / Z,

so every object's size in pixels follows from its depth, and ground pixels
map back to metric ground coordinates (used for perspective textures).

The scene is built to be *learnable but confusable*, so that a teacher's
per-pixel distributions are multimodal and there is dark knowledge to
distil:

* road and sidewalk share one grey; the road has fine asphalt noise and lane
  markings, the sidewalk a tile grid. Far away both textures fade out
  (they are faded once their period drops below a few pixels), so only
  context (position relative to the curb and the road's trapezoid) tells
  them apart.
* building, wall and fence share a facade palette; a building has windows,
  a wall is plain and low, a fence has bars.
* car, truck, bus and train share one paint palette and differ in size and
  shape (a train has a pantograph and runs on embedded rails).
* person and rider share clothes and body; a rider sits on a bicycle or
  motorcycle.
* vegetation and terrain have overlapping greens; vegetation is leafy
  (high-frequency) and stands up, terrain is smooth and lies on the ground.

Void pixels are rendered with their Cityscapes meaning kept apart
(``UNLABELED``, ``EGO_VEHICLE``, ``STATIC``) so that ``labelIds`` can be
written faithfully; all of them are train id 255. Like in real Cityscapes,
licence plates are labelled as part of their car.

Everything here is numpy and OpenCV; the only randomness is the
``numpy.random.Generator`` passed in, so a scene is a pure function of it.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Cityscapes train ids, in the class order of mmseg's CityscapesDataset.
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN,
 VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE,
 BICYCLE) = range(19)
NUM_CLASSES = 19
# Void codes used while rendering; all become train id 255 on disk.
STATIC = 253  # bins, benches, columns: Cityscapes label 'static' (id 4)
EGO_VEHICLE = 254  # the bonnet of the recording car (id 1)
UNLABELED = 255  # annotation gaps on object boundaries (id 0)

Colour = Tuple[float, float, float]
# A part of an object in its own metric frame (u right, v up, metres):
# ('poly', points, colour, code), ('circle', (centre, radius, thickness),
# colour, code) with thickness None for filled, ('line', (p0, p1, width),
# colour, code). The colour LEAVES gives the part the vegetation texture.
Part = tuple

# Palettes are RGB in [0, 1]. Classes that should be confusable draw from
# the same palette (see the module docstring).
FACADE = ((0.76, 0.69, 0.56), (0.56, 0.56, 0.56), (0.83, 0.81, 0.77),
          (0.55, 0.32, 0.24), (0.75, 0.61, 0.38), (0.78, 0.63, 0.60),
          (0.36, 0.36, 0.38), (0.60, 0.65, 0.70))
PAINT = ((0.86, 0.86, 0.86), (0.64, 0.65, 0.68), (0.10, 0.10, 0.11),
         (0.12, 0.18, 0.36), (0.62, 0.10, 0.08), (0.13, 0.28, 0.18),
         (0.70, 0.65, 0.50), (0.86, 0.70, 0.15), (0.40, 0.40, 0.42))
CLOTHES = ((0.12, 0.12, 0.13), (0.15, 0.18, 0.32), (0.45, 0.45, 0.47),
           (0.68, 0.60, 0.45), (0.65, 0.12, 0.12), (0.85, 0.85, 0.83),
           (0.25, 0.33, 0.52), (0.40, 0.27, 0.17), (0.20, 0.35, 0.25))
SKIN = ((0.93, 0.76, 0.64), (0.80, 0.60, 0.45), (0.55, 0.38, 0.26),
        (0.36, 0.24, 0.17))
GLASS = (0.14, 0.17, 0.22)
TYRE = (0.06, 0.06, 0.06)
WHITE = (0.88, 0.88, 0.86)
LEAVES = 'leaves'


class Scene:
    """Canvas and camera of one image, rendered at the working resolution.

    Args:
        height (int): Canvas height in pixels.
        width (int): Canvas width in pixels.
        rng (np.random.Generator): The only source of randomness.
    """

    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.h, self.w, self.rng = height, width, rng
        self.f = width * rng.uniform(0.85, 1.25)
        self.cam_h = rng.uniform(1.1, 1.5)
        self.horizon = height * rng.uniform(0.36, 0.48)
        self.vp_x = width * rng.uniform(0.4, 0.6)
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), UNLABELED, np.uint8)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        self.ys, self.xs = ys, xs
        # Two noise fields give every texture its grain: `fine` is per-pixel
        # grain, `coarse` slow variation (stains, patches, clouds).
        self.fine = cv2.GaussianBlur(
            rng.standard_normal((height, width)).astype(np.float32), (0, 0),
            0.7)
        self.fine /= self.fine.std() + 1e-6
        small = rng.standard_normal((height // 16 + 2, width // 16 + 2))
        self.coarse = cv2.resize(
            small.astype(np.float32), (width, height),
            interpolation=cv2.INTER_CUBIC)

    # Geometry -------------------------------------------------------------
    def project(self, x_m, v_m, z_m) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` of metric points."""
        z_m = np.maximum(z_m, 0.3)
        return np.stack(
            np.broadcast_arrays(self.vp_x + self.f * np.asarray(x_m) / z_m,
                                self.horizon + self.f *
                                (self.cam_h - np.asarray(v_m)) / z_m), -1)

    def fade(self, period_m: float, z: np.ndarray) -> np.ndarray:
        """Contrast left to a pattern of ``period_m`` metres at depth ``z``.

        Patterns whose period shrinks below ~3 pixels fade to their mean
        instead of aliasing: far away, texture stops telling classes apart.
        """
        return np.clip(self.f * period_m / z / 3.0 - 0.3, 0.0, 1.0)

    # Drawing ---------------------------------------------------------------
    def polygon_mask(self, points: np.ndarray) -> np.ndarray:
        mask = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(mask, [_fixed(points)], 1, cv2.LINE_8, _SHIFT)
        return mask.astype(bool)

    def paint(self, mask: np.ndarray, colour, code: int) -> None:
        """Set ``mask`` pixels to ``colour`` and ``code``.

        ``colour`` is one RGB, one per masked pixel ``(N, 3)``, or a whole
        ``(H, W, 3)`` field of which the masked pixels are taken.
        """
        colour = np.asarray(colour)
        self.image[mask] = colour[mask] if colour.ndim == 3 else colour
        self.label[mask] = code

    def draw_object(self, parts: Sequence[Part], x_m: float, z_m: float,
                    foreshorten: float = 1.0, outline: bool = False) -> None:
        """Draw an upright object standing at ``(x_m, z_m)``.

        Objects face the camera (their plane is at constant depth), which is
        how rear views and crossing traffic look; ``|foreshorten|`` < 1
        narrows side views seen at an angle.

        Args:
            parts: The object's parts in its metric frame, back to front.
            x_m (float): Lateral position of the object's origin, metres.
            z_m (float): Depth, metres.
            foreshorten (float): Horizontal scale of the parts; negative
                mirrors them (a side view facing left).
            outline (bool): Leave a 1-pixel unlabelled gap around the object,
                as annotators' polygons often do.
        """
        scale = self.f / z_m

        def to_px(points):
            points = np.asarray(points, np.float64).reshape(-1, 2)
            return self.project(x_m + points[:, 0] * foreshorten,
                                points[:, 1], z_m)

        codes = np.zeros((self.h, self.w), np.uint8)  # code + 1, 0 = none
        leaves = np.zeros((self.h, self.w), np.uint8)
        for kind, geometry, colour, code in parts:
            assert code < 255, f'code {code} cannot be stored as code + 1'
            if kind == 'poly':
                shape = (_fixed(to_px(geometry)), )
            elif kind == 'circle':
                centre, radius, thickness = geometry
                shape = (tuple(_fixed(to_px(centre))[0]),
                         int(round(radius * scale * (1 << _SHIFT))),
                         -1 if thickness is None else _px(thickness * scale))
            elif kind == 'line':
                p0, p1, width = geometry
                ends = _fixed(to_px([p0, p1]))
                shape = (tuple(ends[0]), tuple(ends[1]), _px(width * scale))
            else:
                raise ValueError(f'unknown part kind {kind!r}')
            textured = isinstance(colour, str)
            _rasterize(codes, kind, shape, code + 1)
            _rasterize(leaves, kind, shape, int(textured))
            if not textured:
                _rasterize(self.image, kind, shape,
                           tuple(float(c) for c in colour))
        drawn = codes > 0
        self.label[drawn] = codes[drawn] - 1
        if leaves.any():
            self.paint_leaves(leaves.astype(bool))
        if outline and drawn.sum() > 60:
            inner = cv2.erode(drawn.astype(np.uint8), np.ones((3, 3)))
            self.label[drawn & ~inner.astype(bool)] = UNLABELED

    def paint_leaves(self, mask: np.ndarray) -> None:
        """Vegetation: high-frequency leafy texture with dark gaps."""
        base = _green(self.rng, 0.2, 0.5)
        shade = (0.75 + 0.3 * np.tanh(self.fine[mask]) +
                 0.1 * self.coarse[mask])
        self.paint(mask, base * shade[:, None], VEGETATION)


def _rasterize(canvas: np.ndarray, kind: str, shape: tuple, value) -> None:
    """Draw one part (already in fixed-point pixels) onto ``canvas``."""
    if kind == 'poly':
        cv2.fillPoly(canvas, [shape[0]], value, cv2.LINE_8, _SHIFT)
    elif kind == 'circle':
        centre, radius, thickness = shape
        cv2.circle(canvas, centre, radius, value, thickness, cv2.LINE_8,
                   _SHIFT)
    else:
        p0, p1, thickness = shape
        cv2.line(canvas, p0, p1, value, thickness, cv2.LINE_8, _SHIFT)


def _px(length: float) -> int:
    """A line thickness in whole pixels, never thinner than one."""
    return max(1, int(round(length)))


_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel accurate small objects


def _fixed(points) -> np.ndarray:
    return np.round(np.asarray(points, np.float64).reshape(-1, 2) *
                    (1 << _SHIFT)).astype(np.int32)


def _jitter(rng: np.random.Generator, colour: Colour,
            amount: float = 0.05) -> np.ndarray:
    return np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3), 0, 1)


def _pick(rng: np.random.Generator, palette: Sequence[Colour],
          amount: float = 0.05) -> np.ndarray:
    return _jitter(rng, palette[rng.integers(len(palette))], amount)


def _green(rng: np.random.Generator, lo_value: float,
           hi_value: float) -> np.ndarray:
    """A leaf or grass green; vegetation and terrain ranges overlap."""
    hue = rng.uniform(50, 115) / 360.0
    sat = rng.uniform(0.35, 0.7)
    val = rng.uniform(lo_value, hi_value)
    hsv = np.array([[[hue * 180, sat * 255, val * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.


def _hash(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer pair."""
    return np.modf(np.abs(np.sin(a * 12.9898 + b * 78.233)) * 43758.5453)[0]


# Scene layout ---------------------------------------------------------------
class Street:
    """Metric layout of the street: bands across, blocks along.

    Lateral bands from the road outwards on each side (``-1`` left,
    ``+1`` right): road half-width, optional grass verge, sidewalk; the
    facade line is where they end. An optional crossing street interrupts
    the blocks between ``cross_z`` and ``cross_z + cross_w``; the street ends
    in a block at ``end_z``.
    """

    def __init__(self, rng: np.random.Generator, focus: Optional[int]):
        self.road = {s: rng.uniform(3.0, 6.0) for s in (-1, 1)}
        self.verge = {
            s: rng.uniform(0.8, 2.5) if
            (rng.random() < 0.25 or focus == TERRAIN) else 0.0
            for s in (-1, 1)
        }
        self.sidewalk = {s: rng.uniform(2.5, 6.0) for s in (-1, 1)}
        self.facade = {
            s: self.road[s] + self.verge[s] + self.sidewalk[s]
            for s in (-1, 1)
        }
        self.end_z = rng.uniform(50, 160)
        has_cross = rng.random() < 0.4
        self.cross_z = rng.uniform(14, 40) if has_cross else np.inf
        self.cross_w = rng.uniform(10, 16) if has_cross else 0.0
        self.tiled = rng.random() < 0.8
        self.rails: Optional[float] = None  # tram rails at this X, if any

    def in_crossing(self, z: float) -> bool:
        return self.cross_z <= z < self.cross_z + self.cross_w


# Background: sky, ground, facades -------------------------------------------
def _draw_sky(scene: Scene) -> None:
    rng = scene.rng
    if rng.random() < 0.4:  # overcast: grey-white, close to white facades
        top = np.full(3, rng.uniform(0.62, 0.85))
        bottom = np.clip(top + rng.uniform(0.0, 0.1), 0, 1)
        clouds = 0.03
    else:
        top = _jitter(rng, (0.27, 0.47, 0.78), 0.06)
        bottom = _jitter(rng, (0.68, 0.79, 0.90), 0.05)
        clouds = 0.12
    t = np.clip(scene.ys[:, :1] / max(scene.horizon, 1.0), 0, 1)[..., None]
    scene.image[:] = top * (1 - t) + bottom * t
    scene.image += clouds * np.clip(scene.coarse, 0, None)[..., None]
    scene.label[:] = SKY


def _draw_ground(scene: Scene, street: Street) -> None:
    """Road, curb, verges, sidewalks and terrain on the ground plane.

    Works on the rows below the horizon, with every pixel's metric ground
    coordinates ``x`` (lateral) and ``z`` (depth; one value per row).
    """
    rng = scene.rng
    first = int(np.ceil(scene.horizon))  # first row whose centre is below
    rows = slice(first, scene.h)
    z = scene.f * scene.cam_h / (scene.ys[rows, :1] - scene.horizon)
    x = (scene.xs[rows] - scene.vp_x) * z / scene.f
    fine, coarse = scene.fine[rows], scene.coarse[rows]
    right = x >= 0
    ax = np.abs(x)
    road_edge = np.where(right, street.road[1], street.road[-1])
    verge_edge = road_edge + np.where(right, street.verge[1],
                                      street.verge[-1])
    walk_edge = np.where(right, street.facade[1], street.facade[-1])
    crossing = (z >= street.cross_z) & (z < street.cross_z + street.cross_w)
    road = (ax <= road_edge) | crossing
    walk = ~road & (ax > verge_edge) & (ax <= walk_edge)
    code = np.select([road, walk], [ROAD, SIDEWALK], TERRAIN).astype(np.uint8)

    # Road and sidewalk share one grey (give or take) and differ in texture.
    asphalt = rng.uniform(0.28, 0.5)
    paving = asphalt + rng.uniform(-0.05, 0.1)
    grey = np.where(road, asphalt + 0.035 * fine + 0.03 * coarse,
                    paving + 0.02 * fine)
    # Road: lane markings and a zebra before a crossing, faded with depth.
    centre = (ax < 0.07) & (np.mod(z, 9.0) < 3.0)
    edges = np.abs(ax - (road_edge - 0.35)) < 0.07
    zebra = ((z > street.cross_z - 4) & (z < street.cross_z - 1) &
             (np.mod(x, 1.0) < 0.5))
    marks = road & (centre | edges | zebra) & ~crossing
    fade = scene.fade(0.5, z)
    grey = np.where(marks, grey * (1 - fade) + WHITE[0] * fade, grey)
    if street.rails is not None:  # embedded tram rails are still road
        rails = road & (np.abs(np.abs(x - street.rails) - 0.72) < 0.06)
        grey = np.where(rails, grey * (1 - 0.5 * fade), grey)
    # Sidewalk: a tile grid and a light curb.
    tile = rng.uniform(0.3, 0.6)
    if street.tiled:
        joints = walk & ((np.mod(x, tile) < 0.035) |
                         (np.mod(z, tile) < 0.035))
        grey = np.where(joints, grey * (1 - 0.3 * scene.fade(tile, z)), grey)
    grey = np.where(walk & (ax - verge_edge < 0.2), paving + 0.12, grey)
    colour = grey[..., None] + rng.uniform(-0.02, 0.02, 3).astype(np.float32)

    # Terrain: verges and everything beyond the facade line that no
    # building hides (parks, open ground).
    terrain = code == TERRAIN
    shade = 1 + 0.12 * coarse[terrain] + 0.04 * fine[terrain]
    colour[terrain] = _green(rng, 0.35, 0.62) * shade[:, None]

    # Building shadows across the street darken the ground (and so hide the
    # asphalt/paving difference) without changing any label.
    if rng.random() < 0.5:
        period = rng.uniform(15, 40)
        reach = rng.uniform(-street.road[-1], street.road[1])
        s = -1 if rng.random() < 0.5 else 1
        shadow = (s * x > s * reach) & (np.mod(z, period) <
                                        period * rng.uniform(0.3, 0.8))
        colour[shadow] *= rng.uniform(0.5, 0.75)
    scene.image[rows] = colour
    scene.label[rows] = code


def _facade_texture(scene: Scene, mask: np.ndarray, u: np.ndarray,
                    v: np.ndarray, z: np.ndarray, colour: np.ndarray,
                    windows: bool) -> np.ndarray:
    """Colours of facade pixels from their facade coordinates.

    Args:
        scene (Scene): The scene (for noise and fading).
        mask (np.ndarray): ``(H, W)`` bool, the pixels to colour.
        u, v, z (np.ndarray): Metres along the facade, above ground, and
            depth of the masked pixels (1-D, in mask order).
        colour (np.ndarray): The facade's base RGB.
        windows (bool): Windows for buildings; walls are plain.
    """
    rng = scene.rng
    out = colour * (1 + 0.07 * scene.coarse[mask] +
                    0.03 * scene.fine[mask])[:, None]
    if not windows:
        return out
    floor, spacing = rng.uniform(2.9, 3.6), rng.uniform(2.2, 4.0)
    win_w = spacing * rng.uniform(0.35, 0.7)
    sill, win_h = floor * 0.28, floor * rng.uniform(0.35, 0.55)
    shop = v < 3.4
    in_floor = np.mod(v, floor)
    in_bay = np.mod(u, spacing)
    window = ((in_floor > sill) & (in_floor < sill + win_h) &
              (in_bay < win_w) & ~shop)
    shop_window = shop & (v > 0.5) & (v < 2.8) & (in_bay < spacing * 0.8)
    glass = np.asarray(GLASS) + 0.25 * _hash(
        np.floor(u / spacing), np.floor(v / floor))[:, None] * np.array(
            [0.6, 0.8, 1.0])
    fade = scene.fade(spacing * 0.5, z)[:, None]
    mixed = out * (1 - fade) + glass * fade
    return np.where((window | shop_window)[:, None], mixed, out)


def _plane_pixels(scene: Scene, mask: np.ndarray, side: int,
                  plane_x: Optional[float] = None,
                  plane_z: Optional[float] = None):
    """Facade coordinates ``(u, v, z)`` of the masked pixels of a plane.

    Side planes are at lateral position ``side * plane_x`` (u runs along
    depth); frontal planes are at depth ``plane_z`` (u runs sideways).
    """
    xs, ys = scene.xs[mask], scene.ys[mask]
    if plane_z is None:
        z = scene.f * plane_x / np.maximum(side * (xs - scene.vp_x), 1e-3)
        u = z
    else:
        z = np.full_like(xs, plane_z)
        u = (xs - scene.vp_x) * plane_z / scene.f
    v = scene.cam_h - (ys - scene.horizon) * z / scene.f
    return u, v, z


def _side_quad(scene: Scene, side: int, plane_x: float, z0: float, z1: float,
               top: float) -> np.ndarray:
    z = np.array([z0, z0, z1, z1])
    return scene.project(side * plane_x, np.array([0, top, top, 0]), z)


def _frontal_quad(scene: Scene, x0: float, x1: float, z: float,
                  top: float) -> np.ndarray:
    return scene.project(
        np.array([x0, x0, x1, x1]), np.array([0, top, top, 0]), z)


def _draw_block(scene: Scene, mask: np.ndarray, kind: str, side: int,
                plane_x: Optional[float] = None,
                plane_z: Optional[float] = None,
                height: float = 10.0) -> None:
    """Paint one block face: a building, a wall or a hedge/tree line."""
    rng = scene.rng
    u, v, z = _plane_pixels(scene, mask, side, plane_x, plane_z)
    if kind == 'vegetation':
        # A lumpy crown line: canopy height varies along the block.
        phase = rng.uniform(0, 2 * np.pi, 3)
        top = height * (0.8 + 0.12 * np.sin(u / 2.3 + phase[0]) +
                        0.08 * np.sin(u / 0.9 + phase[1]))
        keep = v < top
        sub = mask.copy()
        sub[mask] = keep
        scene.paint_leaves(sub)
        return
    colour = _pick(rng, FACADE)
    pixels = _facade_texture(scene, mask, u, v, z, colour,
                             windows=kind == 'building')
    scene.paint(mask, pixels, BUILDING if kind == 'building' else WALL)


def _draw_fence(scene: Scene, side: int, plane_x: float, z0: float, z1: float,
                height: float) -> None:
    """Bars over whatever is behind; the whole fence area is labelled."""
    rng = scene.rng
    mask = scene.polygon_mask(_side_quad(scene, side, plane_x, z0, z1, height))
    if not mask.any():
        return
    u, v, z = _plane_pixels(scene, mask, side, plane_x)
    metal = _pick(rng, FACADE[1:3] + FACADE[6:] + ((0.45, 0.33, 0.22), ))
    gap = rng.uniform(0.12, 0.3)
    bars = ((np.mod(u, gap) < gap * 0.45) | (v > height - 0.12) |
            (np.abs(v - 0.25) < 0.06))
    behind = scene.image[mask] * 0.85
    near = np.where(bars[:, None], metal, behind)
    # Far away the bars blur into a mix of bar colour and background.
    contrast = scene.fade(gap, z)[:, None]
    pixels = near * contrast + (0.5 * metal + 0.5 * behind) * (1 - contrast)
    scene.paint(mask, pixels, FENCE)


def _draw_backdrop(scene: Scene, street: Street, focus: Optional[int]) -> None:
    """Everything beyond the street corridor, far to near."""
    rng = scene.rng
    left, right = street.facade[-1], street.facade[1]
    # The block closing the street.
    kind = 'building' if rng.random() < 0.7 else 'vegetation'
    height = rng.uniform(8, 25)
    mask = scene.polygon_mask(
        _frontal_quad(scene, -left - 40, right + 40, street.end_z, height))
    _draw_block(scene, mask, kind, 1, plane_z=street.end_z, height=height)
    # Far sides of a crossing street: frontal faces of the next blocks.
    if np.isfinite(street.cross_z):
        far_z = street.cross_z + street.cross_w
        for s in (-1, 1):
            height = rng.uniform(8, 22)
            x0, x1 = sorted((s * street.facade[s], s * 80.0))
            mask = scene.polygon_mask(
                _frontal_quad(scene, x0, x1, far_z, height))
            _draw_block(scene, mask, 'building', s, plane_z=far_z,
                        height=height)
    for s in (-1, 1):
        _draw_side(scene, street, s, focus)


def _draw_side(scene: Scene, street: Street, side: int,
               focus: Optional[int]) -> None:
    """Blocks along one side of the street, each a face on the facade line."""
    rng = scene.rng
    plane_x = street.facade[side]
    blocks: List[Tuple[float, float, str, float]] = []
    z = 1.0
    while z < street.end_z - 1.0:
        if street.in_crossing(z):  # blocks resume after the crossing street
            z = street.cross_z + street.cross_w
            continue
        stop = street.cross_z if street.cross_z > z else street.end_z
        z0, z = z, min(z + rng.uniform(8, 30), stop)
        kind = rng.choice(['building', 'building', 'building', 'vegetation',
                           'wall', 'open'])
        if focus == WALL and side < 0 and z0 < 45 and z > 15:
            kind = 'wall'  # where the left facade line is in view
        blocks.append((z0, z, str(kind), rng.uniform(6, 24)))

    for z0, z1, kind, height in reversed(blocks):  # far to near
        if kind == 'open':  # a park: terrain with trees set back
            set_back = plane_x + rng.uniform(4, 15)
            height = rng.uniform(4, 12)
            mask = scene.polygon_mask(
                _side_quad(scene, side, set_back, z0, z1, height))
            _draw_block(scene, mask, 'vegetation', side, set_back,
                        height=height)
        elif kind == 'wall':  # a low wall with trees or a house behind it
            behind = 'vegetation' if rng.random() < 0.6 else 'building'
            set_back = plane_x + rng.uniform(2, 8)
            mask = scene.polygon_mask(
                _side_quad(scene, side, set_back, z0, z1, height))
            _draw_block(scene, mask, behind, side, set_back, height=height)
            wall_h = rng.uniform(1.2, 3.0)
            mask = scene.polygon_mask(
                _side_quad(scene, side, plane_x, z0, z1, wall_h))
            _draw_block(scene, mask, 'wall', side, plane_x)
        else:
            if kind == 'vegetation':
                height = rng.uniform(3, 12)
            mask = scene.polygon_mask(
                _side_quad(scene, side, plane_x, z0, z1, height))
            _draw_block(scene, mask, kind, side, plane_x, height=height)
        wants_fence = focus == FENCE and side > 0 and z0 < 30
        if wants_fence or (kind != 'building' and rng.random() < 0.35):
            fence_x = plane_x - rng.uniform(0.1, 0.6)
            _draw_fence(scene, side, fence_x, z0, z1, rng.uniform(0.9, 2.0))


# Street furniture and road users: part lists in metres ----------------------
def _rect(u0, u1, v0, v1):
    return [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]


def _mirror(parts: List[Part]) -> List[Part]:
    """Parts plus their mirror image about u = 0 (for symmetric rear views)."""
    out = list(parts)
    for kind, geometry, colour, code in parts:
        if kind == 'poly':
            out.append((kind, [(-u, v) for u, v in geometry], colour, code))
    return out


def vehicle_rear(rng: np.random.Generator, code: int) -> List[Part]:
    """Rear view of a car, truck, bus or train (tram); one shared palette."""
    paint = _pick(rng, PAINT)
    dark = paint * 0.55
    light = (0.8, 0.1, 0.08) if code != TRAIN else (0.95, 0.9, 0.75)
    if code == CAR:
        w, h = rng.uniform(1.65, 1.9) / 2, rng.uniform(1.35, 1.6)
        parts = _mirror([('poly', _rect(w - 0.3, w - 0.05, 0, 0.35), TYRE,
                          code)])
        parts += [
            ('poly', _rect(-w, w, 0.25, 0.95), paint, code),
            ('poly', [(-w + 0.1, 0.95), (w - 0.1, 0.95), (w - 0.28, h),
                      (-w + 0.28, h)], paint, code),
            ('poly', [(-w + 0.2, 1.0), (w - 0.2, 1.0), (w - 0.33, h - 0.07),
                      (-w + 0.33, h - 0.07)], GLASS, code),
            ('poly', _rect(-w, w, 0.25, 0.38), dark, code),
        ]
        parts += _mirror([('poly', _rect(w - 0.32, w - 0.04, 0.72, 0.88),
                           light, code)])
        parts.append(('poly', _rect(-0.26, 0.26, 0.42, 0.54), WHITE, code))
        return parts
    w = rng.uniform(2.35, 2.55) / 2
    if code == TRUCK:
        h = rng.uniform(3.2, 4.0)
        parts = _mirror([('poly', _rect(w - 0.55, w - 0.05, 0, 0.55), TYRE,
                          code)])
        parts += [
            ('poly', _rect(-w + 0.05, w - 0.05, 0.45, 0.62), (0.2, 0.2, 0.2),
             code),
            ('poly', _rect(-w, w, 0.85, h), paint, code),
            ('line', ((0, 0.9), (0, h - 0.05), 0.04), dark, code),
            ('line', ((-0.4, 0.9), (-0.4, h - 0.05), 0.05), dark, code),
            ('line', ((0.4, 0.9), (0.4, h - 0.05), 0.05), dark, code),
            ('poly', _rect(-0.26, 0.26, 0.6, 0.72), WHITE, code),
        ]
        parts += _mirror([('poly', _rect(w - 0.3, w - 0.05, 0.62, 0.78),
                           light, code)])
        return parts
    if code == BUS:
        h = rng.uniform(3.0, 3.3)
        parts = _mirror([('poly', _rect(w - 0.45, w - 0.1, 0, 0.45), TYRE,
                          code)])
        parts += [
            ('poly', [(-w, 0.3), (w, 0.3), (w, h - 0.2), (w - 0.2, h),
                      (-w + 0.2, h), (-w, h - 0.2)], paint, code),
            ('poly', _rect(-w + 0.2, w - 0.2, 1.9, h - 0.32), GLASS, code),
            ('poly', _rect(-0.6, 0.6, h - 0.28, h - 0.08), (0.9, 0.6, 0.1),
             code),
            ('poly', _rect(-w + 0.3, w - 0.3, 0.6, 1.2), dark, code),
            ('poly', _rect(-0.26, 0.26, 0.38, 0.5), WHITE, code),
        ]
        parts += _mirror([('poly', _rect(w - 0.25, w - 0.05, 0.5, 0.8),
                           light, code)])
        return parts
    assert code == TRAIN, f'expected a vehicle train id, got {code}'
    h = rng.uniform(3.3, 3.6)
    return [
        ('poly', [(-w, 0.25), (w, 0.25), (w, h - 0.3), (w - 0.3, h),
                  (-w + 0.3, h), (-w, h - 0.3)], paint, code),
        ('poly', _rect(-w, w, 0.25, 0.65), dark, code),
        ('poly', [(-w + 0.15, 1.4), (w - 0.15, 1.4), (w - 0.25, h - 0.3),
                  (-w + 0.25, h - 0.3)], GLASS, code),
        ('poly', _rect(-0.5, 0.5, h - 0.28, h - 0.1), (0.9, 0.6, 0.1), code),
        ('line', ((-0.5, h), (0, h + 0.9), 0.05), (0.15, 0.15, 0.15), code),
        ('line', ((0.5, h), (0, h + 0.9), 0.05), (0.15, 0.15, 0.15), code),
        ('line', ((-0.6, h + 0.9), (0.6, h + 0.9), 0.05), (0.15, 0.15, 0.15),
         code),
        ('poly', _rect(-w + 0.15, -w + 0.4, 0.75, 0.95), light, code),
        ('poly', _rect(w - 0.4, w - 0.15, 0.75, 0.95), light, code),
    ]


def vehicle_side(rng: np.random.Generator, code: int) -> List[Part]:
    """Side view (crossing traffic) of a car, truck, bus or train."""
    paint = _pick(rng, PAINT)
    dark = paint * 0.55
    if code == CAR:
        half = rng.uniform(3.9, 4.7) / 2
        parts = [
            ('poly', [(-half, 0.3), (half, 0.3), (half, 0.85),
                      (half - 0.9, 0.95), (half - 1.6, 1.45),
                      (-half + 0.9, 1.45), (-half + 0.3, 0.98),
                      (-half, 0.9)], paint, code),
            ('poly', [(half - 1.05, 1.0), (half - 1.65, 1.38),
                      (-half + 0.95, 1.38), (-half + 0.5, 1.0)], GLASS, code),
        ]
        wheels = (-half + 0.8, half - 0.8)
        radius = 0.32
    elif code == TRUCK:
        half = rng.uniform(6.0, 9.0) / 2
        h = rng.uniform(3.2, 3.8)
        parts = [
            ('poly', _rect(-half, half - 2.2, 0.7, h), paint, code),
            ('poly', [(half - 2.1, 0.5), (half, 0.5), (half, 1.8),
                      (half - 0.4, 2.9), (half - 2.1, 2.9)],
             _pick(rng, PAINT), code),
            ('poly', _rect(half - 1.6, half - 0.5, 1.8, 2.7), GLASS, code),
            ('poly', _rect(-half, half, 0.45, 0.7), (0.2, 0.2, 0.2), code),
        ]
        wheels = (-half + 1.0, -half + 2.1, half - 1.3)
        radius = 0.5
    elif code == BUS:
        half = rng.uniform(11.0, 13.0) / 2
        h = rng.uniform(3.0, 3.3)
        parts = [('poly', _rect(-half, half, 0.3, h), paint, code)]
        for u in np.arange(-half + 0.5, half - 1.0, 1.45):
            parts.append(('poly', _rect(u, u + 1.25, 1.25, 2.6), GLASS, code))
        for u in (half - 1.6, -0.6):
            parts.append(('poly', _rect(u, u + 1.1, 0.35, 2.6), GLASS, code))
        wheels = (-half + 2.6, half - 2.6)
        radius = 0.5
    else:
        assert code == TRAIN, f'expected a vehicle train id, got {code}'
        half = rng.uniform(20.0, 32.0) / 2
        h = rng.uniform(3.3, 3.6)
        parts = [('poly', _rect(-half, half, 0.25, h), paint, code),
                 ('poly', _rect(-half, half, 0.25, 0.7), dark, code)]
        for u in np.arange(-half + 0.6, half - 1.2, 1.6):
            parts.append(('poly', _rect(u, u + 1.3, 1.1, 2.5), GLASS, code))
        for u in np.arange(-half + 7, half, 7.0):
            parts.append(('line', ((u, 0.3), (u, h), 0.06), dark, code))
        mid = rng.uniform(-half / 2, half / 2)
        parts += [
            ('line', ((mid - 1, h), (mid, h + 1.0), 0.06), TYRE, code),
            ('line', ((mid + 1, h), (mid, h + 1.0), 0.06), TYRE, code),
            ('line', ((mid - 1.2, h + 1.0), (mid + 1.2, h + 1.0), 0.06), TYRE,
             code),
        ]
        return parts
    for u in wheels:
        parts.append(('circle', ((u, radius), radius, None), TYRE, code))
        parts.append(('circle', ((u, radius), radius * 0.45, None),
                      (0.5, 0.5, 0.52), code))
    return parts


def person(rng: np.random.Generator, code: int = PERSON,
           hip: Tuple[float, float] = (0.0, 0.0),
           knee: Optional[Tuple[float, float]] = None,
           foot: Optional[Tuple[float, float]] = None,
           helmet: bool = False) -> List[Part]:
    """A pedestrian, or (``code=RIDER`` with hip/knee/foot) a seated rider.

    Pedestrians and riders share clothes and body: only posture and the
    vehicle underneath tell them apart.
    """
    height = rng.uniform(1.55, 1.95)
    top, bottom = _pick(rng, CLOTHES), _pick(rng, CLOTHES)
    skin = _pick(rng, SKIN, 0.03)
    hair = _pick(rng, CLOTHES[:2] + CLOTHES[7:8] + ((0.6, 0.5, 0.3), ))
    leg_w = 0.07 * height
    if knee is None:  # standing: hips at 52% of the height
        hip = (0.0, 0.52 * height)
        stride = rng.uniform(0.0, 0.22) * height
        legs = [('line', ((-0.05, hip[1]), (-stride / 2, 0.05), leg_w), bottom,
                 code),
                ('line', ((0.05, hip[1]), (stride / 2, 0.05), leg_w), bottom,
                 code)]
    else:
        legs = [('line', (hip, knee, leg_w), bottom, code),
                ('line', (knee, foot, leg_w * 0.9), bottom, code)]
    hx, hy = hip
    lean = 0.0 if knee is None else 0.12
    shoulder = (hx + lean, hy + 0.3 * height)
    head_r = 0.065 * height
    head = (shoulder[0] + lean * 0.3, shoulder[1] + 1.6 * head_r)
    torso = [(hx - 0.1 * height, hy), (hx + 0.1 * height, hy),
             (shoulder[0] + 0.13 * height, shoulder[1]),
             (shoulder[0] - 0.13 * height, shoulder[1])]
    hand = (shoulder[0] + (0.35 if knee is not None else 0.05),
            shoulder[1] - 0.3)
    return legs + [
        ('poly', torso, top, code),
        ('line', (shoulder, hand, 0.055 * height), top, code),
        ('circle', (head, head_r, None), skin, code),
        ('circle', ((head[0], head[1] + head_r * 0.35), head_r * 0.8, None),
         (0.15, 0.15, 0.16) if helmet else hair, code),
    ]


def two_wheeler(rng: np.random.Generator, code: int,
                ridden: bool) -> List[Part]:
    """Side view of a bicycle or motorcycle, with or without a rider."""
    frame = _pick(rng, PAINT)
    if code == BICYCLE:
        r, axle = 0.34, 0.52
        seat, bar = (-0.2, 0.85), (0.38, 0.88)
        bb = (-0.05, 0.3)
        parts = [('circle', ((u, r), r, 0.05), TYRE, code)
                 for u in (-axle, axle)]
        for p0, p1 in (((-axle, r), bb), (bb, seat), (seat, (-axle, r)),
                       (seat, bar), (bb, bar), (bar, (axle, r)),
                       (bar, (0.32, 1.0))):
            parts.append(('line', (p0, p1, 0.045), frame, code))
        foot = (bb[0] + 0.1, 0.25)
    else:
        assert code == MOTORCYCLE, f'expected a two-wheeler, got {code}'
        r, axle = 0.31, 0.72
        seat, bar = (-0.25, 0.95), (0.5, 1.05)
        parts = [('circle', ((u, r), r, None), TYRE, code)
                 for u in (-axle, axle)]
        parts += [('circle', ((u, r), r * 0.5, None), (0.45, 0.45, 0.47),
                   code) for u in (-axle, axle)]
        parts += [
            ('poly', [(-0.55, 0.45), (0.5, 0.45), (0.62, 0.8), (0.2, 0.95),
                      (-0.62, 0.86)], frame, code),
            ('poly', _rect(-0.62, 0.08, 0.86, 0.98), TYRE, code),
            ('line', ((axle, r), bar, 0.07), (0.3, 0.3, 0.3), code),
            ('circle', ((0.62, 0.85), 0.09, None), WHITE, code),
        ]
        foot = (0.05, 0.4)
    if ridden:
        knee = (seat[0] + 0.35, seat[1] - 0.05)
        parts += person(rng, RIDER, hip=seat, knee=knee, foot=foot,
                        helmet=code == MOTORCYCLE or rng.random() < 0.3)
    return parts


def street_pole(rng: np.random.Generator, toward_road: int,
                carries: Optional[int]) -> List[Part]:
    """A pole, optionally with a traffic sign or light (the pole stays pole,
    as in Cityscapes)."""
    metal = _pick(rng, ((0.45, 0.45, 0.46), (0.3, 0.3, 0.3),
                        (0.16, 0.22, 0.18)))
    height = rng.uniform(3.0, 8.0) if carries is None else rng.uniform(
        2.8, 4.5)
    width = rng.uniform(0.1, 0.25)
    parts = [('poly', _rect(-width / 2, width / 2, 0, height), metal, POLE)]
    if carries is None and rng.random() < 0.5:  # a street lamp's arm
        end = toward_road * rng.uniform(0.8, 2.0)
        parts.append(('line', ((0, height), (end, height + 0.3), width * 0.6),
                      metal, POLE))
        parts.append(('poly', _rect(end - 0.25, end + 0.25, height + 0.15,
                                    height + 0.35), (0.8, 0.8, 0.7), POLE))
    elif carries == TRAFFIC_SIGN:
        size = rng.uniform(0.5, 0.8)
        c = (0.0, height - size / 2)
        shape = rng.integers(4)
        red, blue = (0.8, 0.1, 0.1), (0.1, 0.3, 0.7)
        if shape == 0:  # prohibition: red ring
            parts += [('circle', (c, size / 2, None), red, TRAFFIC_SIGN),
                      ('circle', (c, size / 2.8, None), WHITE, TRAFFIC_SIGN)]
        elif shape == 1:  # mandatory: blue disc
            parts.append(('circle', (c, size / 2, None), blue, TRAFFIC_SIGN))
        elif shape == 2:  # warning: triangle
            s = size / 2
            parts += [('poly', [(-s, c[1] - s), (s, c[1] - s), (0, c[1] + s)],
                       red, TRAFFIC_SIGN),
                      ('poly', [(-0.6 * s, c[1] - 0.7 * s),
                                (0.6 * s, c[1] - 0.7 * s),
                                (0, c[1] + 0.45 * s)], WHITE, TRAFFIC_SIGN)]
        else:  # information / priority: yellow or blue panel
            colour = (0.9, 0.78, 0.1) if rng.random() < 0.5 else blue
            parts.append(('poly', _rect(-size / 2, size / 2, c[1] - size / 2,
                                        c[1] + size / 2), colour,
                          TRAFFIC_SIGN))
    elif carries == TRAFFIC_LIGHT:
        box_w, box_h = rng.uniform(0.3, 0.4), rng.uniform(0.8, 1.05)
        black, yellow = (0.08, 0.08, 0.08), (0.8, 0.65, 0.1)
        housing = black if rng.random() < 0.7 else yellow
        top = height + box_h * 0.3
        parts.append(('poly', _rect(-box_w / 2, box_w / 2, top - box_h, top),
                      housing, TRAFFIC_LIGHT))
        lit = rng.integers(3)
        lamps = ((0.95, 0.15, 0.1), (0.95, 0.7, 0.1), (0.2, 0.9, 0.4))
        for i, lamp in enumerate(lamps):
            colour = lamp if i == lit else tuple(0.25 * c for c in lamp)
            y = top - box_h * (i + 0.5) / 3
            parts.append(('circle', ((0, y), box_w * 0.32, None), colour,
                          TRAFFIC_LIGHT))
    return parts


def tree(rng: np.random.Generator) -> List[Part]:
    """A street tree: trunk and a lumpy crown, all vegetation as in
    Cityscapes."""
    trunk_h = rng.uniform(1.8, 3.0)
    radius = rng.uniform(1.2, 2.8)
    bark = _jitter(rng, (0.3, 0.24, 0.17), 0.04)
    parts = [('poly', _rect(-0.15, 0.15, 0, trunk_h + radius), bark,
              VEGETATION)]
    for _ in range(int(rng.integers(4, 8))):
        c = (rng.normal(0, radius * 0.45),
             trunk_h + radius + rng.normal(0, radius * 0.35))
        parts.append(('circle', (c, radius * rng.uniform(0.5, 0.8), None),
                      LEAVES, VEGETATION))
    return parts


def static_object(rng: np.random.Generator) -> List[Part]:
    """Bins, bollards and advertising columns: real content, void label."""
    kind = rng.integers(3)
    colour = _pick(rng, ((0.2, 0.3, 0.2), (0.35, 0.35, 0.35),
                         (0.7, 0.5, 0.2), (0.55, 0.12, 0.1)))
    if kind == 0:
        return [('poly', _rect(-0.3, 0.3, 0, 1.0), colour, STATIC)]
    if kind == 1:
        return [('poly', _rect(-0.08, 0.08, 0, 0.9), colour, STATIC)]
    return [('poly', _rect(-0.6, 0.6, 0, 2.8), colour, STATIC),
            ('poly', _rect(-0.7, 0.7, 2.8, 3.0), (0.3, 0.3, 0.3), STATIC)]


# Road users and street furniture placement ----------------------------------
Drawable = Tuple[float, Callable[[], None]]


def _place_objects(scene: Scene, street: Street,
                   focus: Optional[int]) -> List[Drawable]:
    """Everything standing inside the street corridor, as (depth, draw)."""
    rng = scene.rng
    items: List[Drawable] = []

    def add(parts, x, z, foreshorten=1.0):
        outline = rng.random() < 0.3
        items.append((z, lambda: scene.draw_object(parts, x, z, foreshorten,
                                                   outline)))

    def depth(near, far):  # uniform in 1/Z: as many near as far objects
        return 1.0 / rng.uniform(1.0 / far, 1.0 / near)

    far = min(street.end_z, 90.0)
    for s in (-1, 1):
        curb_x = s * (street.road[s] + street.verge[s] + 0.5)
        if rng.random() < 0.45:  # an avenue of trees
            tree_x = s * (street.road[s] + max(street.verge[s] / 2, 0.9))
            z = rng.uniform(3, 12)
            gap = rng.uniform(8, 16)
            while z < far:
                if not street.in_crossing(z):
                    add(tree(rng), tree_x, z)
                z += gap * rng.uniform(0.8, 1.2)
        for _ in range(int(rng.poisson(3.5))):
            carries = rng.choice([None, None, TRAFFIC_SIGN, TRAFFIC_LIGHT],
                                 p=[0.4, 0.2, 0.25, 0.15])
            add(street_pole(rng, -s, carries), curb_x, depth(4, far))
        for _ in range(int(rng.poisson(0.7))):
            walk_x = s * (street.facade[s] - rng.uniform(0.3, 1.0))
            add(static_object(rng), walk_x, depth(4, far))
        for _ in range(int(rng.poisson(2.2))):  # pedestrians on sidewalks
            walk_x = s * (street.facade[s] - rng.uniform(0.4, 0.8) *
                          street.sidewalk[s])
            add(person(rng), walk_x, depth(5, far))
        for _ in range(int(rng.poisson(0.3))):  # parked bicycles
            walk_x = s * (street.facade[s] - rng.uniform(0.3, 0.9))
            add(two_wheeler(rng, BICYCLE, ridden=False), walk_x,
                depth(4, 40), _side_view(rng, 0.3))

    lanes = (-street.road[-1] + 1.3, street.road[1] - 1.3)
    focus_at = _add_focus(rng, street, focus, lanes, add)
    # Trams (train) only cross or come from the focus schedule: lane
    # traffic is cars with some trucks and buses.
    vehicle_mix = [CAR] * 16 + [TRUCK, BUS]
    for _ in range(int(rng.poisson(3.0))):
        code = vehicle_mix[rng.integers(len(vehicle_mix))]
        x, z = rng.uniform(*lanes), depth(7, far)
        if (focus_at is not None and abs(x - focus_at[0]) < 2.5
                and z < focus_at[1]):  # keep the focus object in view
            z = focus_at[1] + rng.uniform(4, 20)
        add(vehicle_rear(rng, code), x, z)
    for _ in range(int(rng.poisson(0.4))):  # cyclists along the curb
        code = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        x = rng.choice(lanes) + rng.uniform(-0.5, 0.5)
        add(two_wheeler(rng, code, ridden=True), x, depth(4, 50),
            _side_view(rng, 0.25, 0.6))
    if rng.random() < 0.3:  # a pedestrian crossing the road
        add(person(rng), rng.uniform(*lanes), depth(6, 30))
    if np.isfinite(street.cross_z):  # crossing traffic, seen from the side
        for _ in range(int(rng.poisson(1.2))):
            code = (vehicle_mix + [TRAIN])[rng.integers(len(vehicle_mix) + 1)]
            z = street.cross_z + rng.uniform(0.25, 0.75) * street.cross_w
            add(vehicle_side(rng, code), rng.uniform(-15, 15), z,
                _side_view(rng))
        for s in (-1, 1):
            if rng.random() < 0.6:
                add(street_pole(rng, -s, TRAFFIC_LIGHT),
                    s * (street.road[s] + 0.5), street.cross_z - 0.5)
    return items


def _side_view(rng: np.random.Generator, low: float = 1.0,
               high: float = 1.0) -> float:
    """Foreshortening of a side view: facing left or right, seen at an
    angle that narrows it to ``low..high`` of its length."""
    return (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(low, high)


def _add_focus(rng: np.random.Generator, street: Street,
               focus: Optional[int], lanes: Tuple[float, float],
               add: Callable) -> Optional[Tuple[float, float]]:
    """One clearly visible instance of a scheduled rare class.

    Rare classes (train, motorcycle, ...) would otherwise be missing from
    small sets; the caller cycles ``focus`` through them by image index.

    Returns:
        tuple[float, float] | None: Where the object stands, ``(x, z)`` in
        metres, if one was added.
    """
    near = rng.uniform(9, 20)
    s = -1 if rng.random() < 0.5 else 1
    curb = s * (street.road[s] + street.verge[s] + 0.5)
    if focus in (CAR, TRUCK, BUS, TRAIN):
        x = rng.uniform(*lanes)
        if focus == TRAIN:
            street.rails = x
        if focus == TRAIN and rng.random() < 0.5:
            near += 8  # a whole tram, seen from the side
            add(vehicle_side(rng, focus), x, near, _side_view(rng))
        else:
            add(vehicle_rear(rng, focus), x, near)
        return x, near
    if focus in (MOTORCYCLE, BICYCLE, RIDER):
        code = focus if focus != RIDER else (
            BICYCLE if rng.random() < 0.5 else MOTORCYCLE)
        x = lanes[(s + 1) // 2]
        add(two_wheeler(rng, code, ridden=True), x, near,
            _side_view(rng, 0.5))
        return x, near
    if focus == PERSON:
        add(person(rng), curb + s * 0.5, near * 0.6)
        return curb + s * 0.5, near * 0.6
    if focus in (TRAFFIC_LIGHT, TRAFFIC_SIGN, POLE):
        # Far enough that the sign or light is not above the image.
        carries = None if focus == POLE else focus
        add(street_pole(rng, -s, carries), curb, near * 1.4)
        return curb, near * 1.4
    return None


def _draw_ego_vehicle(scene: Scene) -> None:
    """The recording car's bonnet at the bottom, void like in Cityscapes."""
    rng = scene.rng
    height = scene.h * rng.uniform(0.05, 0.11)
    cx = scene.w * rng.uniform(0.4, 0.6)
    xs = np.linspace(-0.1 * scene.w, 1.1 * scene.w, 24)
    ys = scene.h - height * (1 - ((xs - cx) / (0.8 * scene.w))**2)
    points = np.concatenate(
        [np.stack([xs, ys], 1), [[1.1 * scene.w, scene.h + 2],
                                 [-0.1 * scene.w, scene.h + 2]]])
    mask = scene.polygon_mask(points)
    paint = _pick(rng, PAINT) * 0.6
    t = np.clip((scene.ys[mask] - (scene.h - height)) / max(height, 1), 0, 1)
    shine = 0.25 * (1 - t)[:, None] * np.array([0.8, 0.9, 1.0])
    scene.paint(mask, paint + shine, EGO_VEHICLE)


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, white balance, light falloff, blur and sensor noise."""
    h, w = image.shape[:2]
    gain = rng.uniform(0.6, 1.25)
    cast = 1 + rng.uniform(-0.08, 0.08, 3)
    ramp_x, ramp_y = rng.uniform(-0.3, 0.3, 2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1 + ramp_x * (xs / w - 0.5) + ramp_y * (ys / h - 0.5)
    image = image * (gain * light)[..., None] * cast
    image = np.clip(image, 0, 1)**rng.uniform(0.8, 1.25)
    if rng.random() < 0.6:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.9))
    noise = rng.uniform(0.004, 0.025)
    image = image + noise * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def render_street_scene(
        height: int,
        width: int,
        rng: np.random.Generator,
        focus: Optional[int] = None,
        supersample: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Render one street scene and its label map.

    Args:
        height (int): Output height in pixels.
        width (int): Output width in pixels.
        rng (np.random.Generator): Source of all randomness; the result is a
            pure function of its state.
        focus (int, optional): A train id to show at least once, clearly
            (used to make rare classes appear in small sets).
        supersample (int): Render at this factor and average down, so thin
            and far structures are anti-aliased in the image.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(H, W, 3)`` uint8 RGB image and
        ``(H, W)`` uint8 label codes: train ids ``0..18`` or one of the void
        codes ``UNLABELED``, ``EGO_VEHICLE``, ``STATIC``.
    """
    assert height >= 16 and width >= 16, (
        f'expected at least 16x16 pixels, got {height}x{width}')
    scene = Scene(height * supersample, width * supersample, rng)
    street = Street(rng, focus)
    items = _place_objects(scene, street, focus)  # may lay tram rails
    _draw_sky(scene)
    _draw_ground(scene, street)
    _draw_backdrop(scene, street, focus)
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw()
    if rng.random() < 0.5:
        _draw_ego_vehicle(scene)
    image = cv2.resize(scene.image, (width, height),
                       interpolation=cv2.INTER_AREA)
    # Labels are sampled at output pixel centres (nearest), never averaged.
    centre = supersample // 2
    label = np.ascontiguousarray(scene.label[centre::supersample,
                                             centre::supersample])
    return _photometric(image, rng), label
