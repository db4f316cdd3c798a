"""What a drone's gimbal camera sees in the embedded simulator.

A pinhole camera over flat ground: the ground plane maps to the image by a homography,
so the ground is the `GroundTexture` warped once per level of detail, coarse levels
first and finer ones over the part of the image where their texels are still at least
`lod_min_pixels_per_texel` image pixels across (so distant ground neither shimmers nor
blurs more than it must). Above the horizon a sky with a gentle gradient, towards it a
haze. Ground actors are boxes drawn far to near, each with its shadow, so that they
stand out from the ground as moving objects do. The geometry (`gimbal_to_world_rotation`,
`project`, `ground_homography`) lives in dfr_common.camera_geometry, shared with perception,
and is importable from here so that tests and evaluation can say where the ground truth
appears in the image.

Frames: world ENU metres with z the height above the flat ground; the camera's optical
frame is x right, y down, z forward; gimbal angles follow MAVLink's MOUNT convention.
Plain Python and OpenCV: the camera node wraps it.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dfr_common.camera_geometry import gimbal_to_world_rotation, ground_homography, project
from dfr_common.documented import documented
from dfr_sim.ground_texture import GroundTexture, clip_halfplane, clip_to_rect

__all__ = ["ACTOR_SHAPES", "ActorBox", "CameraModel", "CameraRenderer", "RenderConfig", "Rgb", "car",
           "ebike_with_rider", "gimbal_to_world_rotation", "ground_homography", "pedestrian", "project", "render"]

Rgb = tuple[int, int, int]

_SHIFT = 4
_ONE = 1 << _SHIFT
# The disc around the nadir inside which a level of detail is used, as a polygon: its edge normals.
_LOD_SIDES = 16
_LOD_ANGLES = (np.arange(_LOD_SIDES) + 0.5) * (2 * math.pi / _LOD_SIDES)
_LOD_NORMALS = np.stack([np.cos(_LOD_ANGLES), np.sin(_LOD_ANGLES)], axis=1)


@dataclass(frozen=True)
class CameraModel:
    """A distortion-free pinhole camera with square pixels and the principal point at the centre.

    Pixel coordinates follow OpenCV: the centre of pixel (column u, row v) is at (u, v),
    so the image centre is ((width - 1) / 2, (height - 1) / 2) and the image spans
    horizontal_fov_rad from the left edge of the first column to the right edge of the last.
    """

    width: int
    height: int
    horizontal_fov_rad: float

    def __post_init__(self):
        if int(self.width) < 2 or int(self.height) < 2:
            raise ValueError(f"image must be at least 2 x 2 pixels, got {self.width} x {self.height}")
        if not 0.0 < self.horizontal_fov_rad < math.pi:
            raise ValueError(f"horizontal_fov_rad must be in (0, pi), got {self.horizontal_fov_rad}")

    @property
    def fx(self) -> float:
        return self.width / 2.0 / math.tan(self.horizontal_fov_rad / 2.0)

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    @property
    def vertical_fov_rad(self) -> float:
        return 2.0 * math.atan(self.height / 2.0 / self.fy)

    @property
    def k(self) -> np.ndarray:
        """The 3 x 3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def camera_info(self) -> dict:
        """The fields of a sensor_msgs/CameraInfo for this camera (row-major lists)."""
        fx, fy, cx, cy = self.fx, self.fy, self.cx, self.cy
        return {
            "width": int(self.width), "height": int(self.height),
            "distortion_model": "plumb_bob",
            "d": [0.0] * 5,
            "k": [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            "p": [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        }


# --------------------------------------------------------------------------- actors
@dataclass(frozen=True)
class ActorBox:
    """A box standing on (or, with base_height, above) the ground: one part of a ground actor."""

    x: float
    y: float
    heading: float          # ENU radians of the length axis
    length: float
    width: float
    height: float
    colour: Rgb
    base_height: float = 0.0


def ebike_with_rider(x: float, y: float, heading: float, bike_rgb: Rgb = (28, 30, 34),
                     rider_rgb: Rgb = (214, 84, 32), length: float = 1.8, width: float = 0.55,
                     height: float = 1.7) -> list[ActorBox]:
    """An e-bike (long and low) with its rider sitting on it; height is the rider's top."""
    half = height / 2
    return [ActorBox(x, y, heading, length, width, half, bike_rgb),
            ActorBox(x, y, heading, min(0.5, length), max(width, 0.5), half, rider_rgb, base_height=half)]


def pedestrian(x: float, y: float, heading: float, rgb: Rgb = (60, 64, 120), length: float = 0.35,
               width: float = 0.5, height: float = 1.75) -> list[ActorBox]:
    """A person: a narrow tall box, shoulders across the heading."""
    return [ActorBox(x, y, heading, length, width, height, rgb)]


def car(x: float, y: float, heading: float, rgb: Rgb = (180, 30, 30), length: float = 4.4,
        width: float = 1.8, height: float = 1.45) -> list[ActorBox]:
    """A car: a body and a cabin set slightly back."""
    back, body = 0.15 * length, 0.55 * height
    return [ActorBox(x, y, heading, length, width, body, rgb),
            ActorBox(x - back * math.cos(heading), y - back * math.sin(heading), heading, 0.5 * length,
                     width * 0.9, height - body, tuple(int(c * 0.85) for c in rgb), base_height=body)]


# The shapes of the kinds of ground actor; any other kind is one box.
ACTOR_SHAPES = {
    "ebike": lambda x, y, heading, length, width, height, rgb: ebike_with_rider(
        x, y, heading, rider_rgb=rgb, length=length, width=width, height=height),
    "car": car,
    "pedestrian": pedestrian,
}


def _attribute(obj, *names):
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    raise AttributeError(f"none of {', '.join(names)}")


def _boxes_of(actors) -> list[ActorBox]:
    """ActorBoxes from boxes; tuples (x, y, heading, length, width, height, colour[, base_height]);
    objects with `boxes`; or objects with a position (`position` or `x`, `y`), `heading`, a size
    (`length`, `width`, `height`, or with `_m`) and `colour` (or `color`), drawn as their `kind`
    (see ACTOR_SHAPES) or else as one box."""
    out: list[ActorBox] = []
    for k, a in enumerate(actors):
        if isinstance(a, ActorBox):
            out.append(a)
        elif hasattr(a, "boxes"):
            parts = a.boxes() if callable(a.boxes) else a.boxes
            out.extend(_boxes_of(parts))
        elif isinstance(a, (tuple, list)) and len(a) in (7, 8):
            out.append(ActorBox(*(float(v) for v in a[:6]), tuple(int(c) for c in a[6]),
                                float(a[7]) if len(a) == 8 else 0.0))
        else:
            try:
                if hasattr(a, "position"):
                    x, y = (float(v) for v in np.asarray(a.position, float).reshape(-1)[:2])
                else:
                    x, y = float(a.x), float(a.y)
                size = [float(_attribute(a, name, name + "_m")) for name in ("length", "width", "height")]
                colour = tuple(int(c) for c in _attribute(a, "colour", "color"))
                heading = float(a.heading)
            except (AttributeError, TypeError, ValueError) as exc:
                raise TypeError(f"actor {k}: expected an ActorBox, a (x, y, heading, length, width, height, "
                                f"colour) tuple or an object with those attributes, got {a!r:.80}") from exc
            shape = ACTOR_SHAPES.get(getattr(a, "kind", None))
            if shape is not None:
                out.extend(shape(x, y, heading, rgb=colour, length=size[0], width=size[1], height=size[2]))
            else:
                out.append(ActorBox(x, y, heading, *size, colour, float(getattr(a, "base_height", 0.0))))
    return out


# Corner k of a box: bit 0 along the length, bit 1 across (to the left), bit 2 up.
_CORNER_BITS = np.array([[k & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], float)
# Faces: top, bottom, front, back, left, right.
_FACE_CORNERS = np.array([(4, 5, 7, 6), (0, 1, 3, 2), (1, 3, 7, 5), (0, 2, 6, 4), (2, 3, 7, 6), (0, 1, 5, 4)])


# --------------------------------------------------------------------------- rendering
@dataclass
class RenderConfig:
    """What the camera image looks like beyond the ground texture itself."""

    sky_zenith_rgb: Rgb = documented((84, 132, 204), "sky colour overhead")
    sky_horizon_rgb: Rgb = documented((196, 210, 224), "sky colour at the horizon")
    haze_rgb: Rgb = documented((196, 210, 224), "colour distant ground fades to")
    haze_distance_m: float = documented(4000.0, "distance at which ground is 63% haze; 0 for none")
    haze_min_opacity: float = documented(0.04, "haze fainter than this everywhere in view is not drawn")
    max_range_m: float = documented(20000.0, "ground farther along the view axis is not drawn")
    near_clip_m: float = documented(0.3, "anything nearer the camera than this is not drawn")
    min_height_m: float = documented(0.3, "a camera lower than this (a landed vehicle) is treated as this high")
    lod_min_pixels_per_texel: float = documented(
        0.5, "a texture level is used where its texels still span this many image pixels; lower is sharper "
             "but shimmers")
    lod_blend_px: int = documented(12, "width of the fade between levels of detail, pixels; 0 for a hard edge")
    atmosphere_grid_px: int = documented(8, "sky and haze are computed on a grid this coarse and smoothed up")
    actor_ambient: float = documented(0.45, "share of light on an actor's face that does not come from the sun")
    actor_shadow_brightness: float = documented(0.6, "ground brightness in an actor's shadow; 1 for none")
    antialias_actors: bool = documented(True, "smooth the edges of actors")
    noise_std: float = documented(1.5, "per-frame sensor noise, grey levels; 0 for none")
    noise_seed: int = documented(0, "seed of the per-frame noise")


@functools.lru_cache(maxsize=4)
def _noise_pool(height: int, width: int, std: float) -> tuple[np.ndarray, np.ndarray]:
    """A field of noise larger than the frame; each frame takes a window of it at a random offset."""
    rng = np.random.default_rng(0x5EED)
    n = np.round(rng.normal(0.0, std, (height + 64, width + 64, 3))).astype(np.int16)
    return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)


def _footprint(camera: CameraModel, c: np.ndarray, r: np.ndarray, cfg: RenderConfig) -> np.ndarray:
    """The ground the camera sees, as a convex polygon: the view frustum, between the near
    clip and max_range_m along the optical axis, cut by the ground plane."""
    rt = r.T
    a, b = rt[:, :2], -rt @ c          # camera coordinates of ground point p: a @ p + b
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    w, h = camera.width, camera.height
    planes = [
        (a[2], b[2] - cfg.near_clip_m),
        (-a[2], cfg.max_range_m - b[2]),
        (fx * a[0] + (cx + 0.5) * a[2], fx * b[0] + (cx + 0.5) * b[2]),
        ((w - 0.5 - cx) * a[2] - fx * a[0], (w - 0.5 - cx) * b[2] - fx * b[0]),
        (fy * a[1] + (cy + 0.5) * a[2], fy * b[1] + (cy + 0.5) * b[2]),
        ((h - 0.5 - cy) * a[2] - fy * a[1], (h - 0.5 - cy) * b[2] - fy * b[1]),
    ]
    half = 3.0 * cfg.max_range_m + c[2]
    poly = c[:2] + half * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    for normal, offset in planes:
        poly = clip_halfplane(poly, normal, offset)
        if len(poly) < 3:
            return poly[:0]
    return poly


def _to_image(hg: np.ndarray, poly: np.ndarray) -> np.ndarray:
    uvw = np.hstack([poly, np.ones((len(poly), 1))]) @ hg.T
    return uvw[:, :2] / uvw[:, 2:3]


def _roi(poly_img: np.ndarray, width: int, height: int):
    lo = np.floor(poly_img.min(axis=0)).astype(int) - 1
    hi = np.ceil(poly_img.max(axis=0)).astype(int) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _contains(poly: np.ndarray, pts: np.ndarray) -> bool:
    """Whether a convex polygon (either winding) holds all the points."""
    e = np.roll(poly, -1, axis=0) - poly
    cross = e[None, :, 0] * (pts[:, None, 1] - poly[None, :, 1]) - e[None, :, 1] * (pts[:, None, 0] - poly[None, :, 0])
    return bool(np.all(cross >= -1e-9) or np.all(cross <= 1e-9))


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(pts * _ONE), dtype=np.int32)


def _choose_levels(texture: GroundTexture, camera: CameraModel, c: np.ndarray, footprint: np.ndarray,
                   cfg: RenderConfig) -> list:
    """(level, ground polygon, plan) from coarse to fine: each level where its texels are large enough."""
    ground = clip_to_rect(footprint, texture.extent)
    if len(ground) < 3:
        return []
    h = c[2]
    reach = float(np.max(np.hypot(*(ground - c[:2]).T)))
    chosen = []
    for k, level in enumerate(texture.levels):
        if k == len(texture.levels) - 1:
            chosen.append((level, ground, level.plan(ground)))
            break
        # Slant range r at which one texel spans the minimum pixels: texel * h / r**2 = ppt / fx.
        slant_sq = level.texel_m * h * camera.fx / cfg.lod_min_pixels_per_texel
        radius = math.sqrt(max(slant_sq - h * h, 0.0))
        covered = False
        while radius > level.texel_m:
            covered = reach <= radius * math.cos(math.pi / _LOD_SIDES)
            region = ground if covered else _clip_to_disc(ground, c[:2], radius)
            plan = level.plan(region)
            if len(plan) <= level.max_pieces:
                if len(region) >= 3:
                    chosen.append((level, region, plan))
                break
            radius *= 0.7     # more tiles than the cache holds: use the level over a smaller disc
        if covered and chosen and chosen[-1][0] is level:
            break
    return chosen[::-1]


def _clip_to_disc(poly: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """A convex polygon cut to the regular polygon inscribed in a circle."""
    apothem = radius * math.cos(math.pi / _LOD_SIDES)
    for n in _LOD_NORMALS:
        poly = clip_halfplane(poly, -n, apothem + float(n @ centre))
        if len(poly) < 3:
            return poly[:0]
    return poly


def _vertical_span(poly: np.ndarray, x: float):
    """The rows (lowest, highest) where a convex polygon crosses the column x; None if it does not."""
    p, q = poly, np.roll(poly, -1, axis=0)
    lo_x, hi_x = np.minimum(p[:, 0], q[:, 0]), np.maximum(p[:, 0], q[:, 0])
    crossing = (lo_x <= x) & (hi_x >= x) & (hi_x > lo_x)
    if not np.any(crossing):
        return None
    t = (x - p[crossing, 0]) / (q[crossing, 0] - p[crossing, 0])
    ys = p[crossing, 1] + t * (q[crossing, 1] - p[crossing, 1])
    return float(ys.min()), float(ys.max())


def _trim_rows(roi, finer_img: np.ndarray, margin: int):
    """The ROI less the rows at its top or bottom that a finer level paints over entirely: rows
    it spans from side to side, more than margin rows inside its edge."""
    x0, y0, x1, y1 = roi
    left, right = _vertical_span(finer_img, x0), _vertical_span(finer_img, x1 - 1)
    if left is None or right is None:
        return roi
    top, bottom = max(left[0], right[0]), min(left[1], right[1])
    if bottom < top:
        return roi
    reaches_top, reaches_bottom = top <= y0, bottom >= y1 - 1
    if reaches_top and reaches_bottom:
        return None
    if reaches_bottom:
        return x0, y0, x1, max(y0 + 1, min(y1, math.ceil(top) + margin))
    if reaches_top:
        return x0, min(y1 - 1, max(y0, math.floor(bottom) - margin + 1)), x1, y1
    return roi


def _draw_level(out, scratch, mask, hg, level, region, region_img, plan, roi, texture_extent, feather_px: int):
    """Warp a level's pieces into the image, inside its region only, fading in over feather_px
    pixels from the region's edge so that the edge does not flicker as it moves with the camera."""
    height, width = out.shape[:2]
    x0, y0, x1, y1 = roi
    corners = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], float)
    direct = _contains(region_img, corners)
    target = out if direct else scratch
    for piece in level.pieces(plan):
        sub = clip_to_rect(region, piece.rect)
        if len(sub) < 3:
            continue
        sroi = _roi(_to_image(hg, sub), width, height)
        if sroi is None:
            continue
        sx0, sy0 = max(sroi[0], x0), max(sroi[1], y0)
        sx1, sy1 = min(sroi[2], x1), min(sroi[3], y1)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        t = piece.texel_m
        texel_to_world = np.array([[t, 0.0, piece.origin_xy[0]], [0.0, -t, piece.origin_xy[1]], [0.0, 0.0, 1.0]])
        shift = np.array([[1.0, 0.0, -sx0], [0.0, 1.0, -sy0], [0.0, 0.0, 1.0]])
        whole_area = piece.rect == texture_extent
        cv2.warpPerspective(piece.raster, shift @ hg @ texel_to_world, (sx1 - sx0, sy1 - sy0),
                            dst=target[sy0:sy1, sx0:sx1], flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE if whole_area else cv2.BORDER_TRANSPARENT)
    if not direct:
        m = mask[y0:y1, x0:x1]
        m[:] = 0
        cv2.fillConvexPoly(m, _fixed(region_img - (x0, y0)), 255, cv2.LINE_8, _SHIFT)
        if feather_px < 2:
            cv2.copyTo(scratch[y0:y1, x0:x1], m, out[y0:y1, x0:x1])
            return
        # Erode then blur: opacity 0 at the edge, 1 from feather_px inside. Outside the ROI the
        # erosion sees 255, so edges on the image border stay sharp.
        half = feather_px // 2
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * half + 1, 2 * half + 1)))
        alpha = cv2.blur(m, (2 * half + 1, 2 * half + 1)).astype(np.float32) * (1.0 / 255.0)
        view = out[y0:y1, x0:x1]
        view[:] = cv2.blendLinear(scratch[y0:y1, x0:x1], view, alpha, 1.0 - alpha)


def _fill(rows: np.ndarray, colour) -> None:
    """Paint rows of an image one colour (numpy broadcasting over 3 channels is slow)."""
    rows.reshape(rows.shape[0], -1)[:] = np.tile(np.asarray(colour, np.uint8), rows.shape[1])


def _fill_polygon(out, poly_img, colour):
    cv2.fillConvexPoly(out, _fixed(poly_img), tuple(int(v) for v in colour), cv2.LINE_8, _SHIFT)


def _atmosphere(camera: CameraModel, c, r, cfg: RenderConfig, need_sky: bool, need_haze: bool):
    """Sky colours and haze opacity on a coarse grid of rays, smoothed up to the full image."""
    g = max(1, int(cfg.atmosphere_grid_px))
    gw, gh = math.ceil(camera.width / g), math.ceil(camera.height / g)
    us = np.arange(gw) * g + (g - 1) / 2.0
    vs = np.arange(gh) * g + (g - 1) / 2.0
    uu, vv = np.meshgrid((us - camera.cx) / camera.fx, (vs - camera.cy) / camera.fy)
    rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1) @ r.T
    norm = np.linalg.norm(rays, axis=-1)
    up = rays[..., 2] / norm
    sky = alpha = None
    if need_sky:
        t = np.clip(up, 0.0, 1.0) ** 0.6
        zen, hor = np.asarray(cfg.sky_zenith_rgb, np.float32), np.asarray(cfg.sky_horizon_rgb, np.float32)
        colours = hor + t[..., None].astype(np.float32) * (zen - hor)
        colours[up < 0] = np.asarray(cfg.haze_rgb, np.float32)
        sky = cv2.resize(colours.astype(np.float32), (gw * g, gh * g), interpolation=cv2.INTER_LINEAR)
        sky = np.clip(sky[:camera.height, :camera.width], 0, 255).astype(np.uint8)
    if need_haze:
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(up < -1e-9, c[2] / np.maximum(-up, 1e-9), np.inf)
        a = (1.0 - np.exp(-dist / cfg.haze_distance_m)).astype(np.float32)
        alpha = cv2.resize(a, (gw * g, gh * g), interpolation=cv2.INTER_LINEAR)[:camera.height, :camera.width]
    return sky, alpha


def _draw_actor_boxes(out, boxes: list[ActorBox], camera: CameraModel, c, r, hg, cfg: RenderConfig,
                      sun: np.ndarray, hazy: bool):
    if not boxes:
        return
    height, width = out.shape[:2]
    n = len(boxes)
    geo = np.array([[b.x, b.y, b.heading, b.length, b.width, b.height, b.base_height] for b in boxes], float)
    colours = np.array([b.colour for b in boxes], float)
    fwd = np.stack([np.cos(geo[:, 2]), np.sin(geo[:, 2]), np.zeros(n)], axis=1)
    left = np.stack([-fwd[:, 1], fwd[:, 0], np.zeros(n)], axis=1)
    along = (_CORNER_BITS[None, :, 0] - 0.5) * geo[:, 3:4]
    across = (_CORNER_BITS[None, :, 1] - 0.5) * geo[:, 4:5]
    corners = along[..., None] * fwd[:, None, :] + across[..., None] * left[:, None, :]
    corners[..., 0] += geo[:, 0:1]
    corners[..., 1] += geo[:, 1:2]
    corners[..., 2] = geo[:, 6:7] + _CORNER_BITS[None, :, 2] * geo[:, 5:6]
    q = (corners - c) @ r
    depth = q[..., 2]
    front = depth > cfg.near_clip_m
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([camera.fx * q[..., 0] / depth + camera.cx, camera.fy * q[..., 1] / depth + camera.cy], -1)
    uv[~front] = 0.0
    lo = np.where(front[..., None], uv, np.inf).min(axis=1)
    hi = np.where(front[..., None], uv, -np.inf).max(axis=1)
    in_view = front.any(axis=1) & (hi[:, 0] >= -1) & (lo[:, 0] <= width) & (hi[:, 1] >= -1) & (lo[:, 1] <= height)
    if not np.any(in_view):
        return

    if cfg.actor_shadow_brightness < 1.0 and sun[2] > 0.05:
        _draw_actor_shadows(out, corners[in_view], c, r, hg, cfg, sun)

    if hazy:
        dist = np.linalg.norm(corners.mean(axis=1) - c, axis=1)
        fade = 1.0 - np.exp(-dist / cfg.haze_distance_m)
        colours += fade[:, None] * (np.asarray(cfg.haze_rgb, float) - colours)
    normals = np.stack([np.broadcast_to([0.0, 0.0, 1.0], (n, 3)), np.broadcast_to([0.0, 0.0, -1.0], (n, 3)),
                        fwd, -fwd, left, -left], axis=1)                           # n x 6 x 3, as _FACE_CORNERS
    face_pt = corners[:, _FACE_CORNERS[:, 0]]
    facing = np.einsum("nfk,nfk->nf", normals, c - face_pt) > 0
    visible = facing & front[:, _FACE_CORNERS].all(axis=2) & in_view[:, None]
    ambient = cfg.actor_ambient
    top_light = ambient + (1 - ambient) * max(sun[2], 0.0)
    light = (ambient + (1 - ambient) * np.clip(normals @ sun, 0.0, None)) / top_light
    shades = np.clip(colours[:, None, :] * light[..., None], 0, 255).astype(int).tolist()
    polys = _fixed(uv[:, _FACE_CORNERS])
    line = cv2.LINE_AA if cfg.antialias_actors else cv2.LINE_8
    for k in np.argsort(-depth.mean(axis=1)):
        for f in np.flatnonzero(visible[k]):
            cv2.fillConvexPoly(out, polys[k, f], shades[k][f], line, _SHIFT)


def _draw_actor_shadows(out, corners, c, r, hg, cfg: RenderConfig, sun):
    """Each box's corners carried along the sunlight onto the ground; the hull darkens the ground."""
    height, width = out.shape[:2]
    flat = corners[..., :2] - corners[..., 2:3] / sun[2] * sun[:2]
    ground = np.concatenate([flat, np.zeros(flat.shape[:2] + (1,))], axis=-1)
    ok = (((ground - c) @ r)[..., 2] > cfg.near_clip_m).all(axis=1)
    if not np.any(ok):
        return
    pts = np.concatenate([flat[ok], np.ones(flat[ok].shape[:2] + (1,))], axis=-1) @ hg.T
    img = pts[..., :2] / pts[..., 2:3]
    lo = np.floor(img.min(axis=(0, 1))).astype(int) - 1
    hi = np.ceil(img.max(axis=(0, 1))).astype(int) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for box in img - (x0, y0):
        hull = cv2.convexHull(box.astype(np.float32)).reshape(-1, 2)
        cv2.fillConvexPoly(mask, _fixed(hull), 255, cv2.LINE_8, _SHIFT)
    view = out[y0:y1, x0:x1]
    cv2.copyTo(cv2.convertScaleAbs(view, alpha=cfg.actor_shadow_brightness), mask, view)


def _draw_ground(out, texture: GroundTexture, camera: CameraModel, c, hg, footprint, cfg: RenderConfig):
    """The ground in view, level by level from coarse to fine; beyond the texture, its outside colour."""
    height, width = out.shape[:2]
    xmin, ymin, xmax, ymax = texture.extent
    lo, hi = footprint.min(axis=0), footprint.max(axis=0)
    if lo[0] < xmin or lo[1] < ymin or hi[0] > xmax or hi[1] > ymax:
        _fill_polygon(out, _to_image(hg, footprint), texture.outside_rgb)
    levels = _choose_levels(texture, camera, c, footprint, cfg)
    images = [_to_image(hg, region) for _, region, _ in levels]
    scratch = mask = None
    feather = max(0, int(cfg.lod_blend_px))
    for k, (level, region, plan) in enumerate(levels):
        roi = _roi(images[k], width, height)
        if roi is not None and k + 1 < len(levels):
            roi = _trim_rows(roi, images[k + 1], feather + 1)
        if roi is None:
            continue
        if scratch is None:
            scratch = np.zeros_like(out)
            mask = np.empty((height, width), np.uint8)
        # The coarsest level has nothing under it to fade into.
        _draw_level(out, scratch, mask, hg, level, region, images[k], plan, roi, texture.extent,
                    feather if k > 0 else 0)


def _draw_atmosphere(out, camera: CameraModel, c, r, cfg: RenderConfig, sky_poly, footprint) -> bool:
    """Haze over distant ground and the sky above the horizon; whether haze was drawn."""
    height, width = out.shape[:2]
    need_sky = len(sky_poly) >= 3
    reach = float(np.max(np.hypot(np.hypot(*(footprint - c[:2]).T), c[2]))) if len(footprint) >= 3 else 0.0
    # Haze is drawn where the horizon is in view or it is more than faint.
    need_haze = cfg.haze_distance_m > 0 and len(footprint) >= 3 and (
        need_sky or 1.0 - math.exp(-reach / cfg.haze_distance_m) > cfg.haze_min_opacity)
    if not (need_sky or need_haze):
        return False
    sky, alpha = _atmosphere(camera, c, r, cfg, need_sky, need_haze)
    if alpha is not None:
        rows = np.flatnonzero(alpha.max(axis=1) > cfg.haze_min_opacity)
        if len(rows):
            y0, y1 = int(rows[0]), int(rows[-1]) + 1
            a = np.ascontiguousarray(alpha[y0:y1])
            haze = np.empty_like(out[y0:y1])
            _fill(haze, cfg.haze_rgb)
            out[y0:y1] = cv2.blendLinear(out[y0:y1], haze, 1.0 - a, a)
    if sky is not None:
        if len(footprint) < 3:
            out[:] = sky
        else:
            roi = _roi(sky_poly, width, height)
            if roi is not None:
                x0, y0, x1, y1 = roi
                m = np.zeros((y1 - y0, x1 - x0), np.uint8)
                cv2.fillConvexPoly(m, _fixed(sky_poly - (x0, y0)), 255, cv2.LINE_8, _SHIFT)
                cv2.copyTo(sky[y0:y1, x0:x1], m, out[y0:y1, x0:x1])
    return need_haze


def render(texture: GroundTexture, camera: CameraModel, position_enu, rotation_world_from_camera,
           actors=(), config: RenderConfig | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """One RGB frame (height x width x 3, uint8) from a camera at position_enu (x, y, height
    above ground) with the given world-from-optical rotation.

    actors: an iterable of ActorBox, tuples or actor objects (see _boxes_of). Sensor noise
    comes from rng, or else from a generator seeded with config.noise_seed, which gives the
    same noise every call: pass a generator that lives across frames (CameraRenderer does).
    """
    cfg = config or RenderConfig()
    c = np.asarray(position_enu, float).reshape(3).copy()
    c[2] = max(c[2], cfg.min_height_m)
    r = np.asarray(rotation_world_from_camera, float).reshape(3, 3)
    width, height = camera.width, camera.height
    out = np.empty((height, width, 3), np.uint8)
    hg = ground_homography(camera, c, r)

    # The image splits along a straight line: ground within max_range_m on one side, sky and
    # haze on the other. r[2] . K^-1 (u, v, 1) is the climb of the ray through pixel (u, v).
    climb = r[2] @ np.linalg.inv(camera.k)
    frame = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    sky_poly = clip_halfplane(frame, climb[:2], climb[2] + c[2] / cfg.max_range_m)
    footprint = _footprint(camera, c, r, cfg)

    # Whatever no level, sky or fill reaches (pixels on a boundary line) reads as haze.
    _fill(out, cfg.haze_rgb if len(sky_poly) >= 3 else texture.outside_rgb)
    if len(footprint) >= 3:
        _draw_ground(out, texture, camera, c, hg, footprint, cfg)
    hazy = _draw_atmosphere(out, camera, c, r, cfg, sky_poly, footprint)
    _draw_actor_boxes(out, _boxes_of(actors), camera, c, r, hg, cfg, texture.style.sun_direction, hazy)

    if cfg.noise_std > 0:
        gen = rng if rng is not None else np.random.default_rng(cfg.noise_seed)
        plus, minus = _noise_pool(height, width, float(cfg.noise_std))
        oy, ox = (int(v) for v in gen.integers(0, 64, 2))
        cv2.add(out, plus[oy:oy + height, ox:ox + width], dst=out)
        cv2.subtract(out, minus[oy:oy + height, ox:ox + width], dst=out)
    return out


class CameraRenderer:
    """One camera: its ground, its model, its settings and its own stream of sensor noise."""

    def __init__(self, texture: GroundTexture, camera: CameraModel, config: RenderConfig | None = None):
        self.texture = texture
        self.camera = camera
        self.config = config or RenderConfig()
        self.rng = np.random.default_rng(self.config.noise_seed)

    def render(self, position_enu, rotation_world_from_camera, actors=()) -> np.ndarray:
        return render(self.texture, self.camera, position_enu, rotation_world_from_camera, actors,
                      self.config, self.rng)

    def project(self, position_enu, rotation_world_from_camera, points_enu):
        return project(self.camera, position_enu, rotation_world_from_camera, points_enu)
