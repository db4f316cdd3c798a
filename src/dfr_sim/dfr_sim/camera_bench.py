"""How fast the embedded camera renders, and how much memory it holds, over a synthetic town.

`synthetic_town` is plain geometry of the kind a map loader produces (a grid of streets
with main roads, blocks of houses with gardens, flat-roofed commercial blocks, parks
with footpaths), so the renderer can be measured and tested without any map data.
"""
from __future__ import annotations

import math
import resource
import time

import cv2
import numpy as np

from dfr_sim.camera_renderer import CameraModel, car, ebike_with_rider, gimbal_to_world_rotation, pedestrian, render
from dfr_sim.ground_texture import GroundTexture


def _rect(cx, cy, length, width, angle):
    c, s = math.cos(angle), math.sin(angle)
    local = np.array([[-length / 2, -width / 2], [length / 2, -width / 2], [length / 2, width / 2],
                      [-length / 2, width / 2]])
    return local @ np.array([[c, s], [-s, c]]) + (cx, cy)


def synthetic_town(size_m: float = 1000.0, block_m: float = 100.0, seed: int = 0):
    """(bounds, roads, parks, buildings) of a square town centred on the origin.

    Streets run on a grid every block_m, every fifth one a main road; a block is a park
    (about one in ten), a commercial block with large flat roofs, or houses along its edges.
    """
    rng = np.random.default_rng(seed)
    half = size_m / 2
    bounds = (-half, -half, half, half)
    lines = np.arange(-half + block_m / 2, half, block_m)
    along = np.linspace(-half, half, max(2, int(round(size_m / block_m)) + 1))
    roads = []
    for k, v in enumerate(lines):
        main = k % 5 == 2
        width, road_class = (14.0, "primary") if main else (8.0, "residential")
        roads.append((np.stack([along, np.full_like(along, v)], axis=1), width, road_class))
        roads.append((np.stack([np.full_like(along, v), along], axis=1), width, road_class))
    parks, buildings = [], []
    for bx in lines[:-1]:
        for by in lines[:-1]:
            x0, y0 = bx + 8.0, by + 8.0              # the block inside its streets and pavements
            x1, y1 = bx + block_m - 8.0, by + block_m - 8.0
            kind = rng.random()
            if kind < 0.1:
                parks.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
                roads.append((np.array([[x0, y0], [x1, y1]]), 2.5, "footway"))
            elif kind < 0.25:
                for cx in (x0 + (x1 - x0) * 0.28, x0 + (x1 - x0) * 0.72):
                    length, width = rng.uniform(26, 36), rng.uniform(30, 60)
                    buildings.append(_rect(cx, (y0 + y1) / 2, length, width, rng.normal(0, 0.03)))
            else:
                n = max(2, int((x1 - x0) // 13))
                for side_y, sign in ((y0 + 9.0, 1), (y1 - 9.0, -1)):
                    for i in range(n):
                        cx = x0 + (i + 0.5) * (x1 - x0) / n
                        length, width = rng.uniform(7, 10), rng.uniform(8, 11)
                        buildings.append(_rect(cx + rng.normal(0, 0.4), side_y + sign * rng.normal(0, 0.5),
                                               length, width, math.pi / 2 + rng.normal(0, 0.04)))
    return bounds, roads, parks, buildings


def _actors_around(centre, t: float, count: int = 20):
    """A mix of e-bikes, cars and pedestrians moving about a point."""
    actors = []
    for k in range(count):
        ang = 2 * math.pi * k / count + 0.05 * t
        dist = 8.0 + 3.0 * (k % 5)
        x, y = centre[0] + dist * math.cos(ang), centre[1] + dist * math.sin(ang)
        heading = ang + math.pi / 2
        kind = k % 4
        if kind == 0:
            actors += ebike_with_rider(x, y, heading)
        elif kind == 1:
            actors += car(x, y, heading, rgb=(40 + 50 * (k % 4), 60, 160))
        else:
            actors += pedestrian(x, y, heading)
    return actors


class _Flight:
    """A straight flight at 60 m and 12 m/s, turning slowly, filmed at 30 frames a second."""

    def __init__(self, texture, camera, start, pitch_deg, rng, altitude=60.0, yaw=math.pi / 3):
        self.texture, self.camera, self.rng = texture, camera, rng
        self.start, self.pitch, self.altitude, self.yaw = start, pitch_deg, altitude, yaw
        self.look_ahead = 0.0 if pitch_deg <= -89.0 else altitude / math.tan(math.radians(-pitch_deg))

    def frame(self, i: int) -> np.ndarray:
        heading = self.yaw + 0.002 * i
        along = 12.0 / 30.0 * i * np.array([math.cos(self.yaw), math.sin(self.yaw)])
        pos = np.array([*(self.start + along), self.altitude])
        target = pos[:2] + self.look_ahead * np.array([math.cos(heading), math.sin(heading)])
        rot = gimbal_to_world_rotation(heading, self.pitch)
        return render(self.texture, self.camera, pos, rot, _actors_around(target, i / 30.0), rng=self.rng)


def benchmark_render(frames: int = 100, width: int = 640, height: int = 480, area_m: float = 10000.0,
                     seed: int = 0) -> dict:
    """Frames per second on one core for a down-looking view from 60 m and an oblique one
    (pitch -30), each with about 20 actors in view, flying at 12 m/s at 30 frames a second;
    the first frame of each (which draws tiles and far-field chunks) is timed apart.
    Peak RSS is the whole process's."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        bounds, roads, parks, buildings = synthetic_town(area_m, seed=seed)
        t0 = time.perf_counter()
        texture = GroundTexture(bounds, roads, parks, buildings, seed=seed)
        build_s = time.perf_counter() - t0
        camera = CameraModel(width, height, math.radians(80.0))
        result = {"frames": frames, "width": width, "height": height, "area_m": area_m,
                  "buildings": len(buildings), "texture_build_s": build_s}
        for name, pitch in (("down", -90.0), ("oblique", -30.0)):
            start = np.array([-0.2, -0.2] if name == "down" else [0.1, 0.1]) * area_m
            flight = _Flight(texture, camera, start, pitch, np.random.default_rng(seed))
            t0 = time.perf_counter()
            flight.frame(0)
            result[f"{name}_first_frame_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(1, frames + 1):
                flight.frame(i)
            result[f"{name}_fps"] = frames / (time.perf_counter() - t0)
        result["texture_raster_mb"] = texture.memory_bytes() / 2**20
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return result
    finally:
        cv2.setNumThreads(threads)


if __name__ == "__main__":
    for key, value in benchmark_render().items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
