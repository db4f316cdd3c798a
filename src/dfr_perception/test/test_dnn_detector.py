"""The DNN detector: YOLOv5 and YOLOv8 outputs decode to the right boxes through the
letterbox, overlapping boxes are suppressed per class, a missing or unreadable model raises
ModelUnavailable saying what to configure, the factory falls back to the motion detector
with a warning, and a real (tiny, hand-built) ONNX model runs end to end through OpenCV."""
import numpy as np
import pytest

from dfr_perception.detection import iou_matrix
from dfr_perception.dnn_detector import (
    COCO_CLASSES,
    DnnDetector,
    DnnDetectorConfig,
    Letterbox,
    ModelUnavailable,
    decode_yolo_output,
    letterbox,
    make_detector,
)
from dfr_perception.motion_detector import MotionDetector, MotionDetectorConfig

CLASSES = ("person", "bicycle", "car")
N_CLASSES = len(CLASSES)


def v8_output(rows, classes=N_CLASSES, anchors=20):
    """(1, 4 + classes, anchors) with the given (cx, cy, w, h, class, score) rows and empty others."""
    out = np.zeros((1, 4 + classes, anchors), np.float32)
    for k, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, k] = (cx, cy, w, h)
        out[0, 4 + cls, k] = score
    return out


def v5_output(rows, classes=N_CLASSES, anchors=20):
    """(1, anchors, 5 + classes) with (cx, cy, w, h, objectness, class, class_prob) rows."""
    out = np.zeros((1, anchors, 5 + classes), np.float32)
    for k, (cx, cy, w, h, obj, cls, prob) in enumerate(rows):
        out[0, k, :5] = (cx, cy, w, h, obj)
        out[0, k, 5 + cls] = prob
    return out


# --------------------------------------------------------------------------- letterbox and decoding
def test_letterbox_scales_and_centres_the_image():
    image = np.full((480, 640, 3), 200, np.uint8)
    fitted, box = letterbox(image, 320, 320)
    assert fitted.shape == (320, 320, 3)
    assert box == Letterbox(0.5, 0.5, 0.0, 40.0, 640, 480)
    assert (fitted[:40] == 114).all() and (fitted[280:] == 114).all() and (fitted[40:280] == 200).all()


def test_yolov8_output_decodes_through_the_letterbox():
    box = Letterbox(0.5, 0.5, 0.0, 40.0, 640, 480)               # a 640 x 480 image in a 320 x 320 input
    # A car whose box is (100, 50)-(300, 150) in image pixel edges: in the input (50, 65)-(150, 115).
    out = v8_output([(100.0, 90.0, 100.0, 50.0, 2, 0.9)])
    (det,) = decode_yolo_output(out, box, CLASSES)
    assert det.label == "car" and det.score == pytest.approx(0.9)
    assert det.box == pytest.approx((99.5, 49.5, 299.5, 149.5))


def test_yolov8_output_transposed_decodes_the_same():
    box = Letterbox(0.5, 0.5, 0.0, 40.0, 640, 480)
    out = v8_output([(100.0, 90.0, 100.0, 50.0, 2, 0.9), (200.0, 200.0, 20.0, 40.0, 0, 0.7)])
    a = decode_yolo_output(out, box, CLASSES)
    b = decode_yolo_output(out.transpose(0, 2, 1), box, CLASSES)
    assert a == b and [d.label for d in a] == ["car", "person"]


def test_yolov5_output_multiplies_objectness_and_class_probability():
    box = Letterbox(1.0, 1.0, 0.0, 0.0, 640, 640)
    out = v5_output([(320.0, 320.0, 64.0, 32.0, 0.8, 1, 0.9),      # 0.72: a bicycle
                     (100.0, 100.0, 30.0, 30.0, 0.3, 0, 0.9)])     # 0.27: below the threshold
    (det,) = decode_yolo_output(out, box, CLASSES, score_threshold=0.35)
    assert det.label == "bicycle" and det.score == pytest.approx(0.72)
    assert det.box == pytest.approx((287.5, 303.5, 351.5, 335.5))
    (channels_first,) = decode_yolo_output(out.transpose(0, 2, 1), box, CLASSES, score_threshold=0.35)
    assert channels_first == det


def test_full_coco_shapes_are_recognised():
    box = Letterbox(1.0, 1.0, 0.0, 0.0, 640, 640)
    v8 = np.zeros((1, 84, 8400), np.float32)
    v8[0, :4, 7] = (320, 320, 50, 50)
    v8[0, 4 + 2, 7] = 0.8
    v5 = np.zeros((1, 25200, 85), np.float32)
    v5[0, 9, :5] = (320, 320, 50, 50, 0.9)
    v5[0, 9, 5 + 2] = 0.9
    for out in (v8, v5):
        (det,) = decode_yolo_output(out, box, COCO_CLASSES)
        assert det.label == "car" and det.box == pytest.approx((294.5, 294.5, 344.5, 344.5))


def test_overlapping_boxes_of_a_class_are_suppressed_but_not_across_classes():
    box = Letterbox(1.0, 1.0, 0.0, 0.0, 640, 640)
    out = v8_output([(100, 100, 40, 40, 2, 0.9), (103, 101, 40, 40, 2, 0.8),     # same car twice
                     (101, 100, 40, 40, 0, 0.6),                                 # a person in the same place
                     (400, 400, 40, 40, 2, 0.7)])                                # another car
    dets = decode_yolo_output(out, box, CLASSES)
    assert [(d.label, round(d.score, 2)) for d in dets] == [("car", 0.9), ("car", 0.7), ("person", 0.6)]
    agnostic = decode_yolo_output(out, box, CLASSES, class_agnostic_nms=True)
    assert [d.label for d in agnostic] == ["car", "car"]


def test_kept_classes_threshold_limit_and_bad_rows():
    box = Letterbox(1.0, 1.0, 0.0, 0.0, 640, 640)
    out = v8_output([(100, 100, 40, 40, 0, 0.9), (300, 300, 40, 40, 1, 0.8), (500, 500, 40, 40, 2, 0.3),
                     (200, 500, 40, 40, 2, 0.95), (np.nan, 100, 10, 10, 2, 0.99), (50, 50, 0, 10, 2, 0.99)])
    assert [d.label for d in decode_yolo_output(out, box, CLASSES, keep_classes=("bicycle", "car"))] == \
        ["car", "bicycle"]
    assert len(decode_yolo_output(out, box, CLASSES, max_detections=2)) == 2
    assert len(decode_yolo_output(out, box, CLASSES, score_threshold=0.2)) == 4
    assert decode_yolo_output(np.zeros((1, 7, 0), np.float32), box, CLASSES) == []


def test_boxes_are_cut_to_the_image():
    box = Letterbox(0.5, 0.5, 0.0, 40.0, 640, 480)
    (det,) = decode_yolo_output(v8_output([(10.0, 50.0, 40.0, 40.0, 2, 0.9)]), box, CLASSES)
    assert det.x_min == -0.5 and det.y_min == -0.5


@pytest.mark.parametrize("shape, layout, message", [
    ((1, 90, 100), "auto", "does not fit 3 classes"),
    ((1, 8, 100), "yolov8", "7 \\(yolov8\\)"),
    ((2, 7, 100), "auto", "must be"),
])
def test_unexpected_output_shapes_are_refused(shape, layout, message):
    with pytest.raises(ValueError, match=message):
        decode_yolo_output(np.zeros(shape, np.float32), Letterbox(1, 1, 0, 0, 64, 64), CLASSES, layout=layout)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="does not have"):
        DnnDetectorConfig(keep_classes=("tank",))
    with pytest.raises(ValueError, match="layout"):
        DnnDetectorConfig(layout="yolov3")


# --------------------------------------------------------------------------- a model that is not there
def test_empty_model_path_says_what_to_configure():
    with pytest.raises(ModelUnavailable, match="model_path"):
        DnnDetector(DnnDetectorConfig())


def test_missing_and_unreadable_model_files(tmp_path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        DnnDetector(DnnDetectorConfig(model_path=str(tmp_path / "yolov8n.onnx")))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelUnavailable, match="could not load"):
        DnnDetector(DnnDetectorConfig(model_path=str(junk)))


def test_factory_falls_back_to_motion_with_a_warning(tmp_path):
    motion_cfg = MotionDetectorConfig(processing_width=160)
    detector, warning = make_detector("dnn", motion_cfg, DnnDetectorConfig(model_path=str(tmp_path / "none.onnx")))
    assert isinstance(detector, MotionDetector) and detector.config is motion_cfg
    assert "motion detector" in warning and "does not exist" in warning
    detector, warning = make_detector("motion")
    assert isinstance(detector, MotionDetector) and warning is None
    with pytest.raises(ValueError, match="expected 'motion' or 'dnn'"):
        make_detector("radar")


# --------------------------------------------------------------------------- end to end through OpenCV
class FakeNet:
    """Stands in for a cv2.dnn.Net: records the input, returns a fixed output."""

    def __init__(self, output):
        self.output, self.blob = output, None

    def setInput(self, blob):          # noqa: N802 (OpenCV's name)
        self.blob = blob

    def forward(self):
        return self.output


def test_detect_letterboxes_the_image_and_maps_boxes_back():
    cfg = DnnDetectorConfig(input_width=320, input_height=320, class_names=CLASSES, keep_classes=())
    net = FakeNet(v8_output([(100.0, 90.0, 100.0, 50.0, 2, 0.9)]))
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :, 0] = 255
    (det,) = DnnDetector(cfg, net=net).detect(image)
    assert net.blob.shape == (1, 3, 320, 320)
    assert net.blob[0, 0, 160, 160] == pytest.approx(1.0) and net.blob[0, 2, 160, 160] == 0.0   # RGB kept
    assert net.blob[0, 0, 10, 160] == pytest.approx(114 / 255)                                   # padding
    assert det.box == pytest.approx((99.5, 49.5, 299.5, 149.5))
    with pytest.raises(ValueError, match="uint8"):
        DnnDetector(cfg, net=net).detect(image.astype(np.float32))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload) -> bytes:
    """One protobuf field: an int as a varint, bytes/str/bytes-of-a-message length-delimited."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, values: np.ndarray) -> bytes:
    dims = b"".join(_field(1, int(d)) for d in values.shape)
    kind = 7 if values.dtype == np.int64 else 1
    return dims + _field(2, kind) + _field(8, name) + _field(9, values.tobytes())


def _value_info(name: str, shape) -> bytes:
    dims = b"".join(_field(1, _field(1, int(d))) for d in shape)
    return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, dims)))


def _node(op: str, inputs, outputs) -> bytes:
    return b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs) + _field(4, op)


def tiny_yolo_onnx(path, output: np.ndarray, size: int = 64) -> None:
    """An ONNX model whose output is `output` (1, C, N) whatever the image: pool the input to three numbers,
    multiply by zeros and add the output as a bias. Written by hand: onnx is not a dependency."""
    _, c, n = output.shape
    nodes = (_node("GlobalAveragePool", ["images"], ["pooled"]), _node("Flatten", ["pooled"], ["flat"]),
             _node("Gemm", ["flat", "w", "b"], ["raw"]), _node("Reshape", ["raw", "shape"], ["output0"]))
    graph = (b"".join(_field(1, node) for node in nodes)
        + _field(2, "tiny")
        + _field(5, _tensor("w", np.zeros((3, c * n), np.float32)))
        + _field(5, _tensor("b", output.reshape(-1).astype(np.float32)))
        + _field(5, _tensor("shape", np.array([1, c, n], np.int64)))
        + _field(11, _value_info("images", (1, 3, size, size)))
        + _field(12, _value_info("output0", (1, c, n))))
    model = _field(1, 7) + _field(2, "dfr-test") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))
    path.write_bytes(model)


def test_a_real_onnx_model_runs_through_opencv(tmp_path):
    model = tmp_path / "tiny.onnx"
    # In a 64 x 64 input: a car at (16, 24)-(48, 40), i.e. (32, 48)-(96, 80) in a 128 x 128 image.
    tiny_yolo_onnx(model, v8_output([(32.0, 32.0, 32.0, 16.0, 2, 0.8), (10, 10, 4, 4, 0, 0.1)]))
    cfg = DnnDetectorConfig(model_path=str(model), input_width=64, input_height=64, class_names=CLASSES,
                            keep_classes=())
    detector, warning = make_detector("dnn", dnn_config=cfg)
    assert warning is None and isinstance(detector, DnnDetector)
    (det,) = detector.detect(np.zeros((128, 128, 3), np.uint8))
    assert det.label == "car" and det.score == pytest.approx(0.8, abs=1e-4)
    assert iou_matrix(np.array([det.box]), np.array([[31.5, 47.5, 95.5, 79.5]]))[0, 0] > 0.99
