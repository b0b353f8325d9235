"""The demo's file side: list images, run a detector on each, draw, write, describe.

The detector is any callable ``detect_fn(list of encoded images) -> dict of numpy`` with the
outputs of the serving signature (net/export.py): net/detector.py's ``Detector.detect`` from a
model_dir or an exported SavedModel. One image per call, so an image TensorFlow cannot decode
fails alone. Drawings use utility/draw.py on the image as decoded by OpenCV (EXIF orientation
ignored, as TensorFlow's decoder does, so the boxes land where the model saw the objects).
"""

import collections
import os

import cv2
import numpy as np
from absl import logging

from utility import draw
from utility import file_io

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')

# One image's detections above the threshold, in descending score order:
#   boxes float [n, 4] normalized [ymin, xmin, ymax, xmax]; boxes_pixels float [n, 4] 1-based
#   VOC [xmin, ymin, xmax, ymax] of the original image; classes int [n]; names tuple of n str;
#   scores float [n].
Detections = collections.namedtuple('Detections', 'boxes boxes_pixels classes names scores')


def list_images(input_path):
  """The image files to process: input_path itself, or the images in that folder (sorted).

  Raises:
    FileNotFoundError: input_path does not exist.
    ValueError: a file with another extension, or a folder without images.
  """
  if os.path.isfile(input_path):
    if not input_path.lower().endswith(IMAGE_EXTENSIONS):
      raise ValueError('--input=%s is not a %s image.' % (input_path, '/'.join(IMAGE_EXTENSIONS)))
    return [input_path]
  if not os.path.isdir(input_path):
    raise FileNotFoundError('--input=%s does not exist: give an image or a folder of images.'
                            % input_path)
  paths = sorted(os.path.join(input_path, name) for name in os.listdir(input_path)
                 if name.lower().endswith(IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(input_path, name)))
  if not paths:
    raise ValueError('--input=%s holds no %s images.' % (input_path, '/'.join(IMAGE_EXTENSIONS)))
  return paths


def read_image(path):
  """(encoded bytes, uint8 [height, width, 3] BGR image) of an image file.

  Raises:
    ValueError: naming the file when it is empty or OpenCV cannot decode it.
  """
  with open(path, 'rb') as f:
    encoded = f.read()
  image = None
  if encoded:
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8),
                         cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
  if image is None:
    raise ValueError('%s is not a readable image (%d bytes).' % (path, len(encoded)))
  return encoded, image


def select_detections(outputs, index, score_threshold):
  """Detections of image `index` of a detect_fn batch with score > score_threshold.

  Strictly greater, like the NMS score threshold, so a threshold means the same in both.
  """
  count = int(outputs['num_detections'][index])
  scores = outputs['detection_scores'][index, :count]
  keep = scores > score_threshold
  names = tuple(name.decode('utf-8') if isinstance(name, bytes) else str(name)
                for name in outputs['detection_class_names'][index, :count][keep])
  return Detections(outputs['detection_boxes'][index, :count][keep],
                    outputs['detection_boxes_pixels'][index, :count][keep],
                    outputs['detection_classes'][index, :count][keep], names, scores[keep])


def annotate(image, detections):
  """uint8 [height, width, 3] BGR image with every detection drawn (a new array)."""
  # draw.py names label l with class_names[l - 1]; rebuild that tuple from the names the
  # detector returned, so an exported model needs no class list on the side.
  by_label = dict(zip((int(c) for c in detections.classes), detections.names))
  class_names = tuple(by_label.get(label, str(label))
                      for label in range(1, max(by_label, default=0) + 1))
  return draw.draw_detections(image, detections.boxes, detections.classes, detections.scores,
                              class_names=class_names, box_format='normalized',
                              channel_order='bgr')


def write_image(path, image):
  """Encodes by the file's extension and writes atomically."""
  ok, encoded = cv2.imencode(os.path.splitext(path)[1], image)
  if not ok:
    raise ValueError('OpenCV could not encode %s.' % path)
  file_io.atomic_write(path, encoded.tobytes())


def format_detections(path, detections):
  """Lines 'image class score xmin ymin xmax ymax' (1-based pixels), or one 'none' line."""
  name = os.path.basename(path)
  if not len(detections.scores):
    return ['%s: no detections' % name]
  return ['%s %s %.3f %.1f %.1f %.1f %.1f' % ((name, class_name, score) + tuple(box))
          for class_name, score, box in zip(detections.names, detections.scores,
                                            detections.boxes_pixels)]


def run(detect_fn, image_paths, output_dir, score_threshold):
  """Detects, draws and writes every image; unreadable ones are skipped with a warning.

  Args:
    detect_fn: list of encoded images -> dict of numpy serving outputs.
    image_paths: image files; each drawing goes to output_dir under the same file name.
    output_dir: created if needed; must not be the folder of an input (it would overwrite it).
    score_threshold: detections need a score above this to be drawn and returned.

  Returns:
    (list of (path, Detections) for the images processed, list of skipped paths).

  Raises:
    ValueError: output_dir is the folder of an input image.
  """
  os.makedirs(output_dir, exist_ok=True)
  for folder in {os.path.dirname(os.path.abspath(path)) for path in image_paths}:
    if os.path.samefile(folder, output_dir):
      raise ValueError('--output=%s holds the input images: choose another folder.' % output_dir)
  results, skipped = [], []
  for path in image_paths:
    try:
      encoded, image = read_image(path)
      detections = select_detections(detect_fn([encoded]), 0, score_threshold)
    except ValueError as error:
      logging.warning('Skipping %s: %s', path, error)
      skipped.append(path)
      continue
    write_image(os.path.join(output_dir, os.path.basename(path)), annotate(image, detections))
    results.append((path, detections))
  return results, skipped
