"""Privacy: everything but the kept target is unrecognisable, the target is untouched, and the
mission record keeps only the target's track."""
from dataclasses import dataclass

import numpy as np
import pytest

from dfr_perception.privacy import PrivacyConfig, blur_except, obscure, redact_tracks


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


def local_detail(img):
    """Mean absolute difference between neighbouring pixels: high for noise, low once blurred."""
    return float(np.abs(np.diff(img.astype(float), axis=1)).mean())


def test_kept_box_is_untouched_and_the_rest_blurred(frame):
    original = frame.copy()
    out = blur_except(frame, [(40.0, 30.0, 79.0, 59.0)], margin_px=0)
    assert out is not frame and np.array_equal(frame, original)              # input unchanged
    assert out.shape == frame.shape and out.dtype == frame.dtype
    assert np.array_equal(out[30:60, 40:80], frame[30:60, 40:80])
    outside = np.ones(frame.shape[:2], bool)
    outside[30:60, 40:80] = False
    assert local_detail(frame) > 60.0
    assert np.mean(out[outside] == frame[outside]) < 0.05
    assert local_detail(out[:, :30]) < 5.0 and local_detail(out[70:]) < 5.0


def test_margin_widens_the_kept_box(frame):
    out = blur_except(frame, [(40.0, 30.0, 79.0, 59.0)], margin_px=5)
    assert np.array_equal(out[25:65, 35:85], frame[25:65, 35:85])
    assert not np.array_equal(out[20:25, 35:85], frame[20:25, 35:85])


def test_no_boxes_blurs_everything(frame):
    for boxes in ([], None, np.zeros((0, 4))):
        out = blur_except(frame, boxes)
        assert local_detail(out) < 5.0
        assert np.array_equal(out, obscure(frame))


def test_boxes_partly_or_wholly_outside_the_image(frame):
    out = blur_except(frame, [(-20.0, -10.0, 19.0, 9.0), (150.0, 100.0, 400.0, 300.0)], margin_px=0)
    assert np.array_equal(out[:10, :20], frame[:10, :20])
    assert np.array_equal(out[100:, 150:], frame[100:, 150:])
    out = blur_except(frame, [(500.0, 500.0, 600.0, 600.0), (-50.0, 10.0, -10.0, 20.0)])
    assert np.array_equal(out, obscure(frame))


def test_pixelation_makes_blocks(frame):
    config = PrivacyConfig(method="pixelate", block_px=16, margin_px=0)
    out = blur_except(frame, [(100.0, 60.0, 139.0, 99.0)], config=config)
    block = out[16:32, 16:32].reshape(-1, 3)
    assert np.all(block == block[0])
    assert np.array_equal(out[60:100, 100:140], frame[60:100, 100:140])


def test_grey_and_float_images(frame):
    grey = frame[..., 0].copy()
    out = blur_except(grey, [(10.0, 10.0, 29.0, 29.0)], margin_px=0)
    assert out.shape == grey.shape and np.array_equal(out[10:30, 10:30], grey[10:30, 10:30])
    as_float = frame.astype(np.float32) / 255.0
    out = blur_except(as_float, [(10.0, 10.0, 29.0, 29.0)], kernel_px=9, margin_px=0)
    assert out.dtype == np.float32 and np.array_equal(out[10:30, 10:30], as_float[10:30, 10:30])


def test_bad_input_is_refused_clearly(frame):
    with pytest.raises(ValueError, match="N x 4"):
        blur_except(frame, [(1.0, 2.0, 3.0)])
    with pytest.raises(ValueError, match="finite"):
        blur_except(frame, [(1.0, 2.0, np.nan, 4.0)])
    with pytest.raises(ValueError, match="u_max >= u_min"):
        blur_except(frame, [(10.0, 2.0, 3.0, 4.0)])
    with pytest.raises(ValueError, match="odd"):
        blur_except(frame, [], kernel_px=10)
    with pytest.raises(ValueError, match="margin_px"):
        blur_except(frame, [], margin_px=-1)
    with pytest.raises(ValueError, match="shape"):
        blur_except(np.zeros((4, 4, 2), np.uint8), [])
    with pytest.raises(ValueError, match="empty"):
        blur_except(np.zeros((0, 4, 3), np.uint8), [])
    with pytest.raises(ValueError, match="dtype"):
        blur_except(np.zeros((4, 4), bool), [])
    with pytest.raises(ValueError, match="numpy array"):
        blur_except([[0, 1], [2, 3]], [])
    with pytest.raises(ValueError, match="method"):
        PrivacyConfig(method="smudge")


@dataclass
class Track:
    track_id: str
    positions: list


def test_only_the_targets_track_is_kept():
    tracks = [Track("1", [(0, 0)]), Track("2", [(5, 5)]), Track("3", [(9, 9)])]
    assert redact_tracks(tracks, "2") == [tracks[1]]
    assert redact_tracks(tracks, 2) == [tracks[1]]                  # ids compare as strings
    assert redact_tracks(tracks, None) == []
    assert redact_tracks(tracks, "9") == []
    as_dicts = [{"track_id": 1, "xy": (0, 0)}, {"track_id": 2, "xy": (1, 1)}]
    assert redact_tracks(as_dicts, "1") == [as_dicts[0]]
    by_id = {"1": "a", "2": "b"}
    assert redact_tracks(by_id, "2") == {"2": "b"} and redact_tracks(by_id, None) == {}
    with pytest.raises(ValueError, match="track 1 has no 'track_id'"):
        redact_tracks([{"track_id": 1}, {"id": 2}], "1")
    with pytest.raises(ValueError, match="iterable"):
        redact_tracks(5, "1")
