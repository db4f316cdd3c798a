"""The simulator's ground world: streets, parks and building roofs in ENU metres.

A GeoJSON FeatureCollection (WGS 84 longitude, latitude) lists roads as LineStrings
and parks as Polygons. Loading turns them into the local ENU frame and nodes the
roads into a junction graph: a node wherever a road ends or meets another road
(ends within a snap tolerance count as meeting), an edge for each stretch of road
between two nodes. Ground actors route and wander on that graph, the traffic lights
stand at its busier junctions, and the camera renderer draws roads, parks and the
building footprints that `generate_buildings` lays out beside the streets.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely import STRtree
from shapely.geometry import LineString, Point, Polygon

from dfr_common.config_file import load_json
from dfr_common.geodesy import LocalFrame

ROAD_CLASSES = ("primary", "secondary", "residential")
MAJOR_ROAD_CLASSES = ("primary", "secondary")
FEATURE_KINDS = ("road", "park")
_ROAD_PROPERTIES = {"kind", "name", "road_class", "width_m", "speed_limit_m_s", "ref", "note"}
_PARK_PROPERTIES = {"kind", "name", "note"}
_WIDTH_RANGE_M = (2.0, 60.0)
_SPEED_LIMIT_RANGE_M_S = (1.0, 40.0)


class StreetMapError(ValueError):
    """The street map file is missing or malformed; the message names the file and the feature."""


class NoRouteError(LookupError):
    """Two places lie in separate parts of the street graph."""


@dataclass(frozen=True)
class StreetMapConfig:
    """How roads without their own width or speed limit are taken, and how close ends must be to join."""

    snap_tolerance_m: float = 1.0
    default_width_m: dict = field(default_factory=lambda: {
        "primary": 12.0, "secondary": 10.0, "residential": 7.5})
    default_speed_limit_m_s: dict = field(default_factory=lambda: {
        "primary": 13.41, "secondary": 8.94, "residential": 8.94})   # 30 mph, 20 mph, 20 mph


@dataclass(frozen=True)
class Road:
    name: str
    road_class: str
    line: LineString           # centreline, ENU metres
    width_m: float             # carriageway, kerb to kerb
    speed_limit_m_s: float
    feature_index: int = -1    # where it came from in the file, for messages

    @property
    def is_major(self) -> bool:
        return self.road_class in MAJOR_ROAD_CLASSES


@dataclass(frozen=True, eq=False)
class Edge:
    """A stretch of one road between two junction nodes; `points` run from node u to node v."""

    u: int
    v: int
    road: int
    points: np.ndarray
    length_m: float
    cumulative_m: np.ndarray   # distance along the edge at each point


@dataclass(frozen=True, eq=False)
class RoadLocation:
    """A place on the street graph: so far along an edge, measured from its u end."""

    edge: int
    along_m: float
    point: np.ndarray
    distance_m: float          # from the position that was looked up


@dataclass(frozen=True)
class EdgeStep:
    """Travel along (part of) one edge, from start_m to end_m measured from its u end."""

    edge: int
    start_m: float
    end_m: float

    @property
    def forward(self) -> bool:
        return self.end_m >= self.start_m

    @property
    def length_m(self) -> float:
        return abs(self.end_m - self.start_m)


class StreetMap:
    """Roads, parks and buildings in one LocalFrame, with the routable junction graph of the roads."""

    def __init__(self, frame: LocalFrame, roads, parks=(), park_names=(), buildings=(), building_heights_m=(),
                 config: StreetMapConfig | None = None, source: str = "<street map>"):
        self.frame = frame
        self.config = config or StreetMapConfig()
        self.source = source
        self.roads: tuple[Road, ...] = tuple(roads)
        self.parks: tuple[Polygon, ...] = tuple(parks)
        self.park_names: tuple[str, ...] = tuple(park_names) or tuple(f"park {i}" for i in range(len(self.parks)))
        self.buildings: tuple[Polygon, ...] = tuple(buildings)
        self.building_heights_m: tuple[float, ...] = tuple(building_heights_m)
        if not self.roads:
            raise StreetMapError(f"{source}: no roads")
        if len(self.building_heights_m) != len(self.buildings):
            raise ValueError("one building height per building")
        geometries = [road.line for road in self.roads] + list(self.parks)
        xmin, ymin, xmax, ymax = shapely.total_bounds(geometries)
        self.bounds: tuple[float, float, float, float] = (float(xmin), float(ymin), float(xmax), float(ymax))
        self._build_graph()

    # ------------------------------------------------------------------ graph
    def _build_graph(self) -> None:
        tolerance = self.config.snap_tolerance_m
        lines = [road.line for road in self.roads]
        splits = self._split_points(lines, tolerance)
        road_of = np.array([s[0] for s in splits])
        along = np.array([s[1] for s in splits])
        xy = np.array([s[2] for s in splits])

        # Points within the tolerance of each other are one node.
        pairs = cKDTree(xy).query_pairs(tolerance, output_type="ndarray")
        adjacency = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy), len(xy)))
        _, node_of = connected_components(adjacency, directed=False)
        counts = np.bincount(node_of)
        nodes = np.column_stack([np.bincount(node_of, xy[:, 0]), np.bincount(node_of, xy[:, 1])]) / counts[:, None]
        node_list = [tuple(p) for p in nodes]

        edges: list[Edge] = []
        for road_index, line in enumerate(lines):
            coords = np.asarray(line.coords)[:, :2]
            cumulative = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
            mine = np.flatnonzero(road_of == road_index)
            mine = mine[np.lexsort((node_of[mine], along[mine]))]
            start = mine[0]
            for nxt in mine[1:]:
                if node_of[nxt] == node_of[start] and along[nxt] - along[start] <= 2 * tolerance:
                    continue
                edges.extend(self._pieces(road_index, coords, cumulative, along[start], along[nxt],
                                          node_of[start], node_of[nxt], node_list))
                start = nxt
        self.nodes = np.array(node_list, dtype=float)
        self.edges: tuple[Edge, ...] = tuple(edges)
        self._index_graph()

    @staticmethod
    def _split_points(lines, tolerance):
        """(road, distance along it, point) wherever a road must be cut: its ends and every meeting."""
        splits = []
        for i, line in enumerate(lines):
            coords = np.asarray(line.coords)
            splits.append((i, 0.0, tuple(coords[0, :2])))
            splits.append((i, line.length, tuple(coords[-1, :2])))
        tree = STRtree(lines)
        left, right = tree.query(lines, predicate="dwithin", distance=tolerance)
        for i, j in zip(left.tolist(), right.tolist()):
            if i >= j:
                continue
            a, b = lines[i], lines[j]
            for p in _points_of(a.intersection(b)):
                splits.append((i, a.project(Point(p)), p))
                splits.append((j, b.project(Point(p)), p))
            # An end that stops just short of (or just past) another road joins it.
            for near, far, far_index in ((a, b, j), (b, a, i)):
                for end in (near.coords[0], near.coords[-1]):
                    end_point = Point(end)
                    if 0.0 < far.distance(end_point) <= tolerance:
                        d = far.project(end_point)
                        p = far.interpolate(d)
                        splits.append((far_index, d, (p.x, p.y)))
        return splits

    def _pieces(self, road_index, coords, cumulative, d0, d1, u, v, node_list):
        if u == v:
            if d1 - d0 <= 2 * self.config.snap_tolerance_m:
                return []
            # A road that comes back to where it started: a node in the middle keeps the graph simple.
            middle = 0.5 * (d0 + d1)
            node_list.append(tuple(_interpolate(coords, cumulative, middle)))
            w = len(node_list) - 1
            return (self._pieces(road_index, coords, cumulative, d0, middle, u, w, node_list)
                    + self._pieces(road_index, coords, cumulative, middle, d1, w, v, node_list))
        inner = coords[(cumulative > d0) & (cumulative < d1)]
        points = np.vstack([node_list[u], inner, node_list[v]])
        steps = np.hypot(*np.diff(points, axis=0).T)
        keep = np.concatenate([[True], steps > 1e-9])
        points = points[keep]
        if len(points) < 2:
            return []
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
        return [Edge(int(u), int(v), road_index, points, float(cum[-1]), cum)]

    def _index_graph(self) -> None:
        n = len(self.nodes)
        self._incident: list[list[int]] = [[] for _ in range(n)]
        best: dict[tuple[int, int], int] = {}
        for k, edge in enumerate(self.edges):
            self._incident[edge.u].append(k)
            self._incident[edge.v].append(k)
            key = (min(edge.u, edge.v), max(edge.u, edge.v))
            if key not in best or edge.length_m < self.edges[best[key]].length_m:
                best[key] = k
        self._best_edge = best
        rows = [key[0] for key in best] + [key[1] for key in best]
        cols = [key[1] for key in best] + [key[0] for key in best]
        weights = [self.edges[k].length_m for k in best.values()] * 2
        self._matrix = coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
        count, labels = connected_components(self._matrix, directed=False)
        self.component_labels = labels
        self.largest_component_fraction = float(np.bincount(labels).max() / n) if n else 0.0
        self.warnings: tuple[str, ...] = ()
        if count > 1:
            self.warnings = (f"{self.source}: the street graph has {count} separate parts; the largest holds "
                             f"{self.largest_component_fraction:.0%} of its {n} nodes",)
        self._node_tree = cKDTree(self.nodes)
        self._edge_lines = [LineString(edge.points) for edge in self.edges]
        self._edge_tree = STRtree(self._edge_lines)
        self._signal_groups = [self._groups_at(node) for node in range(n)]
        self._half_width = np.array([max((self.roads[self.edges[k].road].width_m / 2 for k in self._incident[node]),
                                         default=0.0) for node in range(n)])

    def _groups_at(self, node: int) -> tuple[str, ...]:
        """The road names that take turns at a signalised junction, main roads first; () if unsignalised."""
        incident = self._incident[node]
        roads = [self.roads[self.edges[k].road] for k in incident]
        if len(incident) < 3 or not any(road.is_major for road in roads):
            return ()
        order: dict[str, tuple[int, int]] = {}
        for k in incident:
            road = self.roads[self.edges[k].road]
            rank = (ROAD_CLASSES.index(road.road_class), self.edges[k].road)
            order[road.name] = min(order.get(road.name, rank), rank)
        if len(order) < 2:
            return ()    # one street forking: nothing to alternate between
        return tuple(sorted(order, key=order.get))

    # ---------------------------------------------------------------- queries
    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def is_connected(self) -> bool:
        return not self.warnings

    def incident_edges(self, node: int) -> list[int]:
        return list(self._incident[node])

    def neighbours(self, node: int) -> list[int]:
        """Nodes one edge away, in edge order, each once."""
        seen: list[int] = []
        for k in self._incident[node]:
            edge = self.edges[k]
            other = edge.v if edge.u == node else edge.u
            if other not in seen:
                seen.append(other)
        return seen

    def degree(self, node: int) -> int:
        return len(self._incident[node])

    def is_signalised(self, node: int) -> bool:
        """Three or more edges, a primary or secondary road among them, and at least two streets to alternate."""
        return bool(self._signal_groups[node])

    def signal_groups(self, node: int) -> tuple[str, ...]:
        return self._signal_groups[node]

    def approach_group(self, node: int, edge: int) -> int:
        """Which signal group traffic arriving at `node` along `edge` belongs to; -1 where there are no lights."""
        groups = self._signal_groups[node]
        if not groups:
            return -1
        return groups.index(self.roads[self.edges[edge].road].name)

    def junction_half_width_m(self, node: int) -> float:
        """Half the widest carriageway meeting at the node: how far back from it a kerb line lies."""
        return float(self._half_width[node])

    def nearest_node(self, xy) -> int:
        _, index = self._node_tree.query(np.asarray(xy, dtype=float)[:2])
        return int(index)

    def locate(self, xy) -> RoadLocation:
        """The nearest place on any road to an ENU position."""
        point = Point(float(xy[0]), float(xy[1]))
        candidates = self._edge_tree.query_nearest(point, all_matches=True)
        k = int(np.min(candidates))
        line = self._edge_lines[k]
        along = float(line.project(point))
        on_road = np.asarray(line.interpolate(along).coords[0])
        return RoadLocation(k, along, on_road, float(line.distance(point)))

    def location_on_edge(self, edge: int, along_m: float) -> RoadLocation:
        e = self.edges[edge]
        along = float(min(max(along_m, 0.0), e.length_m))
        return RoadLocation(edge, along, _interpolate(e.points, e.cumulative_m, along), 0.0)

    def route_steps(self, from_node: int, to_node: int) -> list[EdgeStep]:
        """The shortest way along the roads between two nodes, edge by edge."""
        if from_node == to_node:
            return []
        distances, predecessors = dijkstra(self._matrix, indices=from_node, return_predecessors=True)
        if not math.isfinite(distances[to_node]):
            raise NoRouteError(f"no road route from node {from_node} to node {to_node}")
        return self._steps_along(predecessors, from_node, to_node)

    def route(self, from_node: int, to_node: int) -> list[tuple[float, float]]:
        """The shortest road route between two nodes as an ENU polyline."""
        points = self.steps_polyline(self.route_steps(from_node, to_node))
        if not points:
            return [tuple(self.nodes[from_node])]
        return points

    def route_between(self, start: RoadLocation, end: RoadLocation) -> list[EdgeStep]:
        """The shortest way along the roads between two places on them (ends may lie part-way along edges)."""
        if start.edge == end.edge:
            step = EdgeStep(start.edge, start.along_m, end.along_m)
            return [step] if step.length_m > 0 else []
        a, b = self.edges[start.edge], self.edges[end.edge]
        distances, predecessors = dijkstra(self._matrix, indices=[a.u, a.v], return_predecessors=True)
        best = None
        for row, (exit_node, exit_cost, exit_m) in enumerate(((a.u, start.along_m, 0.0),
                                                              (a.v, a.length_m - start.along_m, a.length_m))):
            for entry_node, entry_cost, entry_m in ((b.u, end.along_m, 0.0), (b.v, b.length_m - end.along_m,
                                                                                 b.length_m)):
                total = exit_cost + distances[row, entry_node] + entry_cost
                if math.isfinite(total) and (best is None or total < best[0] - 1e-9):
                    best = (total, row, exit_node, exit_m, entry_node, entry_m)
        if best is None:
            raise NoRouteError(f"no road route from edge {start.edge} to edge {end.edge}")
        _, row, exit_node, exit_m, entry_node, entry_m = best
        steps = [EdgeStep(start.edge, start.along_m, exit_m)]
        steps += self._steps_along(predecessors[row], exit_node, entry_node)
        steps.append(EdgeStep(end.edge, entry_m, end.along_m))
        return [s for s in steps if s.length_m > 0]

    def _steps_along(self, predecessors, from_node: int, to_node: int) -> list[EdgeStep]:
        chain = [to_node]
        while chain[-1] != from_node:
            chain.append(int(predecessors[chain[-1]]))
        chain.reverse()
        steps = []
        for a, b in zip(chain[:-1], chain[1:]):
            k = self._best_edge[(min(a, b), max(a, b))]
            length = self.edges[k].length_m
            steps.append(EdgeStep(k, 0.0, length) if self.edges[k].u == a else EdgeStep(k, length, 0.0))
        return steps

    def step_points(self, step: EdgeStep) -> np.ndarray:
        """The polyline of one step, in the direction of travel."""
        edge = self.edges[step.edge]
        lo, hi = sorted((step.start_m, step.end_m))
        inner = edge.points[(edge.cumulative_m > lo) & (edge.cumulative_m < hi)]
        points = np.vstack([_interpolate(edge.points, edge.cumulative_m, lo), inner,
                            _interpolate(edge.points, edge.cumulative_m, hi)])
        return points if step.forward else points[::-1]

    def steps_polyline(self, steps) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for step in steps:
            for p in self.step_points(step):
                q = (float(p[0]), float(p[1]))
                if not out or math.hypot(q[0] - out[-1][0], q[1] - out[-1][1]) > 1e-6:
                    out.append(q)
        return out

    def edge_road(self, edge: int) -> Road:
        return self.roads[self.edges[edge].road]

    def with_buildings(self, buildings, heights_m) -> StreetMap:
        """The same map and graph with these building footprints."""
        other = copy.copy(self)
        other.buildings = tuple(buildings)
        other.building_heights_m = tuple(float(h) for h in heights_m)
        if len(other.buildings) != len(other.building_heights_m):
            raise ValueError("one building height per building")
        return other


def _interpolate(points: np.ndarray, cumulative: np.ndarray, distance: float) -> np.ndarray:
    return np.array([np.interp(distance, cumulative, points[:, 0]), np.interp(distance, cumulative, points[:, 1])])


def _points_of(geometry) -> list[tuple[float, float]]:
    """The points where two roads meet: crossing points, and the ends of any stretch they share."""
    if geometry.is_empty:
        return []
    kind = geometry.geom_type
    if kind == "Point":
        return [(geometry.x, geometry.y)]
    if kind == "LineString":
        coords = geometry.coords
        return [tuple(coords[0][:2]), tuple(coords[-1][:2])]
    if kind in ("MultiPoint", "MultiLineString", "GeometryCollection"):
        return [p for part in geometry.geoms for p in _points_of(part)]
    return []


# ------------------------------------------------------------------- loading
def load_street_map(path, frame: LocalFrame, config: StreetMapConfig | None = None) -> StreetMap:
    """Read a street map GeoJSON file into `frame`. Buildings come later, from generate_buildings."""
    config = config or StreetMapConfig()
    path = Path(path)
    data = load_json(path, StreetMapError, "street map")
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        got = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise StreetMapError(f"{path}: expected a GeoJSON FeatureCollection, got {got!r}")
    features = data.get("features")
    if not isinstance(features, list):
        raise StreetMapError(f"{path}: 'features' must be a list")
    roads, parks, park_names = [], [], []
    for i, feature in enumerate(features):
        where = f"{path}: features[{i}]"
        kind, properties, geometry, where = _feature_parts(feature, where)
        name = properties.get("name")
        if kind == "road":
            roads.append(_road(properties, geometry, frame, config, where, i))
        else:
            parks.append(_park(properties, geometry, frame, where))
            park_names.append(str(name) if name is not None else f"park {i}")
    if not roads:
        raise StreetMapError(f"{path}: no road features")
    return StreetMap(frame, roads, parks, park_names, config=config, source=str(path))


def _feature_parts(feature, where):
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise StreetMapError(f"{where}: expected a GeoJSON Feature")
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        raise StreetMapError(f"{where}: 'properties' must be a mapping with a 'kind'")
    if properties.get("name") is not None:
        where = f"{where} ({properties['name']})"
    kind = properties.get("kind")
    if kind not in FEATURE_KINDS:
        raise StreetMapError(f"{where}: kind {kind!r} is not one of {', '.join(FEATURE_KINDS)}")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or "coordinates" not in geometry:
        raise StreetMapError(f"{where}: missing geometry")
    return kind, properties, geometry, where


def _positions(coords, where, minimum: int) -> np.ndarray:
    """Longitude, latitude pairs checked one by one, so the message can say which is wrong."""
    if not isinstance(coords, list) or len(coords) < minimum:
        raise StreetMapError(f"{where}: expected a list of at least {minimum} [longitude, latitude] positions")
    out = np.empty((len(coords), 2))
    for k, position in enumerate(coords):
        if (not isinstance(position, (list, tuple)) or len(position) not in (2, 3)
                or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in position)):
            raise StreetMapError(f"{where}: coordinate {k} must be [longitude, latitude], got {position!r}")
        lon, lat = float(position[0]), float(position[1])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise StreetMapError(f"{where}: coordinate {k} is not finite: {position!r}")
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise StreetMapError(f"{where}: coordinate {k} is not a longitude, latitude: {position!r}")
        out[k] = lon, lat
    return out


def _to_enu(frame: LocalFrame, lon_lat: np.ndarray) -> np.ndarray:
    east, north, _ = frame.to_enu(lon_lat[:, 1], lon_lat[:, 0])
    return np.column_stack([np.atleast_1d(east), np.atleast_1d(north)])


def _optional_number(properties, key, where, bounds):
    value = properties.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StreetMapError(f"{where}: {key} must be a finite number, got {value!r}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise StreetMapError(f"{where}: {key} {value} is out of range {lo:g}..{hi:g}")
    return float(value)


def _unknown_properties(properties, allowed, where):
    unknown = sorted(set(properties) - allowed)
    if unknown:
        raise StreetMapError(f"{where}: unknown properties {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(allowed))})")


def _road(properties, geometry, frame, config, where, index) -> Road:
    _unknown_properties(properties, _ROAD_PROPERTIES, where)
    name = properties.get("name")
    if not isinstance(name, str) or not name.strip():
        raise StreetMapError(f"{where}: a road needs a non-empty 'name'")
    road_class = properties.get("road_class")
    if road_class not in ROAD_CLASSES:
        raise StreetMapError(f"{where}: road_class {road_class!r} is not one of {', '.join(ROAD_CLASSES)}")
    if geometry.get("type") != "LineString":
        raise StreetMapError(f"{where}: a road must be a LineString, got {geometry.get('type')!r}")
    enu = _to_enu(frame, _positions(geometry["coordinates"], where, 2))
    keep = np.concatenate([[True], np.hypot(*np.diff(enu, axis=0).T) > 1e-6])
    enu = enu[keep]
    if len(enu) < 2:
        raise StreetMapError(f"{where}: a road needs at least two distinct positions")
    width = _optional_number(properties, "width_m", where, _WIDTH_RANGE_M)
    limit = _optional_number(properties, "speed_limit_m_s", where, _SPEED_LIMIT_RANGE_M_S)
    return Road(name, road_class, LineString(enu),
                width if width is not None else float(config.default_width_m[road_class]),
                limit if limit is not None else float(config.default_speed_limit_m_s[road_class]),
                index)


def _park(properties, geometry, frame, where) -> Polygon:
    _unknown_properties(properties, _PARK_PROPERTIES, where)
    if geometry.get("type") != "Polygon":
        raise StreetMapError(f"{where}: a park must be a Polygon, got {geometry.get('type')!r}")
    rings = geometry["coordinates"]
    if not isinstance(rings, list) or not rings:
        raise StreetMapError(f"{where}: a Polygon needs at least its outer ring")
    enu_rings = []
    for r, ring in enumerate(rings):
        positions = _positions(ring, f"{where} ring {r}", 4)
        if not np.array_equal(positions[0], positions[-1]):
            raise StreetMapError(f"{where}: ring {r} is not closed (first and last positions differ)")
        enu_rings.append(_to_enu(frame, positions))
    polygon = Polygon(enu_rings[0], enu_rings[1:])
    reason = shapely.is_valid_reason(polygon)
    if reason != "Valid Geometry" or polygon.area <= 0:
        raise StreetMapError(f"{where}: not a valid polygon: {reason}")
    return polygon


# ----------------------------------------------------------------- buildings
@dataclass(frozen=True)
class BuildingConfig:
    """Terraces and blocks along the streets: sizes in metres, drawn uniformly from each (low, high)."""

    setback_m: float = 3.0                       # kerb to building front: pavement and front garden
    frontage_m: tuple[float, float] = (7.0, 18.0)
    depth_m: tuple[float, float] = (9.0, 16.0)
    gap_m: tuple[float, float] = (1.0, 5.0)      # between neighbours along the street
    rows: int = 3                                # the street front, then buildings behind it
    row_gap_m: tuple[float, float] = (4.0, 12.0)  # yards and gardens between rows
    height_m: tuple[float, float] = (7.0, 22.0)
    clearance_m: float = 1.5                     # from any carriageway, and from parks


def generate_buildings(street_map: StreetMap, seed: int, config: BuildingConfig | None = None) -> StreetMap:
    """The map with rectangular building footprints beside its roads, none on a road, a park or another.

    Candidates are laid along both sides of every road, then those that touch a road,
    a park or the map's edge are dropped, and overlaps are resolved in favour of the
    front row. The same seed gives the same buildings.
    """
    config = config or BuildingConfig()
    rng = np.random.default_rng(seed)
    corners, rows, heights = [], [], []
    for road in street_map.roads:
        line = road.line
        for side in (1.0, -1.0):
            front = road.width_m / 2 + config.setback_m
            for row in range(config.rows):
                depth = rng.uniform(*config.depth_m)
                quads = _frontage(line, side, front, depth, rng, config)
                if len(quads):
                    corners.append(quads)
                    rows.append(np.full(len(quads), row))
                    heights.append(rng.uniform(*config.height_m, size=len(quads)))
                front += depth + rng.uniform(*config.row_gap_m)
    if not corners:
        return street_map.with_buildings((), ())
    quads = np.concatenate(corners)
    rows_of = np.concatenate(rows)
    height_of = np.concatenate(heights)
    candidates = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))

    obstacles = [road.line.buffer(road.width_m / 2 + config.clearance_m, quad_segs=4)
                 for road in street_map.roads]
    obstacles += [park.buffer(config.clearance_m, quad_segs=4) for park in street_map.parks]
    hit, _ = STRtree(obstacles).query(candidates, predicate="intersects")
    xmin, ymin, xmax, ymax = street_map.bounds
    inside = shapely.contains_xy(shapely.box(xmin, ymin, xmax, ymax), quads[:, :, 0], quads[:, :, 1]).all(axis=1)
    keep = inside.copy()
    keep[hit] = False
    index = np.flatnonzero(keep)
    index = index[np.argsort(rows_of[index], kind="stable")]   # the street front first
    kept = candidates[index]
    left, right = STRtree(kept).query(kept, predicate="intersects")
    clash = left != right
    order = np.argsort(left[clash], kind="stable")
    a, b = left[clash][order], right[clash][order]
    starts = np.searchsorted(a, np.arange(len(kept) + 1))
    taken = np.zeros(len(kept), dtype=bool)
    blocked = np.zeros(len(kept), dtype=bool)
    for k in range(len(kept)):
        if blocked[k]:
            continue
        taken[k] = True
        blocked[b[starts[k]:starts[k + 1]]] = True
    chosen = index[taken]
    return street_map.with_buildings(tuple(candidates[chosen]), tuple(height_of[chosen].tolist()))


def _frontage(line: LineString, side: float, front_m: float, depth_m: float, rng, config: BuildingConfig):
    """Corner points (n, 4, 2) of a row of rectangles along one side of a road."""
    length = line.length
    mean_pitch = np.mean(config.frontage_m) + np.mean(config.gap_m)
    count = int(length / mean_pitch * 1.5) + 2
    widths = rng.uniform(*config.frontage_m, size=count)
    gaps = rng.uniform(*config.gap_m, size=count)
    starts = np.concatenate([[gaps[0]], gaps[0] + np.cumsum(widths[:-1] + gaps[1:])])
    fits = starts + widths <= length
    starts, widths = starts[fits], widths[fits]
    if not len(starts):
        return np.empty((0, 4, 2))
    centre = starts + widths / 2
    a = shapely.get_coordinates(shapely.line_interpolate_point(line, np.maximum(centre - 1.0, 0.0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(line, np.minimum(centre + 1.0, length)))
    mid = shapely.get_coordinates(shapely.line_interpolate_point(line, centre))
    tangent = b - a
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = side * np.column_stack([-tangent[:, 1], tangent[:, 0]])
    half = (widths / 2)[:, None]
    near = mid + normal * front_m
    far = mid + normal * (front_m + depth_m)
    return np.stack([near - tangent * half, near + tangent * half, far + tangent * half, far - tangent * half],
                    axis=1)
