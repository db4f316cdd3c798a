"""The ground the embedded camera sees: roads, roofs, parks and grass on flat ground.

The texture is drawn from plain geometry in local ENU metres (x east, y north), so any
map source can feed it. A city of 10 km x 10 km cannot be held at the 0.2-0.25 m per
pixel that a drone camera at 60 m resolves, so the texture is a stack of levels of
detail: fine and medium tiles rasterized on demand around the camera and kept in LRU
caches, and one coarse raster of the whole area, filled chunk by chunk the first time a
chunk is seen, with box-filtered reductions of it for the far field.

Every mark, the grain included, is a function of world position and the seed, never of
the tile or the frame that draws it: a tile drawn twice, or the seam between two tiles,
looks the same, so the ground is fixed in the world as an ego-motion-compensating
tracker expects, and one seed always gives the same city.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from dfr_common.documented import documented

Rgb = tuple[int, int, int]

_SHIFT = 4                      # OpenCV fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT

# Road classes (OpenStreetMap `highway` values): drawing order and look.
_ROAD_RANK = {
    "footway": 0, "cycleway": 0, "path": 0, "pedestrian": 0, "track": 0, "steps": 0, "bridleway": 0,
    "service": 1, "living_street": 2, "residential": 2, "unclassified": 2, "road": 2,
    "tertiary": 3, "tertiary_link": 3, "secondary": 4, "secondary_link": 4,
    "primary": 5, "primary_link": 5, "trunk": 6, "trunk_link": 6, "motorway": 7, "motorway_link": 7,
}
_MINOR_RANK = 2                 # rank of a class this module does not know
_MAJOR_MIN_RANK = 4             # secondary and above: darker asphalt
_SIDEWALK_RANKS = (2, 3, 4, 5)  # residential to primary; not paths, service roads, trunks or motorways


@dataclass
class GroundStyle:
    """How the ground looks and how much of it is kept in memory."""

    grass_rgb: Rgb = documented((92, 122, 60), "lawn and verge")
    garden_rgb: Rgb = documented((124, 122, 90), "the other end of the background mix: gardens, bare soil, yards")
    park_rgb: Rgb = documented((78, 126, 54), "park grass")
    sidewalk_rgb: Rgb = documented((160, 158, 150), "pavement beside roads")
    asphalt_minor_rgb: Rgb = documented((86, 87, 90), "residential and service roads")
    asphalt_major_rgb: Rgb = documented((64, 66, 70), "secondary roads and above")
    path_rgb: Rgb = documented((176, 164, 140), "footways, cycleways, tracks")
    marking_rgb: Rgb = documented((230, 230, 220), "lane markings")
    roof_palette: tuple[Rgb, ...] = documented(
        ((152, 82, 62), (124, 64, 52), (98, 98, 104), (72, 74, 82), (166, 118, 88), (114, 104, 94)),
        "pitched roof colours; each building draws one from its position")
    flat_roof_rgb: Rgb = documented((140, 140, 136), "flat roofs of large buildings")
    roof_unit_rgb: Rgb = documented((200, 200, 194), "plant and skylights on flat roofs")
    tree_rgb: Rgb = documented((44, 78, 38), "tree canopy")
    tree_light_rgb: Rgb = documented((72, 108, 50), "sunlit side of a canopy")
    outside_rgb: Rgb = documented((98, 116, 70), "ground beyond the textured area")
    sidewalk_m: float = documented(2.0, "pavement width on each side of a road that has one")
    marking_width_m: float = documented(0.15, "lane marking width")
    dash_m: float = documented(3.0, "length of a dashed lane marking")
    dash_gap_m: float = documented(6.0, "gap between dashes")
    parked_car_density: float = documented(0.3, "share of kerbside spaces on residential streets with a "
                                                  "parked car; 0 for none")
    parked_car_palette: tuple[Rgb, ...] = documented(
        ((200, 200, 204), (30, 32, 36), (120, 124, 130), (150, 30, 30), (40, 60, 120), (220, 220, 215)),
        "parked car colours")
    flat_roof_min_area_m2: float = documented(300.0, "buildings at least this large get a flat roof")
    building_height_m: float = documented(7.0, "height assumed for building shadows")
    tree_spacing_m: float = documented(7.0, "spacing of the lattice on which trees may stand")
    park_tree_density: float = documented(0.4, "fraction of lattice points in parks with a tree")
    garden_tree_density: float = documented(0.12, "fraction of free lattice points elsewhere with a tree")
    tree_radius_m: tuple[float, float] = documented((1.6, 3.4), "canopy radius range")
    tree_height_m: float = documented(6.0, "height assumed for tree shadows")
    sun_azimuth_deg: float = documented(200.0, "compass bearing of the sun, degrees clockwise from north")
    sun_elevation_deg: float = documented(50.0, "sun elevation above the horizon")
    shadow_brightness: float = documented(0.6, "ground brightness in shadow, as a fraction of sunlit")
    patch_m: float = documented(30.0, "size of the broad patches of the grass/garden mix and of wear")
    patch_amplitude: float = documented(0.10, "brightness variation of the broad patches")
    mottle_m: float = documented(2.5, "size of the small mottling")
    mottle_amplitude: float = documented(0.07, "brightness variation of the mottling")
    grain_std: float = documented(7.0, "per-texel grain at the finest level, grey levels")
    tile_px: int = documented(256, "tile side in texels, for the fine and medium levels")
    mid_level_factor: int = documented(4, "texel size of the medium level, in fine texels")
    fine_cache_tiles: int = documented(160, "fine tiles kept (256 px: 0.2 MB each)")
    mid_cache_tiles: int = documented(64, "medium tiles kept")
    coarse_min_m_per_px: float = documented(2.0, "finest texel of the whole-area raster")
    coarse_max_px: int = documented(4096, "largest side of the whole-area raster")
    coarse_chunk_px: int = documented(256, "the whole-area raster is filled in chunks of this side")
    far_levels: int = documented(5, "box-filtered reductions of the whole-area raster, each half the last")

    @property
    def sun_direction(self) -> np.ndarray:
        """Unit ENU vector towards the sun."""
        az, el = math.radians(self.sun_azimuth_deg), math.radians(self.sun_elevation_deg)
        return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])

    def shadow_offset(self, height_m: float) -> np.ndarray:
        """Where the shadow of a point this high falls, relative to its foot (ENU metres)."""
        sun = self.sun_direction
        return -sun[:2] / max(sun[2], 0.05) * height_m


class TexturePiece(NamedTuple):
    """A raster of part of the ground and where it lies: texel (0, 0) is centred at origin_xy."""

    raster: np.ndarray
    origin_xy: tuple[float, float]   # world x, y of the centre of texel (0, 0); rows run south
    texel_m: float
    rect: tuple[float, float, float, float]   # the world rectangle it is valid for


# --------------------------------------------------------------------------- helpers
def _hash01(ix, iy, seed: int, salt: int) -> np.ndarray:
    """Uniform [0, 1) numbers that depend only on integer lattice coordinates, seed and salt."""
    with np.errstate(over="ignore"):
        h = (np.atleast_1d(np.asarray(ix, np.int64).astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
             ^ np.asarray(iy, np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
             ^ np.asarray(salt, np.int64).astype(np.uint64) * np.uint64(0x27D4EB2F165667C5)
             ^ np.uint64((int(seed) * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF))
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _lattice_weights(coords: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each coordinate: the lattice node below it (spacing `cell`), counted from the first
    such node, the smoothstep weight of the node above, and the nodes' lattice indices."""
    g = coords / cell
    i0 = np.floor(g).astype(np.int64)
    first = int(i0.min())
    f = g - i0
    return i0 - first, (f * f * (3.0 - 2.0 * f)).astype(np.float32), np.arange(first, int(i0.max()) + 2)


def _value_noise(xs: np.ndarray, ys: np.ndarray, cell_m: float, seed: int, salt: int) -> np.ndarray:
    """Smooth noise in [-1, 1] on the grid of world coordinates xs (columns) by ys (rows).

    Gathers rather than matrix products: BLAS threads cost more than they save here."""
    cx, wx, ix = _lattice_weights(xs, cell_m)
    cy, wy, iy = _lattice_weights(ys, cell_m)
    lattice = (_hash01(ix[None, :], iy[:, None], seed, salt) * 2.0 - 1.0).astype(np.float32)
    rows = lattice[cy] * (1.0 - wy[:, None]) + lattice[cy + 1] * wy[:, None]
    cols = rows.T          # gather whole rows: fancy indexing along axis 1 would leave a transposed layout
    return np.ascontiguousarray((cols[cx] * (1.0 - wx[:, None]) + cols[cx + 1] * wx[:, None]).T)


def clip_halfplane(poly: np.ndarray, normal, offset: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of a polygon where normal . p + offset >= 0.

    Plain floats: the polygons are small and this runs many times a frame."""
    if len(poly) == 0:
        return poly
    nx, ny, off = float(normal[0]), float(normal[1]), float(offset)
    pts = poly.tolist()
    d = [nx * x + ny * y + off for x, y in pts]
    if min(d) >= 0:
        return poly
    if max(d) < 0:
        return poly[:0]
    out = []
    prev, dprev = pts[-1], d[-1]
    for cur, dcur in zip(pts, d):
        if (dprev >= 0) != (dcur >= 0):
            t = dprev / (dprev - dcur)
            out.append((prev[0] + (cur[0] - prev[0]) * t, prev[1] + (cur[1] - prev[1]) * t))
        if dcur >= 0:
            out.append(cur)
        prev, dprev = cur, dcur
    return np.array(out, float).reshape(-1, 2)


def clip_to_rect(poly: np.ndarray, rect) -> np.ndarray:
    """A polygon cut to an axis-aligned rectangle (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = rect
    for normal, offset in (((1, 0), -xmin), ((-1, 0), xmax), ((0, 1), -ymin), ((0, -1), ymax)):
        poly = clip_halfplane(poly, normal, offset)
        if len(poly) == 0:
            break
    return poly


def _as_points(points, what: str, minimum: int) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.all(np.isfinite(arr[:, :2])):
        raise ValueError(f"{what}: expected an N x 2 array of finite ENU metres, got shape {arr.shape}")
    arr = arr[:, :2]
    if minimum >= 3 and len(arr) > 1 and np.allclose(arr[0], arr[-1]):
        arr = arr[:-1]
    if len(arr) < minimum:
        raise ValueError(f"{what}: needs at least {minimum} distinct points, got {len(arr)}")
    return arr


class _Rings:
    """Many polygon rings in one array: validated, with areas, centroids and bounding boxes."""

    def __init__(self, rings, what: str):
        arrays = []
        for k, ring in enumerate(rings):
            arr = np.asarray(ring, dtype=float)
            if arr.ndim != 2 or arr.shape[1] < 2:
                raise ValueError(f"{what} {k}: expected an N x 2 array of ENU metres, got shape {arr.shape}")
            arr = arr[:, :2]
            if len(arr) > 1 and arr[0, 0] == arr[-1, 0] and arr[0, 1] == arr[-1, 1]:
                arr = arr[:-1]
            if len(arr) < 3:
                raise ValueError(f"{what} {k}: needs at least 3 distinct points, got {len(arr)}")
            arrays.append(arr)
        counts = np.array([len(a) for a in arrays], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.points = np.concatenate(arrays) if arrays else np.zeros((0, 2))
        bad = ~np.isfinite(self.points).all(axis=1)
        if np.any(bad):
            k = int(np.searchsorted(self.starts, np.flatnonzero(bad)[0], side="right") - 1)
            raise ValueError(f"{what} {k}: coordinates must be finite")
        n = len(arrays)
        if n == 0:
            self.areas, self.centroids, self.bboxes = np.zeros(0), np.zeros((0, 2)), np.zeros((0, 4))
            return
        first = self.starts[:-1]
        owner = np.repeat(np.arange(n), counts)
        nxt = np.arange(len(self.points)) + 1
        nxt[self.starts[1:] - 1] = first
        origin = self.points[first][owner]
        x, y = (self.points - origin).T
        cross = x * y[nxt] - x[nxt] * y
        area2 = np.add.reduceat(cross, first)
        safe = np.where(np.abs(area2) > 1e-9, area2, 1.0)
        cx = np.add.reduceat((x + x[nxt]) * cross, first) / (3.0 * safe)
        cy = np.add.reduceat((y + y[nxt]) * cross, first) / (3.0 * safe)
        mean = np.add.reduceat(self.points - origin, first) / counts[:, None]
        centroid = np.where((np.abs(area2) > 1e-9)[:, None], np.stack([cx, cy], 1), mean)
        self.areas = np.abs(area2) / 2.0
        self.centroids = centroid + self.points[first]
        self.bboxes = np.hstack([np.minimum.reduceat(self.points, first), np.maximum.reduceat(self.points, first)])

    def __len__(self) -> int:
        return len(self.starts) - 1

    def orientation(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each ring's long axis (along its longest edge), the centre of its bounding rectangle
        in that frame, and that rectangle's (length, width)."""
        n = len(self)
        if n == 0:
            return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2))
        first = self.starts[:-1]
        counts = np.diff(self.starts)
        owner = np.repeat(np.arange(n), counts)
        nxt = np.arange(len(self.points)) + 1
        nxt[self.starts[1:] - 1] = first
        edge = self.points[nxt] - self.points
        length = np.hypot(edge[:, 0], edge[:, 1])
        longest = np.maximum.reduceat(length, first)
        candidates = np.flatnonzero(length >= longest[owner])
        pick = candidates[np.unique(owner[candidates], return_index=True)[1]]
        axis = edge[pick] / np.maximum(length[pick], 1e-9)[:, None]
        normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
        rel = self.points - self.centroids[owner]
        along = np.einsum("pk,pk->p", rel, axis[owner])
        across = np.einsum("pk,pk->p", rel, normal[owner])
        a0, a1 = np.minimum.reduceat(along, first), np.maximum.reduceat(along, first)
        c0, c1 = np.minimum.reduceat(across, first), np.maximum.reduceat(across, first)
        centre = self.centroids + axis * ((a0 + a1) / 2)[:, None] + normal * ((c0 + c1) / 2)[:, None]
        return axis, centre, np.stack([a1 - a0, c1 - c0], axis=1)

    def __getitem__(self, k) -> np.ndarray:
        return self.points[self.starts[k]:self.starts[k + 1]]

    def pixels(self, cv: _Canvas, ids, offset=(0.0, 0.0)) -> list[np.ndarray]:
        """The rings `ids`, shifted by offset metres, as OpenCV fixed-point pixel arrays."""
        ids = np.asarray(ids, np.int64)
        if len(ids) == 0:
            return []
        counts = self.starts[ids + 1] - self.starts[ids]
        idx = np.repeat(self.starts[ids] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        px = cv.px(self.points[idx] + np.asarray(offset, float))
        return np.split(px, np.cumsum(counts)[:-1])


class _BucketGrid:
    """Which items' bounding boxes touch a rectangle: a uniform grid of buckets in CSR form."""

    def __init__(self, bboxes: np.ndarray, origin: tuple[float, float], cell_m: float, shape: tuple[int, int]):
        self._origin = origin
        self._cell = cell_m
        self._nx, self._ny = shape
        self._bboxes = np.asarray(bboxes, float).reshape(-1, 4)
        ix0, iy0, ix1, iy1 = self._cells(self._bboxes)
        keep = (ix1 >= 0) & (iy1 >= 0) & (ix0 < self._nx) & (iy0 < self._ny)
        ix0, ix1 = np.clip(ix0, 0, self._nx - 1), np.clip(ix1, 0, self._nx - 1)
        iy0, iy1 = np.clip(iy0, 0, self._ny - 1), np.clip(iy1, 0, self._ny - 1)
        items = np.flatnonzero(keep)
        nx = (ix1 - ix0 + 1)[items]
        counts = nx * (iy1 - iy0 + 1)[items]
        item = np.repeat(items, counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        nxr = np.repeat(nx, counts)
        cell = (iy0[item] + k // nxr) * self._nx + ix0[item] + k % nxr
        order = np.argsort(cell, kind="stable")
        self._items = item[order].astype(np.int32)
        self._starts = np.searchsorted(cell[order], np.arange(self._nx * self._ny + 1))

    def _cells(self, bboxes):
        ox, oy = self._origin
        return (np.floor((bboxes[:, 0] - ox) / self._cell).astype(np.int64),
                np.floor((bboxes[:, 1] - oy) / self._cell).astype(np.int64),
                np.floor((bboxes[:, 2] - ox) / self._cell).astype(np.int64),
                np.floor((bboxes[:, 3] - oy) / self._cell).astype(np.int64))

    def query(self, rect) -> np.ndarray:
        """Indices, ascending, of the items whose bounding box overlaps rect."""
        if len(self._items) == 0:
            return np.zeros(0, np.int32)
        ix0, iy0, ix1, iy1 = (int(v[0]) for v in self._cells(np.asarray(rect, float).reshape(1, 4)))
        ix0, ix1 = max(ix0, 0), min(ix1, self._nx - 1)
        iy0, iy1 = max(iy0, 0), min(iy1, self._ny - 1)
        if ix0 > ix1 or iy0 > iy1:
            return np.zeros(0, np.int32)
        parts = [self._items[self._starts[row * self._nx + ix0]:self._starts[row * self._nx + ix1 + 1]]
                 for row in range(iy0, iy1 + 1)]
        found = np.unique(np.concatenate(parts))
        b = self._bboxes[found]
        hit = (b[:, 0] <= rect[2]) & (b[:, 2] >= rect[0]) & (b[:, 1] <= rect[3]) & (b[:, 3] >= rect[1])
        return found[hit]


class _Canvas:
    """A raster of a world rectangle, and world metres to OpenCV fixed-point pixels."""

    def __init__(self, x_west: float, y_north: float, width_px: int, height_px: int, texel_m: float):
        self.x_west, self.y_north = x_west, y_north
        self.width, self.height, self.texel = width_px, height_px, texel_m
        self.rect = (x_west, y_north - height_px * texel_m, x_west + width_px * texel_m, y_north)

    def px(self, pts) -> np.ndarray:
        pts = np.asarray(pts, float)
        u = ((pts[..., 0] - self.x_west) / self.texel - 0.5) * _ONE
        v = ((self.y_north - pts[..., 1]) / self.texel - 0.5) * _ONE
        return np.stack([u, v], axis=-1).round().astype(np.int32)

    def length(self, metres: float) -> int:
        """A line thickness in whole pixels, at least one."""
        return max(1, int(round(metres / self.texel)))

    def lengths(self, metres: np.ndarray) -> np.ndarray:
        return np.maximum(1, np.round(np.asarray(metres) / self.texel)).astype(np.int64)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        xs = self.x_west + (np.arange(self.width) + 0.5) * self.texel
        ys = self.y_north - (np.arange(self.height) + 0.5) * self.texel
        return xs, ys


# --------------------------------------------------------------------------- levels
class _TileLevel:
    """Square tiles at one texel size, rasterized on demand, least recently used dropped first."""

    def __init__(self, texture: GroundTexture, texel_m: float, tile_px: int, max_tiles: int):
        self.texture = texture
        self.texel_m = texel_m
        self.tile_px = tile_px
        self.tile_m = tile_px * texel_m
        self.max_pieces = max(1, int(max_tiles))     # the most tiles one frame may use: all must be cached
        self.cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._mosaic: tuple | None = None     # the last mosaic, reused while the same tiles are in view
        xmin, ymin, xmax, ymax = texture.extent
        self._nx = math.ceil((xmax - xmin) / self.tile_m - 1e-9)
        self._ny = math.ceil((ymax - ymin) / self.tile_m - 1e-9)

    def plan(self, polygon: np.ndarray) -> list[tuple[int, int]]:
        """Tiles (column, row from the north edge) that a convex ground polygon touches."""
        if len(polygon) < 3:
            return []
        xmin, _, _, ymax = self.texture.extent
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        i0, i1 = max(0, int((lo[0] - xmin) // self.tile_m)), min(self._nx - 1, int((hi[0] - xmin) // self.tile_m))
        j0, j1 = max(0, int((ymax - hi[1]) // self.tile_m)), min(self._ny - 1, int((ymax - lo[1]) // self.tile_m))
        if i1 < i0 or j1 < j0:
            return []
        jj, ii = np.mgrid[j0:j1 + 1, i0:i1 + 1]
        ii, jj = ii.ravel(), jj.ravel()
        west, north = xmin + ii * self.tile_m, ymax - jj * self.tile_m
        corners = np.stack([np.stack([west, north], 1), np.stack([west + self.tile_m, north], 1),
                            np.stack([west, north - self.tile_m], 1),
                            np.stack([west + self.tile_m, north - self.tile_m], 1)], axis=1)   # T x 4 x 2
        # Separating axis test: a tile misses the polygon if all its corners lie outside one edge.
        edge = np.roll(polygon, -1, axis=0) - polygon
        winding = 1.0 if float(np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1)
                                      - np.roll(polygon[:, 0], -1) * polygon[:, 1])) >= 0 else -1.0
        rel = corners[:, :, None, :] - polygon[None, None, :, :]
        side = winding * (edge[None, None, :, 0] * rel[..., 1] - edge[None, None, :, 1] * rel[..., 0])
        touching = ~np.any(np.all(side < 0, axis=1), axis=1)
        return list(zip(ii[touching].tolist(), jj[touching].tolist()))

    def tile_rect(self, i: int, j: int) -> tuple[float, float, float, float]:
        xmin, _, _, ymax = self.texture.extent
        t = self.tile_m
        return (xmin + i * t, ymax - (j + 1) * t, xmin + (i + 1) * t, ymax - j * t)

    def tile(self, i: int, j: int) -> np.ndarray:
        """The tile's texels with one texel of apron on every side, drawn if not cached."""
        raster = self.cache.get((i, j))
        if raster is None:
            raster = self._draw(i, j)
            self.cache[(i, j)] = raster
            while len(self.cache) > self.max_pieces:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end((i, j))
        return raster

    def pieces(self, plan: list[tuple[int, int]]) -> list[TexturePiece]:
        """The planned tiles, joined into one mosaic when they nearly fill their bounding box."""
        if not plan:
            return []
        rasters = {ij: self.tile(*ij) for ij in plan}
        ii, jj = [ij[0] for ij in plan], [ij[1] for ij in plan]
        i0, i1, j0, j1 = min(ii), max(ii), min(jj), max(jj)
        boxed = (i1 - i0 + 1) * (j1 - j0 + 1)
        if boxed > max(2 * len(plan), 9):
            return [self._piece(self.tile_rect(i, j), r) for (i, j), r in rasters.items()]
        key = (i0, j0, i1, j1, frozenset(plan))
        if self._mosaic is None or self._mosaic[0] != key:
            n = self.tile_px
            mosaic = np.empty(((j1 - j0 + 1) * n + 2, (i1 - i0 + 1) * n + 2, 3), np.uint8)
            for (i, j), r in rasters.items():
                mosaic[(j - j0) * n:(j - j0 + 1) * n + 2, (i - i0) * n:(i - i0 + 1) * n + 2] = r
            west, south, _, _ = self.tile_rect(i0, j1)
            _, _, east, north = self.tile_rect(i1, j0)
            self._mosaic = (key, self._piece((west, south, east, north), mosaic))
        return [self._mosaic[1]]

    def _piece(self, rect, raster) -> TexturePiece:
        origin = (rect[0] - 0.5 * self.texel_m, rect[3] + 0.5 * self.texel_m)
        return TexturePiece(raster, origin, self.texel_m, rect)

    def _draw(self, i: int, j: int) -> np.ndarray:
        rect = self.tile_rect(i, j)
        return self.texture.rasterize(rect[0] - self.texel_m, rect[3] + self.texel_m,
                                      self.tile_px + 2, self.tile_px + 2, self.texel_m)


class _AreaLevel:
    """One level of the whole-area raster: the coarse raster itself or a reduction of it."""

    def __init__(self, texture: GroundTexture, raster: np.ndarray, texel_m: float):
        self.texture = texture
        self.raster = raster
        self.texel_m = texel_m
        self.max_pieces = 1 << 30

    def plan(self, polygon: np.ndarray) -> list[np.ndarray]:
        return [polygon] if len(polygon) >= 3 else []

    def pieces(self, plan: list[np.ndarray]) -> list[TexturePiece]:
        """The whole raster, once the chunks under the planned polygon are drawn."""
        if not plan:
            return []
        self.texture._fill_chunks(plan[0])
        xmin, _, _, ymax = self.texture.extent
        origin = (xmin + 0.5 * self.texel_m, ymax - 0.5 * self.texel_m)
        return [TexturePiece(self.raster, origin, self.texel_m, self.texture.extent)]


# --------------------------------------------------------------------------- the texture
class GroundTexture:
    """A city's ground as levels of detail, built from roads, parks and building outlines.

    roads: (N x 2 polyline, width in metres, road class) with OpenStreetMap `highway`
    values as classes (unknown classes draw as residential streets); parks and buildings:
    N x 2 exterior rings. All coordinates are local ENU metres.
    """

    def __init__(self, bounds, roads=(), parks=(), buildings=(), seed: int = 0,
                 metres_per_pixel: float = 0.25, style: GroundStyle | None = None):
        xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        if not (xmax > xmin and ymax > ymin) or not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):
            raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with xmax > xmin and ymax > ymin, got {bounds}")
        if not metres_per_pixel > 0:
            raise ValueError(f"metres_per_pixel must be positive, got {metres_per_pixel}")
        self.style = style or GroundStyle()
        self.seed = int(seed) & 0xFFFFFFFF
        self.bounds = (xmin, ymin, xmax, ymax)
        self.metres_per_pixel = float(metres_per_pixel)
        st = self.style

        chunk = int(st.coarse_chunk_px)
        if chunk < (1 << st.far_levels):
            raise ValueError(f"coarse_chunk_px {chunk} must be at least 2**far_levels ({1 << st.far_levels})")
        span = max(xmax - xmin, ymax - ymin)
        self.coarse_m_per_px = max(st.coarse_min_m_per_px, span / st.coarse_max_px, metres_per_pixel)
        chunk_m = chunk * self.coarse_m_per_px
        self._chunks_x = math.ceil((xmax - xmin) / chunk_m - 1e-9)
        self._chunks_y = math.ceil((ymax - ymin) / chunk_m - 1e-9)
        self._chunk_m = chunk_m
        # The textured extent: the bounds grown to whole coarse chunks, anchored at the north-west corner.
        self.extent = (xmin, ymax - self._chunks_y * chunk_m, xmin + self._chunks_x * chunk_m, ymax)

        self._prepare_roads(roads)
        self._prepare_parks(parks)
        self._prepare_buildings(buildings)

        # Levels, finest first.
        self.levels: list = [_TileLevel(self, metres_per_pixel, st.tile_px, st.fine_cache_tiles)]
        mid = metres_per_pixel * st.mid_level_factor
        if st.mid_level_factor > 1 and mid < self.coarse_m_per_px:
            self.levels.append(_TileLevel(self, mid, st.tile_px, st.mid_cache_tiles))
        self._chunk_filled = np.zeros((self._chunks_y, self._chunks_x), bool)
        # np.zeros lets the operating system commit pages only as chunks are drawn.
        self._mips = [np.zeros((self._chunks_y * chunk >> m, self._chunks_x * chunk >> m, 3), np.uint8)
                      for m in range(st.far_levels + 1)]
        for m, raster in enumerate(self._mips):
            self.levels.append(_AreaLevel(self, raster, self.coarse_m_per_px * (1 << m)))

    # ------------------------------------------------------------ geometry preparation
    def _prepare_roads(self, roads):
        st = self.style
        pts_list, widths, ranks = [], [], []
        for k, road in enumerate(roads):
            try:
                points, width, road_class = road
            except (TypeError, ValueError) as exc:
                raise ValueError(f"road {k}: expected (points, width_m, road_class), got {road!r:.80}") from exc
            width = float(width)
            if not (width > 0 and math.isfinite(width)):
                raise ValueError(f"road {k}: width must be positive metres, got {width}")
            pts_list.append(_as_points(points, f"road {k}", 2))
            widths.append(width)
            ranks.append(_ROAD_RANK.get(str(road_class), _MINOR_RANK))
        if pts_list:
            counts = np.array([len(p) for p in pts_list])
            flat = np.concatenate(pts_list)
            road = np.repeat(np.arange(len(pts_list)), counts)
            same = road[:-1] == road[1:]                      # consecutive points of one road
            a, b, road = flat[:-1][same], flat[1:][same], road[:-1][same]
            length = np.hypot(*(b - a).T)
            cum = np.cumsum(length) - length                  # arc length at each segment start ...
            first = np.searchsorted(road, road)               # ... from the start of its road
            s0 = cum - cum[first]
            keep = length > 1e-6
            a, b, road, length, s0 = a[keep], b[keep], road[keep], length[keep], s0[keep]
            # Long segments split, so each sits in few buckets.
            pieces = np.maximum(1, np.ceil(length / (0.5 * self._bucket_cell()))).astype(np.int64)
            seg = np.repeat(np.arange(len(a)), pieces)
            k = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
            t0, t1 = k / pieces[seg], (k + 1) / pieces[seg]
            d = b - a
            self._seg_a = a[seg] + d[seg] * t0[:, None]
            self._seg_b = a[seg] + d[seg] * t1[:, None]
            self._seg_width = np.asarray(widths, float)[road[seg]]
            self._seg_rank = np.asarray(ranks, np.int8)[road[seg]]
            self._seg_s0 = s0[seg] + t0 * length[seg]
            self._seg_road = road[seg].astype(np.int32)
        else:
            self._seg_a, self._seg_b = np.zeros((0, 2)), np.zeros((0, 2))
            self._seg_width, self._seg_rank, self._seg_s0 = np.zeros(0), np.zeros(0, np.int8), np.zeros(0)
            self._seg_road = np.zeros(0, np.int32)
        half = self._seg_width / 2 + np.where(np.isin(self._seg_rank, _SIDEWALK_RANKS), st.sidewalk_m, 0.0)
        lo = np.minimum(self._seg_a, self._seg_b) - half[:, None]
        hi = np.maximum(self._seg_a, self._seg_b) + half[:, None]
        self._road_grid = self._grid(np.hstack([lo, hi]))

    def _prepare_parks(self, parks):
        self._parks = _Rings(parks, "park")
        self._park_grid = self._grid(self._parks.bboxes)

    def _prepare_buildings(self, buildings):
        st = self.style
        rings = _Rings(buildings, "building")
        self._buildings = rings
        self._building_area = rings.areas
        # Looks drawn from the position, so a building keeps its roof whatever order the map lists it in.
        key_x = np.round(rings.centroids[:, 0] * 10).astype(np.int64)
        key_y = np.round(rings.centroids[:, 1] * 10).astype(np.int64)
        self._building_palette = (_hash01(key_x, key_y, self.seed, 11) * len(st.roof_palette)).astype(np.int32)
        self._building_tone = 0.86 + 0.28 * _hash01(key_x, key_y, self.seed, 12)
        self._building_key = (key_x, key_y)
        flat = self._building_area >= st.flat_roof_min_area_m2
        palette = np.asarray(st.roof_palette, float).reshape(-1, 3)
        base = np.where(flat[:, None], np.asarray(st.flat_roof_rgb, float), palette[self._building_palette])
        self._roof_rgb = np.clip(base * self._building_tone[:, None], 0, 255).astype(np.uint8)
        self._roof_axis, self._roof_centre, self._roof_size = rings.orientation()
        pad = np.abs(st.shadow_offset(st.building_height_m)).max()
        self._building_grid = self._grid(rings.bboxes + np.array([-pad, -pad, pad, pad]))

    def _bucket_cell(self) -> float:
        return max(64.0, self._chunk_m / 4)

    def _grid(self, bboxes) -> _BucketGrid:
        cell = self._bucket_cell()
        xmin, ymin, xmax, ymax = self.extent
        shape = (max(1, math.ceil((xmax - xmin) / cell)), max(1, math.ceil((ymax - ymin) / cell)))
        return _BucketGrid(bboxes, (xmin, ymin), cell, shape)

    # ------------------------------------------------------------ queries
    @property
    def outside_rgb(self) -> Rgb:
        return self.style.outside_rgb

    def cache_info(self) -> dict[str, tuple[int, int]]:
        """Tiles held and the most that may be held, per tiled level."""
        return {f"{lvl.texel_m:g} m/px": (len(lvl.cache), lvl.max_pieces)
                for lvl in self.levels if isinstance(lvl, _TileLevel)}

    def memory_bytes(self) -> int:
        """Bytes held in rasters: tiles cached and the whole-area raster with its reductions."""
        tiled = [lvl for lvl in self.levels if isinstance(lvl, _TileLevel)]
        tiles = sum(r.nbytes for lvl in tiled for r in lvl.cache.values())
        mosaics = sum(lvl._mosaic[1].raster.nbytes for lvl in tiled if lvl._mosaic is not None)
        return tiles + mosaics + sum(m.nbytes for m in self._mips)

    def prefill(self) -> None:
        """Draw the whole-area raster now rather than as the camera first sees each part."""
        xmin, ymin, xmax, ymax = self.extent
        self._fill_chunks(np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]))

    # ------------------------------------------------------------ whole-area raster
    def _fill_chunks(self, polygon: np.ndarray) -> None:
        if len(polygon) < 3:
            return
        xmin, _, _, ymax = self.extent
        c = self._chunk_m
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        i0, i1 = max(0, int((lo[0] - xmin) // c)), min(self._chunks_x - 1, int((hi[0] - xmin) // c))
        j0, j1 = max(0, int((ymax - hi[1]) // c)), min(self._chunks_y - 1, int((ymax - lo[1]) // c))
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                if self._chunk_filled[j, i]:
                    continue
                rect = (xmin + i * c, ymax - (j + 1) * c, xmin + (i + 1) * c, ymax - j * c)
                if len(clip_to_rect(polygon, rect)) >= 3:
                    self._fill_chunk(i, j)

    def _fill_chunk(self, i: int, j: int) -> None:
        n = self.style.coarse_chunk_px
        xmin, _, _, ymax = self.extent
        raster = self.rasterize(xmin + i * self._chunk_m, ymax - j * self._chunk_m, n, n, self.coarse_m_per_px)
        self._mips[0][j * n:(j + 1) * n, i * n:(i + 1) * n] = raster
        for m in range(1, len(self._mips)):
            size = n >> m
            raster = cv2.resize(raster, (size, size), interpolation=cv2.INTER_AREA)
            self._mips[m][j * size:(j + 1) * size, i * size:(i + 1) * size] = raster
        self._chunk_filled[j, i] = True

    # ------------------------------------------------------------ drawing
    def rasterize(self, x_west: float, y_north: float, width_px: int, height_px: int,
                  texel_m: float) -> np.ndarray:
        """RGB texels of the world rectangle whose north-west corner is (x_west, y_north)."""
        st = self.style
        detail = texel_m <= 0.5
        # A margin for trees rooted outside the rectangle whose canopy or shadow reaches into it.
        reach_m = st.tree_radius_m[1] + np.abs(st.shadow_offset(st.tree_height_m * 0.7)).max() + 1.0
        pad = math.ceil(reach_m / texel_m)
        cv = _Canvas(x_west - pad * texel_m, y_north + pad * texel_m, width_px + 2 * pad, height_px + 2 * pad,
                     texel_m)
        xs, ys = cv.centres()
        mix = np.clip(0.5 + 0.9 * _value_noise(xs, ys, st.patch_m, self.seed, 1), 0.0, 1.0)
        grass, garden = np.asarray(st.grass_rgb, np.float32), np.asarray(st.garden_rgb, np.float32)
        img = (grass + mix[..., None] * (garden - grass)).astype(np.uint8)
        park_mask = np.zeros(img.shape[:2], np.uint8)
        occupied = np.zeros(img.shape[:2], np.uint8)

        self._draw_parks(img, park_mask, cv)
        self._draw_roads(img, occupied, cv, detail)
        buildings = self._building_grid.query(cv.rect)
        trees = self._trees(cv, park_mask, occupied, buildings) if texel_m <= 1.5 else None
        self._draw_shadows(img, cv, buildings, trees)
        self._draw_roofs(img, cv, buildings)
        if trees is not None:
            self._draw_trees(img, cv, trees)
        elif len(self._parks):
            self._tint_parks(img, park_mask)

        img = img[pad:pad + height_px, pad:pad + width_px]
        return self._weather(img, xs[pad:pad + width_px], ys[pad:pad + height_px], texel_m)

    def _draw_parks(self, img, park_mask, cv: _Canvas):
        margin = 4 * cv.texel
        rect = (cv.rect[0] - margin, cv.rect[1] - margin, cv.rect[2] + margin, cv.rect[3] + margin)
        for k in self._park_grid.query(cv.rect):
            poly = clip_to_rect(self._parks[k], rect)   # keeps fixed-point coordinates small
            if len(poly) >= 3:
                # One call per park: polygons that overlap within one call cancel out.
                cv2.fillPoly(img, [cv.px(poly)], self.style.park_rgb, cv2.LINE_AA, _SHIFT)
                cv2.fillPoly(park_mask, [cv.px(poly)], 255, cv2.LINE_8, _SHIFT)

    def _draw_roads(self, img, occupied, cv: _Canvas, detail: bool):
        st = self.style
        ids = self._road_grid.query(cv.rect)
        if len(ids) == 0:
            return
        a, b = self._seg_a[ids], self._seg_b[ids]
        width, rank = self._seg_width[ids], self._seg_rank[ids]
        lines = np.stack([cv.px(a), cv.px(b)], axis=1)
        sidewalk = np.isin(rank, _SIDEWALK_RANKS)
        outer = width + np.where(sidewalk, 2 * st.sidewalk_m, 0.0)
        outer_px = cv.lengths(outer)
        for thick in np.unique(outer_px):
            sel = outer_px == thick
            cv2.polylines(occupied, lines[sel], False, 255, int(thick), cv2.LINE_8, _SHIFT)
            if np.any(sel & sidewalk):
                cv2.polylines(img, lines[sel & sidewalk], False, st.sidewalk_rgb, int(thick), cv2.LINE_AA, _SHIFT)
        thickness = cv.lengths(width)
        for r in np.unique(rank):
            colour = (st.path_rgb if r == 0 else
                      st.asphalt_major_rgb if r >= _MAJOR_MIN_RANK else st.asphalt_minor_rgb)
            for thick in np.unique(thickness[rank == r]):
                sel = (rank == r) & (thickness == thick)
                cv2.polylines(img, lines[sel], False, colour, int(thick), cv2.LINE_AA, _SHIFT)
        if detail:
            self._draw_markings(img, cv, ids)
        if cv.texel <= 1.0:
            self._draw_parked_cars(img, cv, ids)

    def _draw_markings(self, img, cv: _Canvas, ids):
        st = self.style
        width, rank = self._seg_width[ids], self._seg_rank[ids]
        marked = (rank > 0) & (width >= 5.5)
        if not np.any(marked):
            return
        ids = ids[marked]
        a, b, s0, width = self._seg_a[ids], self._seg_b[ids], self._seg_s0[ids], self._seg_width[ids]
        d = b - a
        length = np.hypot(d[:, 0], d[:, 1])
        u = d / length[:, None]
        normal = np.stack([-u[:, 1], u[:, 0]], axis=1)
        thick = cv.length(st.marking_width_m)
        # Dashes along arc length from the road's start, so they line up across tiles.
        period = st.dash_m + st.dash_gap_m
        k0 = np.floor(s0 / period).astype(np.int64)
        k1 = np.floor((s0 + length) / period).astype(np.int64)
        counts = k1 - k0 + 1
        seg = np.repeat(np.arange(len(ids)), counts)
        k = k0[seg] + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        start = np.maximum(k * period, s0[seg]) - s0[seg]
        end = np.minimum(k * period + st.dash_m, s0[seg] + length[seg]) - s0[seg]
        ok = end > start + 1e-3
        seg, start, end = seg[ok], start[ok], end[ok]
        offsets = [np.zeros(len(seg))]
        wide = width[seg] >= 10.0
        offsets += [np.where(wide, width[seg] / 4, np.nan), np.where(wide, -width[seg] / 4, np.nan)]
        dashes = []
        for off in offsets:
            good = np.isfinite(off)
            base = a[seg[good]] + normal[seg[good]] * off[good, None]
            p = base + u[seg[good]] * start[good, None]
            q = base + u[seg[good]] * end[good, None]
            dashes.append(np.stack([cv.px(p), cv.px(q)], axis=1))
        cv2.polylines(img, np.concatenate(dashes), False, st.marking_rgb, thick, cv2.LINE_AA, _SHIFT)
        edge = width >= 10.0
        if np.any(edge):
            edges = []
            for side in (1.0, -1.0):
                off = normal[edge] * (side * (width[edge, None] / 2 - 0.5))
                edges.append(np.stack([cv.px(a[edge] + off), cv.px(b[edge] + off)], axis=1))
            cv2.polylines(img, np.concatenate(edges), False, st.marking_rgb, thick, cv2.LINE_AA, _SHIFT)

    def _draw_parked_cars(self, img, cv: _Canvas, ids):
        """Cars parked along the kerbs of residential streets: static, so part of the ground.

        Spaces are numbered by arc length along each road, so a car is in the same place
        whichever tile draws it; none is parked where another road crosses."""
        st = self.style
        if st.parked_car_density <= 0:
            return
        rank, width = self._seg_rank[ids], self._seg_width[ids]
        kerbside = ids[(rank >= 2) & (rank <= 3) & (width >= 7.0)]
        if len(kerbside) == 0:
            return
        space = 6.0
        a, b, s0 = self._seg_a[kerbside], self._seg_b[kerbside], self._seg_s0[kerbside]
        length = np.hypot(*(b - a).T)
        k0 = np.ceil(s0 / space - 0.5).astype(np.int64)
        k1 = np.ceil((s0 + length) / space - 0.5).astype(np.int64)
        counts = np.maximum(k1 - k0, 0)
        seg = np.repeat(np.arange(len(kerbside)), counts)
        k = k0[seg] + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        if len(k) == 0:
            return
        u = (b - a)[seg] / length[seg, None]
        normal = np.stack([-u[:, 1], u[:, 0]], axis=1)
        road = self._seg_road[kerbside][seg]
        base = a[seg] + u * ((k + 0.5) * space - s0[seg])[:, None]
        half_width = self._seg_width[kerbside][seg] / 2 - 1.2
        picks = [_hash01(k, road, self.seed, salt) for salt in (41, 43)]
        keep = [p < st.parked_car_density for p in picks]
        centre = np.concatenate([base[m] + normal[m] * (side * half_width[m])[:, None]
                                 for side, m in zip((1.0, -1.0), keep)])
        axis = np.concatenate([u[m] for m in keep])
        tone = np.concatenate([p[m] / st.parked_car_density for p, m in zip(picks, keep)])
        own_road = np.concatenate([road[m] for m in keep])
        if len(centre) == 0:
            return
        # Clear of junctions: no car within another road's half width plus 4 m.
        others = self._road_grid.query(cv.rect)
        pa, d = self._seg_a[others], self._seg_b[others] - self._seg_a[others]
        rel = centre[:, None, :] - pa[None]
        t = np.clip(np.einsum("csk,sk->cs", rel, d) / np.maximum((d * d).sum(axis=1), 1e-9), 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * d[None], axis=2)
        crossing = (self._seg_road[others][None, :] != own_road[:, None]) & (
            dist < self._seg_width[others][None, :] / 2 + 4.0)
        clear = ~crossing.any(axis=1)
        centre, axis, tone = centre[clear], axis[clear], tone[clear]
        side = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
        body_corners = np.array([(-2.2, -0.9), (2.2, -0.9), (2.2, 0.9), (-2.2, 0.9)])
        cabin_corners = np.array([(-1.1, -0.75), (0.7, -0.75), (0.7, 0.75), (-1.1, 0.75)])
        bodies, cabins = (cv.px(centre[:, None, :] + corners[None, :, :1] * axis[:, None, :]
                                + corners[None, :, 1:] * side[:, None, :])
                          for corners in (body_corners, cabin_corners))
        palette = np.asarray(st.parked_car_palette, float).reshape(-1, 3)
        colour = palette[(tone * len(palette)).astype(int) % len(palette)]
        for body, cabin, rgb, dim in zip(bodies, cabins, colour.astype(int).tolist(),
                                         (colour * 0.8).astype(int).tolist()):
            cv2.fillConvexPoly(img, body, rgb, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(img, cabin, dim, cv2.LINE_AA, _SHIFT)

    def _trees(self, cv: _Canvas, park_mask, occupied, buildings) -> np.ndarray:
        """Trees (x, y, radius) on a world lattice: in parks densely, in free ground sparsely."""
        st = self.style
        if len(buildings):
            cv2.fillPoly(occupied, self._buildings.pixels(cv, buildings), 255, cv2.LINE_8, _SHIFT)
        s = st.tree_spacing_m
        x0, y0, x1, y1 = cv.rect
        ix = np.arange(math.floor(x0 / s), math.floor(x1 / s) + 1)
        iy = np.arange(math.floor(y0 / s), math.floor(y1 / s) + 1)
        gx, gy = np.meshgrid(ix, iy)
        gx, gy = gx.ravel(), gy.ravel()
        u = [_hash01(gx, gy, self.seed, salt) for salt in (21, 22, 23, 24)]
        x = (gx + 0.5 + 0.8 * (u[1] - 0.5)) * s
        y = (gy + 0.5 + 0.8 * (u[2] - 0.5)) * s
        col = np.floor((x - cv.x_west) / cv.texel).astype(np.int64)
        row = np.floor((cv.y_north - y) / cv.texel).astype(np.int64)
        inside = (col >= 0) & (col < cv.width) & (row >= 0) & (row < cv.height)
        col, row = np.clip(col, 0, cv.width - 1), np.clip(row, 0, cv.height - 1)
        density = np.where(park_mask[row, col] > 0, st.park_tree_density,
                           np.where(occupied[row, col] > 0, 0.0, st.garden_tree_density))
        keep = inside & (u[0] < density)
        r0, r1 = st.tree_radius_m
        return np.stack([x[keep], y[keep], r0 + (r1 - r0) * u[3][keep]], axis=1)

    def _draw_shadows(self, img, cv: _Canvas, buildings, trees):
        st = self.style
        if st.shadow_brightness >= 1.0:
            return
        mask = np.zeros(img.shape[:2], np.uint8)
        if len(buildings):
            # A building's shadow is its outline swept along the shadow offset: a dilation by a line.
            cv2.fillPoly(mask, self._buildings.pixels(cv, buildings), 255, cv2.LINE_8, _SHIFT)
            dx, dy = (int(round(v)) for v in st.shadow_offset(st.building_height_m) / cv.texel * (1, -1))
            ax, ay = max(dx, 0), max(dy, 0)
            kernel = np.zeros((abs(dy) + 1, abs(dx) + 1), np.uint8)
            cv2.line(kernel, (ax, ay), (ax - dx, ay - dy), 1)
            mask = cv2.dilate(mask, kernel, anchor=(ax, ay))
        if trees is not None and len(trees):
            shifted = trees[:, :2] + st.shadow_offset(st.tree_height_m * 0.7)
            centres = cv.px(shifted)
            for (cx, cy), r in zip(centres, trees[:, 2]):
                cv2.circle(mask, (int(cx), int(cy)), int(r / cv.texel * _ONE), 255, -1, cv2.LINE_8, _SHIFT)
        shade = mask > 0
        img[shade] = (img[shade] * st.shadow_brightness).astype(np.uint8)

    def _draw_roofs(self, img, cv: _Canvas, buildings):
        st = self.style
        if len(buildings) == 0:
            return
        flat = self._building_area[buildings] >= st.flat_roof_min_area_m2
        if cv.texel > 1.5:
            # The far field: flat colours, one call per palette entry.
            for p in range(len(st.roof_palette)):
                sel = buildings[(self._building_palette[buildings] == p) & ~flat]
                if len(sel):
                    cv2.fillPoly(img, self._buildings.pixels(cv, sel), st.roof_palette[p], cv2.LINE_AA, _SHIFT)
            if np.any(flat):
                cv2.fillPoly(img, self._buildings.pixels(cv, buildings[flat]), st.flat_roof_rgb, cv2.LINE_AA, _SHIFT)
            return
        sun = st.sun_direction[:2]
        fine = cv.texel <= 0.5
        parapet = cv.length(0.5)
        base = self._roof_rgb[buildings].tolist()
        shade = np.clip(self._roof_rgb[buildings] * 0.78, 0, 255).astype(int).tolist()
        edge = np.clip(self._roof_rgb[buildings] * 0.72, 0, 255).astype(int).tolist()
        light = np.clip(self._roof_rgb[buildings] * 1.18 + 12, 0, 255).astype(int).tolist()
        for n, (k, pts) in enumerate(zip(buildings.tolist(), self._buildings.pixels(cv, buildings))):
            cv2.fillPoly(img, [pts], base[n], cv2.LINE_AA, _SHIFT)
            if flat[n]:
                cv2.polylines(img, [pts], True, light[n], parapet, cv2.LINE_AA, _SHIFT)
                if fine:
                    self._draw_roof_units(img, cv, k)
                continue
            # A gable: the ridge along the long axis; the half facing away from the sun is darker.
            axis, centre = self._roof_axis[k], self._roof_centre[k]
            normal = np.array([-axis[1], axis[0]])
            side = normal if float(normal @ sun) < 0 else -normal
            half = clip_halfplane(self._buildings[k], side, -float(side @ centre))
            if len(half) >= 3:
                cv2.fillPoly(img, [cv.px(half)], shade[n], cv2.LINE_AA, _SHIFT)
            ridge = self._roof_size[k, 0] / 2 - 0.3
            ends = cv.px(np.array([centre - axis * ridge, centre + axis * ridge])).tolist()
            cv2.line(img, ends[0], ends[1], light[n], 1, cv2.LINE_AA, _SHIFT)
            if fine:
                cv2.polylines(img, [pts], True, edge[n], 1, cv2.LINE_AA, _SHIFT)

    def _draw_roof_units(self, img, cv: _Canvas, k: int):
        """Plant and skylights on a flat roof, placed from the building's position."""
        st = self.style
        kx, ky = self._building_key[0][k], self._building_key[1][k]
        n = int(np.clip(self._building_area[k] / 120.0, 1, 10))
        salts = np.arange(n) * 3 + 31
        length, width = self._roof_size[k]
        axis, centre = self._roof_axis[k], self._roof_centre[k]
        normal = np.array([-axis[1], axis[0]])
        along = (_hash01(kx, ky, self.seed, salts) - 0.5) * 0.8 * length
        across = (_hash01(kx, ky, self.seed, salts + 1) - 0.5) * 0.8 * width
        big = _hash01(kx, ky, self.seed, salts + 2) > 0.6
        contour = self._buildings[k].astype(np.float32)
        shadow = st.shadow_offset(1.0)
        dark = tuple(int(c * 0.55) for c in st.flat_roof_rgb)
        for a, c, b in zip(along, across, big):
            p = centre + axis * a + normal * c
            if cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), False) <= 0:
                continue
            hl, hw = (1.6, 1.1) if b else (0.8, 0.6)
            box = np.array([p + axis * sa * hl + normal * sb * hw for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
            cv2.fillConvexPoly(img, cv.px(box + shadow), dark, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(img, cv.px(box), st.roof_unit_rgb, cv2.LINE_AA, _SHIFT)

    def _draw_trees(self, img, cv: _Canvas, trees):
        st = self.style
        if len(trees) == 0:
            return
        towards_sun = st.sun_direction[:2] / max(np.hypot(*st.sun_direction[:2]), 1e-6)
        centres = cv.px(trees[:, :2])
        lights = cv.px(trees[:, :2] + towards_sun * trees[:, 2:3] * 0.3)
        for (cx, cy), (lx, ly), r in zip(centres, lights, trees[:, 2]):
            rr = r / cv.texel * _ONE
            cv2.circle(img, (int(cx), int(cy)), int(rr), st.tree_rgb, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, (int(lx), int(ly)), int(rr * 0.6), st.tree_light_rgb, -1, cv2.LINE_AA, _SHIFT)

    def _tint_parks(self, img, park_mask):
        """Far away, trees are too small to draw: darken parks by the share of canopy instead."""
        st = self.style
        r = sum(st.tree_radius_m) / 2
        cover = min(1.0, st.park_tree_density * math.pi * r * r / st.tree_spacing_m ** 2)
        sel = park_mask > 0
        tree = np.asarray(st.tree_rgb, np.float32)
        img[sel] = (img[sel] * (1 - cover) + tree * cover).astype(np.uint8)

    def _weather(self, img, xs, ys, texel_m) -> np.ndarray:
        """Broad patches, mottling and grain: brightness fixed in the world."""
        st = self.style
        gain = 1.0 + st.patch_amplitude * _value_noise(xs, ys, st.patch_m * 0.5, self.seed, 2)
        if st.mottle_m >= 2 * texel_m:
            gain += st.mottle_amplitude * _value_noise(xs, ys, st.mottle_m, self.seed, 3)
        xmin, _, _, ymax = self.extent
        col = np.floor((xs - xmin) / texel_m).astype(np.int64)
        row = np.floor((ymax - ys) / texel_m).astype(np.int64)
        level_salt = 100 + int(round(math.log2(texel_m) * 8))
        u = _hash01(col[None, :], row[:, None], self.seed, level_salt)
        grain_std = st.grain_std * min(1.0, self.metres_per_pixel / texel_m)
        # The sum of two uniforms from one hash: a triangular grain with the requested spread.
        hi = (u * 4096.0).astype(np.int64)
        u1, u2 = hi / 4096.0, u * 4096.0 - hi
        grain = ((u1 + u2 - 1.0) * (grain_std * math.sqrt(6.0))).astype(np.float32)
        out = img.astype(np.float32) * gain[..., None] + grain[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)
