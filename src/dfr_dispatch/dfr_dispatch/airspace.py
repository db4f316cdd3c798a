"""Airspace for dispatch: no-fly polygons, the altitude ceiling, and routes around them.

Restrictions come from a GeoJSON FeatureCollection (config/airspace/): airport flight
restriction zones and restricted areas, each with a `permission`:
  never            no drone of ours ever enters it;
  police_permitted police drones may enter it when the operator holds that permission;
  permit_required  entry needs a permit (air traffic control's, say) that the operator holds.
Which permissions the operator holds is configuration: an `Airspace` is built with the
set it holds, and every restriction whose permission is not in that set (and whose floor
lies below the flight ceiling) is no-fly.

Routing works in the east-north plane of a LocalFrame. Each no-fly polygon is grown by a
safety margin (`buffer_m`) and simplified; the grown polygons are merged where they
overlap. A route is the exact shortest path among them: the shortest path around
polygonal obstacles bends only at their convex corners, so a visibility graph over those
corners, plus the start and the goal, holds it. The corner-to-corner part of the graph and
its all-pairs shortest paths are computed once per Airspace; a route only tests which
corners the start and the goal see and picks the best pair.

A goal inside a no-fly polygon (an incident in a restricted area) is answered from the
nearest point outside it, and the route says so in its notes. A start inside a no-fly
area (a base within a zone) is an error; a start inside the margin only leaves it by the
nearest way first, and the route says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.ops import nearest_points, unary_union

from dfr_common.config_file import load_json
from dfr_common.geodesy import LocalFrame

KINDS = ("frz", "restricted")
PERMISSIONS = ("never", "police_permitted", "permit_required")
GRANTABLE = ("police_permitted", "permit_required")

# Visibility tests use obstacles shrunk by this much, so that a path running along an
# edge or touching a corner counts as clear despite rounding. A route may therefore
# graze a margin's edge by up to this distance; the margin is tens of metres.
_GRAZE_M = 1e-3
_EARTH_RADIUS_M = 6371000.0
_NUDGE_M = 0.05      # how far outside the margin's edge a moved goal or start is put


class AirspaceError(ValueError):
    """A restriction file is malformed, a permission is unknown, or no route exists."""


@dataclass(frozen=True)
class Restriction:
    """One restricted volume: a polygon (longitude, latitude order, as GeoJSON) from floor to ceiling."""

    name: str
    kind: str                   # frz | restricted
    floor_m: float              # metres above the surface
    ceiling_m: float
    permission: str             # never | police_permitted | permit_required
    geometry: BaseGeometry      # Polygon or MultiPolygon in longitude, latitude
    note: str = ""

    def contains(self, latitude: float, longitude: float) -> bool:
        return self.geometry.covers(Point(longitude, latitude))


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AirspaceError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _restriction(path: Path, i: int, feature) -> Restriction:
    if not isinstance(feature, dict):
        raise AirspaceError(f"{path}: feature {i} is not an object")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise AirspaceError(f"{path}: feature {i} has no properties")
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AirspaceError(f"{path}: feature {i} needs a non-empty 'name'")
    where = f"{path}: '{name}'"
    for key in ("kind", "floor_m", "ceiling_m", "permission"):
        if key not in props:
            raise AirspaceError(f"{where} has no '{key}'")
    kind, permission = props["kind"], props["permission"]
    if kind not in KINDS:
        raise AirspaceError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if permission not in PERMISSIONS:
        raise AirspaceError(f"{where}: permission {permission!r} is not one of {', '.join(PERMISSIONS)}")
    floor_m = _number(props["floor_m"], f"{where}: floor_m")
    ceiling_m = _number(props["ceiling_m"], f"{where}: ceiling_m")
    if floor_m < 0.0 or ceiling_m <= floor_m:
        raise AirspaceError(f"{where}: needs 0 <= floor_m < ceiling_m, got {floor_m} and {ceiling_m}")
    try:
        geometry = shape(feature["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ShapelyError) as err:
        raise AirspaceError(f"{where} has no valid geometry: {err}") from err
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty or not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry) if geometry.geom_type in ("Polygon", "MultiPolygon") else ""
        raise AirspaceError(f"{where}: geometry is not a valid, non-empty polygon ({geometry.geom_type}"
                            f"{': ' + reason if reason else ''})")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0):
        raise AirspaceError(f"{where}: coordinates are not longitude, latitude in degrees")
    return Restriction(name.strip(), kind, floor_m, ceiling_m, permission, geometry, str(props.get("note", "")))


def load_restrictions(path) -> list[Restriction]:
    """Every feature of a GeoJSON FeatureCollection of restrictions; a bad file raises AirspaceError saying why."""
    path = Path(path)
    data = load_json(path, AirspaceError, "airspace file")
    features = data.get("features") if isinstance(data, dict) and data.get("type") == "FeatureCollection" else None
    if not isinstance(features, list):
        raise AirspaceError(f"{path}: expected a GeoJSON FeatureCollection")
    restrictions = [_restriction(path, i, feature) for i, feature in enumerate(features)]
    names = [r.name for r in restrictions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AirspaceError(f"{path}: restriction names must be unique: {', '.join(duplicates)}")
    return restrictions


def altitude_layer(heading_rad: float, base_m: float = 60.0, step_m: float = 10.0, layers: int = 4,
                   ceiling_m: float = 120.0) -> float:
    """Cruise altitude for a leg flown on `heading_rad`, for vertical separation by direction.

    The heading is an ENU yaw (REP-103: 0 east, counter-clockwise). The circle is cut into
    `layers` equal sectors centred on east, north, west, south (for 4 layers); sector k flies
    at base_m + k * step_m. With the defaults: east 60 m, north 70 m, west 80 m, south 90 m,
    so drones on opposite headings are 20 m apart. The top layer must not exceed the ceiling.
    """
    if not math.isfinite(heading_rad):
        raise ValueError(f"heading must be finite, got {heading_rad}")
    if layers < 1 or step_m < 0.0 or base_m < 0.0:
        raise ValueError("need layers >= 1, step_m >= 0 and base_m >= 0")
    if base_m + (layers - 1) * step_m > ceiling_m:
        raise ValueError(f"top layer {base_m + (layers - 1) * step_m} m is above the {ceiling_m} m ceiling")
    sector = 2.0 * math.pi / layers
    k = int(math.floor((heading_rad + sector / 2.0) / sector)) % layers
    return base_m + k * step_m


@dataclass
class Route:
    """A route from a start to a goal around no-fly areas.

    points: (latitude, longitude) pairs, start first, goal (or the point answering it) last.
    enu: the same points as east, north metres in the Airspace's frame.
    goal_moved_m: how far the last point lies from the goal asked for (0 if not moved).
    notes: sentences for the mission and the audit log (an incident answered from an edge...).
    """

    points: list[tuple[float, float]]
    enu: np.ndarray
    length_m: float
    notes: list[str] = field(default_factory=list)
    goal_moved_m: float = 0.0

    @property
    def direct(self) -> bool:
        return len(self.points) == 2


def _convex_corners(polygon: Polygon) -> list[tuple[float, float]]:
    """Corners where the polygon (obstacle) turns convexly: the only places a shortest path bends."""
    polygon = orient(polygon, 1.0)      # exterior counter-clockwise, holes clockwise: interior on the left
    corners = []
    for ring in [polygon.exterior, *polygon.interiors]:
        xy = np.asarray(ring.coords)[:-1]
        prev, nxt = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
        a, b = xy - prev, nxt - xy
        cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        corners.extend(map(tuple, xy[cross > 1e-9]))
    return corners


def _parts(geometry: BaseGeometry) -> list[Polygon]:
    if geometry.is_empty:
        return []
    if isinstance(geometry, Polygon):
        return [geometry]
    if isinstance(geometry, MultiPolygon):
        return list(geometry.geoms)
    return [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


class Airspace:
    """The no-fly polygons a set of permissions leaves, in a local frame, and routes around them.

    restrictions: from load_restrictions. frame: the LocalFrame to plan in (one frame serves
    all of London). permissions: the permission values the operator holds, e.g.
    {"police_permitted"}. buffer_m: safety margin kept from every no-fly polygon.
    ceiling_m: the flight ceiling above the surface; restrictions whose floor is at or above
    it do not constrain us. simplify_m: tolerance of the simplification of grown polygons
    (the margin is grown by it first, so simplifying never eats into `buffer_m`).
    """

    def __init__(self, restrictions, frame: LocalFrame, permissions=frozenset(), buffer_m: float = 50.0,
                 ceiling_m: float = 120.0, simplify_m: float = 5.0):
        permissions = frozenset(permissions)
        unknown = sorted(p for p in permissions if p not in GRANTABLE)
        if unknown:
            raise AirspaceError(f"permissions {unknown} are not grantable; use any of {', '.join(GRANTABLE)}")
        if not (math.isfinite(buffer_m) and buffer_m >= 0.0):
            raise AirspaceError(f"buffer_m must be finite and >= 0, got {buffer_m}")
        if not (math.isfinite(ceiling_m) and ceiling_m > 0.0):
            raise AirspaceError(f"ceiling_m must be finite and > 0, got {ceiling_m}")
        if not (math.isfinite(simplify_m) and simplify_m >= 0.0):
            raise AirspaceError(f"simplify_m must be finite and >= 0, got {simplify_m}")
        self.frame = frame
        self.permissions = permissions
        self.buffer_m = float(buffer_m)
        self.ceiling_m = float(ceiling_m)
        self.restrictions = list(restrictions)
        self.no_fly = [r for r in self.restrictions
                       if r.permission not in permissions and r.floor_m < self.ceiling_m]
        # Each no-fly restriction in the frame, as given (zones) and grown by the margin.
        self.zones: list[BaseGeometry] = [self._to_enu(r.geometry) for r in self.no_fly]
        grown = [z.buffer(self.buffer_m + simplify_m, quad_segs=4).simplify(simplify_m, preserve_topology=True)
                 for z in self.zones]
        self.margins: list[BaseGeometry] = grown
        self.obstacles: list[Polygon] = _parts(unary_union(grown)) if grown else []
        self._merged = unary_union(self.obstacles) if self.obstacles else Polygon()
        shrunk = [o.buffer(-_GRAZE_M, quad_segs=1) for o in self.obstacles]
        self._shrunk = [g for s in shrunk for g in _parts(s)]
        shapely.prepare(self._shrunk)
        shapely.prepare(self.zones)
        shapely.prepare(self.margins)
        shapely.prepare(self._merged)
        self._tree = shapely.STRtree(self._shrunk)
        corners = [c for o in self.obstacles for c in _convex_corners(o)]
        self.corners = np.array(corners, dtype=float).reshape(-1, 2)
        self._build_graph()

    # --- frame conversion -------------------------------------------------------------------
    def _to_enu(self, geometry: BaseGeometry) -> BaseGeometry:
        def convert(coords):
            lon, lat = coords[:, 0], coords[:, 1]
            east, north, _ = self.frame.to_enu(lat, lon, np.full_like(lat, self.frame.origin.altitude))
            return np.column_stack([east, north])
        return shapely.transform(geometry, convert)

    def enu_of(self, lat_lon) -> np.ndarray:
        lat, lon = float(lat_lon[0]), float(lat_lon[1])
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise AirspaceError(f"position {lat}, {lon} is not finite")
        east, north, _ = self.frame.to_enu(lat, lon)
        return np.array([east, north], dtype=float)

    def lat_lon_of(self, enu) -> tuple[float, float]:
        """The latitude and longitude under an east-north point (put on the sphere's surface, below the plane)."""
        east, north = float(enu[0]), float(enu[1])
        lat, lon, _ = self.frame.to_geodetic(east, north, -(east * east + north * north) / (2.0 * _EARTH_RADIUS_M))
        return float(lat), float(lon)

    # --- queries -------------------------------------------------------------------------------
    def blocked(self, lat_lon) -> bool:
        """Whether a (latitude, longitude) lies inside a no-fly area or its margin."""
        return self._blocked_enu(self.enu_of(lat_lon))

    def zones_at(self, lat_lon) -> list[str]:
        """Names of the no-fly restrictions (as given, without margin) that hold a (latitude, longitude)."""
        p = Point(self.enu_of(lat_lon))
        return [r.name for r, z in zip(self.no_fly, self.zones) if z.covers(p)]

    def cap_altitude(self, altitude_m: float) -> float:
        """An altitude above the surface, held to the ceiling."""
        return min(float(altitude_m), self.ceiling_m)

    def _blocked_enu(self, xy) -> bool:
        return bool(self._merged.contains(Point(xy)))

    def _visible(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """For segments a[i] -> b[i]: True where the segment stays out of every obstacle's interior."""
        n = len(a)
        clear = np.ones(n, dtype=bool)
        if n == 0 or not self._shrunk:
            return clear
        lines = shapely.linestrings(np.stack([a, b], axis=1))
        line_idx, _ = self._tree.query(lines, predicate="intersects")
        clear[line_idx] = False
        return clear

    def _build_graph(self) -> None:
        n = len(self.corners)
        self._dist = np.zeros((n, n))
        self._pred = np.full((n, n), -9999, dtype=np.int32)
        if n == 0:
            return
        i, j = np.triu_indices(n, k=1)
        ok = self._visible(self.corners[i], self.corners[j])
        i, j = i[ok], j[ok]
        w = np.hypot(*(self.corners[i] - self.corners[j]).T)
        graph = csr_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
        self._dist, self._pred = shortest_path(graph, method="D", directed=False, return_predecessors=True)

    def _corner_path(self, i: int, j: int) -> list[int]:
        path = [j]
        while path[-1] != i:
            path.append(int(self._pred[i, path[-1]]))
        return path[::-1]

    def _leave(self, xy: np.ndarray) -> np.ndarray:
        """The nearest point just outside the merged margins to a point inside them."""
        p = Point(xy)
        outside = None
        for obstacle in self.obstacles:
            if obstacle.contains(p):
                edge = nearest_points(obstacle.exterior, p)[0]
                # The point may lie in a hole's pocket of free space nearer than the exterior.
                for hole in obstacle.interiors:
                    h = nearest_points(hole, p)[0]
                    if h.distance(p) < edge.distance(p):
                        edge = h
                outside = np.array(edge.coords[0])
                break
        if outside is None:
            return xy
        direction = outside - xy
        norm = float(np.hypot(*direction))
        step = direction / norm if norm > 1e-9 else np.zeros(2)
        for nudge in (_NUDGE_M, 10 * _NUDGE_M, 100 * _NUDGE_M):
            candidate = outside + step * nudge
            if not self._blocked_enu(candidate):
                return candidate
        raise AirspaceError("cannot find a clear point next to a no-fly margin")   # pragma: no cover

    def route(self, start_lat_lon, goal_lat_lon) -> Route:
        """The shortest route from start to goal that keeps out of every no-fly area and its margin."""
        start, goal = self.enu_of(start_lat_lon), self.enu_of(goal_lat_lon)
        notes: list[str] = []
        head: list[np.ndarray] = []
        if self._blocked_enu(start):
            inside = [r.name for r, z in zip(self.no_fly, self.zones) if z.covers(Point(start))]
            if inside:
                raise AirspaceError(f"the start {tuple(start_lat_lon)} lies in no-fly area '{inside[0]}', "
                                    "whose permission is not held")
            head = [start]
            start = self._leave(start)
            names = [r.name for r, m in zip(self.no_fly, self.margins) if m.covers(Point(head[0]))]
            notes.append(f"the start lies within the {self.buffer_m:.0f} m margin of '{names[0]}': "
                         f"leaves it by the nearest way ({np.hypot(*(start - head[0])):.0f} m)")
        asked_goal = goal
        goal_moved = 0.0
        if self._blocked_enu(goal):
            goal = self._leave(goal)
            goal_moved = float(np.hypot(*(goal - asked_goal)))
            p = Point(asked_goal)
            inside = [r.name for r, z in zip(self.no_fly, self.zones) if z.covers(p)]
            if inside:
                notes.append(f"the incident lies in '{inside[0]}': answered from its edge, "
                             f"{goal_moved:.0f} m from the incident")
            else:
                near = [r.name for r, m in zip(self.no_fly, self.margins) if m.covers(p)]
                notes.append(f"the incident lies within the {self.buffer_m:.0f} m margin of '{near[0]}': "
                             f"answered from the margin's edge, {goal_moved:.0f} m from the incident")
        body = self._shortest(start, goal)
        enu = np.array(head + body, dtype=float)
        length = float(np.sum(np.hypot(*np.diff(enu, axis=0).T))) if len(enu) > 1 else 0.0
        points = [self.lat_lon_of(p) for p in enu]
        points[0] = (float(start_lat_lon[0]), float(start_lat_lon[1]))      # exactly as given
        if goal_moved == 0.0:
            points[-1] = (float(goal_lat_lon[0]), float(goal_lat_lon[1]))
        return Route(points, enu, length, notes, goal_moved)

    def _shortest(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        if self._visible(start[None, :], goal[None, :])[0]:
            return [start, goal]
        n = len(self.corners)
        ends = np.concatenate([np.repeat(start[None, :], n, axis=0), np.repeat(goal[None, :], n, axis=0)])
        seen = self._visible(ends, np.concatenate([self.corners, self.corners]))
        from_start, to_goal = np.flatnonzero(seen[:n]), np.flatnonzero(seen[n:])
        if len(from_start) == 0 or len(to_goal) == 0:
            raise AirspaceError("no route: the start or the goal is enclosed by no-fly areas")
        ds = np.hypot(*(self.corners[from_start] - start).T)
        dg = np.hypot(*(self.corners[to_goal] - goal).T)
        total = ds[:, None] + self._dist[np.ix_(from_start, to_goal)] + dg[None, :]
        best = np.unravel_index(int(np.argmin(total)), total.shape)
        if not np.isfinite(total[best]):
            raise AirspaceError("no route: no-fly areas separate the start from the goal")
        i, j = int(from_start[best[0]]), int(to_goal[best[1]])
        return [start, *(self.corners[k] for k in self._corner_path(i, j)), goal]
