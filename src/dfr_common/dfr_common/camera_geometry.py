"""Pinhole camera geometry over flat ground, shared by the simulator and perception.

The simulator draws what a gimbal camera sees with it; perception runs it backwards to
put image detections on the map. One definition keeps the two in agreement.

Frames: world ENU metres, z the height above the flat ground (REP-103); the camera's
optical frame is x right, y down, z forward (REP-103's `_optical` frame). Gimbal angles
follow MAVLink's MOUNT convention (dfr_common.mount). Pixels follow OpenCV: the centre of
pixel (column u, row v) is at (u, v). Cameras are distortion-free: undistort measured
pixels (cv2.undistortPoints with P=K) before back-projecting them.

Intrinsics are the 3 x 3 matrix K of a sensor_msgs/CameraInfo; anything with a `k`
attribute holding it (the simulator's CameraModel), or the nine row-major numbers of
CameraInfo.k, is accepted as well.
"""
from __future__ import annotations

import math

import numpy as np

# Ground farther than this from the camera is not put on the map by default: a ray that
# grazes the horizon meets the ground kilometres away, where a 0.1 degree error is metres.
DEFAULT_MAX_RANGE_M = 5000.0


def rot_x(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Columns: the optical axes (x right, y down, z forward) in a forward-left-up body frame.
FLU_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def gimbal_to_world_rotation(vehicle_yaw_enu_rad: float, pitch_deg: float, roll_deg: float = 0.0,
                             yaw_deg: float = 0.0) -> np.ndarray:
    """World-from-camera-optical rotation for a gimbal on a level vehicle.

    vehicle_yaw_enu_rad: heading, 0 east, counter-clockwise positive. Gimbal angles as in
    MAVLink's MOUNT messages: pitch 0 at the horizon and -90 straight down, yaw from the
    nose and positive clockwise (to the right), roll positive right side down. The gimbal
    stabilises against the airframe, so the vehicle's own roll and pitch do not enter.
    """
    heading = vehicle_yaw_enu_rad - math.radians(yaw_deg)
    world_from_flu = rot_z(heading) @ rot_y(-math.radians(pitch_deg)) @ rot_x(math.radians(roll_deg))
    return world_from_flu @ FLU_FROM_OPTICAL


# --------------------------------------------------------------------------- argument checks
def intrinsic_matrix(k) -> np.ndarray:
    """K as a 3 x 3 float array, from a matrix, CameraInfo.k's nine numbers or an object with `k`."""
    if hasattr(k, "k") and not isinstance(k, np.ndarray):
        k = k.k
    m = np.asarray(k, dtype=float)
    if m.size != 9:
        raise ValueError(f"intrinsic matrix K must be 3 x 3 (or 9 numbers), got shape {m.shape}")
    m = m.reshape(3, 3)
    if not np.all(np.isfinite(m)):
        raise ValueError("intrinsic matrix K has non-finite entries")
    if m[0, 0] <= 0.0 or m[1, 1] <= 0.0 or abs(m[2, 2] - 1.0) > 1e-9 or np.any(m[2, :2] != 0.0):
        raise ValueError(f"intrinsic matrix K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, "
                         f"got {m.tolist()}")
    return m


def as_position(position_enu) -> np.ndarray:
    """A camera position as 3 floats; ValueError unless 3 finite numbers."""
    c = np.asarray(position_enu, dtype=float).reshape(-1)
    if c.size != 3 or not np.all(np.isfinite(c)):
        raise ValueError(f"camera position must be 3 finite ENU metres, got {np.asarray(position_enu).tolist()}")
    return c


def as_rotation(rotation_world_from_camera) -> np.ndarray:
    """A rotation as a 3 x 3 float array; ValueError unless finite, orthonormal and proper."""
    r = np.asarray(rotation_world_from_camera, dtype=float)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        raise ValueError(f"rotation must be a finite 3 x 3 matrix, got shape {r.shape}")
    if np.abs(r @ r.T - np.eye(3)).max() > 1e-5 or np.linalg.det(r) < 0.0:
        raise ValueError("rotation must be a proper rotation (orthonormal, determinant +1)")
    return r


def _pixels(uv) -> np.ndarray:
    """N x 2 pixels from (u, v) or N x 2; NaN entries pass through as 'no pixel'."""
    p = np.asarray(uv, dtype=float)
    if p.ndim == 1 and p.size == 2:
        p = p.reshape(1, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pixels must be N x 2 (u, v), got shape {p.shape}")
    return p


def _points(points_enu) -> np.ndarray:
    """N x 3 ENU points from N x 2 (on the ground) or N x 3."""
    pts = np.atleast_2d(np.asarray(points_enu, dtype=float))
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"points must be N x 2 (on the ground) or N x 3 ENU metres, got shape {pts.shape}")
    if pts.shape[1] == 2:
        pts = np.hstack([pts, np.zeros((len(pts), 1))])
    return pts


# --------------------------------------------------------------------------- forward
def ground_homography(k, position_enu, rotation_world_from_camera) -> np.ndarray:
    """The 3 x 3 map from ground points (x, y, 1), ENU metres, to homogeneous pixels."""
    c = as_position(position_enu)
    r = as_rotation(rotation_world_from_camera)
    ground_to_rel = np.array([[1.0, 0.0, -c[0]], [0.0, 1.0, -c[1]], [0.0, 0.0, -c[2]]])
    return intrinsic_matrix(k) @ r.T @ ground_to_rel


def project_points(k, position_enu, rotation_world_from_camera, points_enu) -> np.ndarray:
    """Pixels (N x 2) of ENU points (N x 2 on the ground, or N x 3); NaN for points not in front of the camera."""
    m = intrinsic_matrix(k)
    c = as_position(position_enu)
    r = as_rotation(rotation_world_from_camera)
    q = (_points(points_enu) - c) @ r            # camera optical coordinates
    uv = np.full((len(q), 2), np.nan)
    with np.errstate(invalid="ignore"):
        front = q[:, 2] > 1e-9
    uvw = q[front] @ m.T
    uv[front] = uvw[:, :2] / uvw[:, 2:3]
    return uv


def in_image(uv, width: int, height: int) -> np.ndarray:
    """Which pixels (N x 2; NaN: none) fall inside a width x height image, edges of the edge pixels included."""
    p = _pixels(uv)
    with np.errstate(invalid="ignore"):
        return ((p[:, 0] >= -0.5) & (p[:, 0] <= width - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= height - 0.5))


def project(camera, position_enu, rotation_world_from_camera, points_enu):
    """Pixels (N x 2, NaN behind the camera) of ENU points (N x 2 on the ground, or N x 3), and
    a mask of those in front of the camera and inside the image.

    camera: anything with fx, fy, cx, cy, width and height (the simulator's CameraModel).
    """
    k = np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])
    uv = project_points(k, position_enu, rotation_world_from_camera, points_enu)
    return uv, in_image(uv, camera.width, camera.height)


# --------------------------------------------------------------------------- backward
def pixel_rays(k, rotation_world_from_camera, uv) -> np.ndarray:
    """Unit directions (N x 3, world ENU) of the rays through pixels (N x 2); NaN pixels give NaN rays."""
    m = intrinsic_matrix(k)
    r = as_rotation(rotation_world_from_camera)
    p = _pixels(uv)
    homogeneous = np.hstack([p, np.ones((len(p), 1))])
    rays = np.linalg.solve(m, homogeneous.T).T @ r.T
    with np.errstate(invalid="ignore"):
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def intersect_ground(camera_position_enu, rays_enu, ground_z: float = 0.0,
                     max_range_m: float = DEFAULT_MAX_RANGE_M) -> np.ndarray:
    """Where rays (N x 3, from the camera) meet the plane z = ground_z: N x 3 ENU points.

    NaN where a ray runs level or upwards, the camera is not above the plane, or the
    point is farther than max_range_m from the camera (as the ray runs).
    """
    c = as_position(camera_position_enu)
    d = np.atleast_2d(np.asarray(rays_enu, dtype=float))
    if d.ndim != 2 or d.shape[1] != 3:
        raise ValueError(f"rays must be N x 3, got shape {d.shape}")
    if not math.isfinite(ground_z):
        raise ValueError(f"ground_z must be finite, got {ground_z}")
    if not max_range_m > 0.0:
        raise ValueError(f"max_range_m must be > 0, got {max_range_m}")
    height = c[2] - ground_z
    out = np.full(d.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = -height / d[:, 2]                                    # ray lengths (in units of |d|)
        reach = t * np.linalg.norm(d, axis=1)
        hit = (d[:, 2] < 0.0) & (height > 0.0) & (reach <= max_range_m)
    out[hit] = c + t[hit, None] * d[hit]
    out[hit, 2] = ground_z
    return out


def ground_points_of_pixels(k, camera_position_enu, rotation_world_from_camera, uv, ground_z: float = 0.0,
                            max_range_m: float = DEFAULT_MAX_RANGE_M) -> np.ndarray:
    """The ground points (N x 3 ENU, z = ground_z) seen at pixels (N x 2).

    NaN for pixels at or above the horizon, beyond max_range_m from the camera, NaN
    pixels, or a camera at or below the ground.
    """
    rays = pixel_rays(k, rotation_world_from_camera, uv)
    return intersect_ground(camera_position_enu, rays, ground_z, max_range_m)
