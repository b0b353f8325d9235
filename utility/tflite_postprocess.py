"""numpy detection output for the TFLite export: box decoding and per-class NMS outside TFLite.

``export_ssd.py --tflite`` (net/export.py) writes, in ``<export_dir>/tflite/``:

  ssd.tflite: the network only.
    input  'images': float32 [1, image_size, image_size, 3], the image already resized to the
      model's square input and normalized in its backbone's convention (``normalize_image``);
    outputs 'box_offsets': float32 [1, num_anchors, 4], (t_cy, t_cx, t_h, t_w) per default box;
            'class_scores': float32 [1, num_anchors, num_classes], softmax, column 0 the
            background.
  anchors.npy: float32 [num_anchors, 4], the default boxes [ymin, xmin, ymax, xmax] normalized
    to [0, 1], in the order of the outputs.
  postprocess.json: ``Settings`` (input size and convention, class names, box-coder variances,
    detection-output settings of the export).

``postprocess`` turns the two outputs into the detections the SavedModel returns for the same
network input: decode against the anchors (utility/box_coder.py), clip to the image, drop boxes
clipped to nothing (net/model_fn.py ``build_detections``), then per-class greedy NMS and the
best detections per image (utility/nms.py, same ties and thresholds). Usage, with
``tf.lite.Interpreter`` or ``tflite_runtime.interpreter.Interpreter``:

  settings, anchors = tflite_postprocess.load_export(folder)
  interpreter = Interpreter(model_path=os.path.join(folder, tflite_postprocess.TFLITE_FILENAME))
  interpreter.allocate_tensors()
  # resized_rgb: float32 [image_size, image_size, 3], RGB 0-255, resized bilinearly.
  interpreter.set_tensor(interpreter.get_input_details()[0]['index'],
                         tflite_postprocess.normalize_image(resized_rgb, settings)[None])
  interpreter.invoke()
  outputs = {d['name']: interpreter.get_tensor(d['index'])
             for d in interpreter.get_output_details()}
  detections = tflite_postprocess.postprocess(outputs['box_offsets'], outputs['class_scores'],
                                              anchors, settings)

The SavedModel resizes bilinearly with half-pixel centres and no antialiasing (as cv2.resize
INTER_LINEAR); another resize gives other pixels and so slightly other detections.

Why numpy and not TF ops (the project's rule for NMS): the point of a .tflite is to run where
TensorFlow is not, and TFLite's own ``TFLite_Detection_PostProcess`` op computes a different
detection output (no clipping of the decoded boxes, no bound on the box scale, ties in no fixed
order, by default one NMS over each anchor's best class), so its detections would not be the
model's. This module imports numpy only.
"""

import dataclasses
import json
import math
import os
from typing import Tuple

import numpy as np

TFLITE_FILENAME = 'ssd.tflite'
ANCHORS_FILENAME = 'anchors.npy'
SETTINGS_FILENAME = 'postprocess.json'
INPUT_NAME = 'images'
OUTPUT_NAMES = ('box_offsets', 'class_scores')

# utility/box_coder.py's MAX_LOG_SCALE (that module imports TensorFlow): t_h * var_h and
# t_w * var_w are clipped to at most log(1000 / 16) before exp.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the numpy side needs besides the anchors; postprocess.json holds these fields."""
  image_size: int                      # square network input side, pixels
  mean_rgb: Tuple[float, float, float]  # the backbone's convention (utility/image_convention.py)
  std_rgb: Tuple[float, float, float]
  channel_order: str                   # 'rgb' or 'bgr'
  class_names: Tuple[str, ...]         # object classes: label i + 1 is class_names[i]
  prior_variances: Tuple[float, float, float, float]  # box coder (t_cy, t_cx, t_h, t_w)
  score_threshold: float               # the PostprocessConfig of the export
  pre_nms_top_k: int
  nms_iou_threshold: float
  max_detections_per_class: int
  max_detections_per_image: int

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + '\n'

  @classmethod
  def from_json(cls, text):
    values = json.loads(text)
    return cls(**{field.name: tuple(values[field.name]) if isinstance(values[field.name], list)
                  else values[field.name] for field in dataclasses.fields(cls)})


def load_export(folder):
  """(Settings, anchors float32 [num_anchors, 4]) of a TFLite export folder.

  Raises:
    FileNotFoundError: naming the missing file and how to write it.
  """
  paths = [os.path.join(folder, name) for name in (SETTINGS_FILENAME, ANCHORS_FILENAME)]
  for path in paths:
    if not os.path.exists(path):
      raise FileNotFoundError('%s does not exist: write the TFLite export with export_ssd.py '
                              '--model_dir=DIR --tflite.' % path)
  with open(paths[0], encoding='utf-8') as f:
    settings = Settings.from_json(f.read())
  return settings, np.load(paths[1]).astype(np.float32)


def normalize_image(image_rgb, settings):
  """float32 [..., image_size, image_size, 3] RGB in [0, 255] -> the network input convention."""
  image = (np.asarray(image_rgb, np.float32) - np.float32(settings.mean_rgb)) / np.float32(
      settings.std_rgb)
  return image[..., ::-1] if settings.channel_order == 'bgr' else image


def decode_boxes(box_offsets, anchors, variances):
  """utility/box_coder.decode in numpy float32.

  Args:
    box_offsets: float32 [..., num_anchors, 4] (t_cy, t_cx, t_h, t_w).
    anchors: float32 [num_anchors, 4] [ymin, xmin, ymax, xmax].
    variances: the 4 box-coder variances (Settings.prior_variances).

  Returns:
    float32 [..., num_anchors, 4] boxes [ymin, xmin, ymax, xmax], not clipped.
  """
  offsets = np.asarray(box_offsets, np.float32)
  anchors = np.asarray(anchors, np.float32)
  var_y, var_x, var_h, var_w = np.float32(variances)
  anchor_h, anchor_w = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
  two, max_log = np.float32(2.0), np.float32(MAX_LOG_SCALE)
  centre_y = offsets[..., 0] * var_y * anchor_h + (anchors[:, 0] + anchors[:, 2]) / two
  centre_x = offsets[..., 1] * var_x * anchor_w + (anchors[:, 1] + anchors[:, 3]) / two
  height = np.exp(np.minimum(offsets[..., 2] * var_h, max_log)) * anchor_h
  width = np.exp(np.minimum(offsets[..., 3] * var_w, max_log)) * anchor_w
  return np.stack([centre_y - height / two, centre_x - width / two,
                   centre_y + height / two, centre_x + width / two], axis=-1)


def _area(boxes):
  return (np.maximum(boxes[..., 2] - boxes[..., 0], 0.0) *
          np.maximum(boxes[..., 3] - boxes[..., 1], 0.0))


def _iou_with(box, boxes):
  """float32 [n]: IoU of box [4] with each of boxes [n, 4]; 0 when a box has no area (as TF's
  NonMaxSuppressionV4 kernel: then the intersection is 0, or the union too)."""
  height = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
  width = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
  intersection = np.maximum(height, 0.0) * np.maximum(width, 0.0)
  union = _area(box) + _area(boxes) - intersection
  return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _nms_one_class(boxes, scores, settings):
  """Anchor indices [n] a class keeps, best first: its pre_nms_top_k best (ties: lower anchor
  first), score > score_threshold, greedy NMS (IoU > nms_iou_threshold suppresses)."""
  order = np.argsort(-scores, kind='stable')[:settings.pre_nms_top_k]
  selected = []
  for index in order[scores[order] > settings.score_threshold]:
    if len(selected) == settings.max_detections_per_class:
      break
    if not selected or (_iou_with(boxes[index], boxes[selected]) <= settings.nms_iou_threshold
                        ).all():
      selected.append(index)
  return selected


def multiclass_nms(boxes, scores, settings):
  """Detections of one image (utility/nms.py's batch_multiclass_nms for one image).

  Args:
    boxes: float32 [num_anchors, 4] decoded, clipped boxes.
    scores: float32 [num_anchors, num_classes], column 0 the background (never output).
    settings: Settings (score_threshold, pre_nms_top_k, nms_iou_threshold, max_detections_*).

  Returns:
    dict of one image's 'boxes' float32 [max_per_image, 4], 'scores' float32 [max_per_image],
    'classes' int32 [max_per_image] (0 = padding), 'num_detections' int32 scalar: sorted by
    descending score, ties by (class, rank within the class), zero padded.
  """
  candidates = []  # (score, label, rank within the class, anchor)
  for label in range(1, scores.shape[1]):
    selected = _nms_one_class(boxes, scores[:, label], settings)
    candidates += [(scores[i, label], label, rank, i) for rank, i in enumerate(selected)]
  candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
  kept = candidates[:settings.max_detections_per_image]
  size = settings.max_detections_per_image
  result = {'boxes': np.zeros([size, 4], np.float32), 'scores': np.zeros([size], np.float32),
            'classes': np.zeros([size], np.int32), 'num_detections': np.int32(len(kept))}
  for row, (score, label, _, anchor) in enumerate(kept):
    result['boxes'][row], result['scores'][row], result['classes'][row] = (
        boxes[anchor], score, label)
  return result


def postprocess(box_offsets, class_scores, anchors, settings):
  """The SavedModel's detections from the .tflite outputs.

  Args:
    box_offsets: float32 [batch, num_anchors, 4], the 'box_offsets' output.
    class_scores: float32 [batch, num_anchors, num_classes], the 'class_scores' output.
    anchors: float32 [num_anchors, 4], anchors.npy.
    settings: Settings, postprocess.json.

  Returns:
    dict like the SavedModel's outputs: 'boxes' float32 [batch, max_per_image, 4] normalized
    [ymin, xmin, ymax, xmax], 'scores' float32 [batch, max_per_image], 'classes' int32
    [batch, max_per_image] (labels 1..num_classes - 1, 0 = padding), 'num_detections' int32
    [batch].
  """
  boxes = np.clip(decode_boxes(box_offsets, anchors, settings.prior_variances), 0.0, 1.0)
  # A box clipped to nothing covers no pixel: never a detection (net/model_fn.py).
  scores = np.asarray(class_scores, np.float32) * (_area(boxes) > 0)[..., None]
  images = [multiclass_nms(b, s, settings) for b, s in zip(boxes, scores)]
  return {key: np.stack([image[key] for image in images]) for key in images[0]}
