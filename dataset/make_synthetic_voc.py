r"""Generates a synthetic dataset in the exact Pascal VOC layout (or in COCO's).

    python dataset/make_synthetic_voc.py --output_dir=DIR --num_trainval=400 --num_test=100 \
        --seed=0 [--classes=aeroplane,bicycle] [--with_voc2012 --num_trainval_2012=200 \
        --num_test_2012=50]

writes DIR/VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets/Main/{trainval,test}.txt} (and
VOC2012/ with a trainval split on request) with true VOC XML: 1-based inclusive integer pixel
boxes, <difficult>, <truncated>, <pose>, <size>. --num_test_2012 adds a VOC2012 test split laid
out as the real one, whose annotations are not public: its images and ImageSets/Main/test.txt,
no XML (convert it with --unannotated_splits=VOC2012:test).

Every class is a unique (shape, colour, texture) triple with moderate jitter in colour, aspect
ratio and rotation, drawn on a cluttered, low-saturation background (noise, faint lines, blurred
blobs), so a small detector can learn it from scratch in minutes yet it is not trivial. Objects
cover ~5% to ~80% of the shorter image side and overlap little (IoU < 0.3), larger ones drawn
first; each box is the tight extent of the object's visible pixels. Small, faded or heavily
occluded objects are marked difficult; objects placed across the border are truncated and their
box is clipped to the image.

Each image has its own seed derived from (--seed, year, image number), so the output is
byte-identical for a given seed whatever the number of worker processes.

    python dataset/make_synthetic_voc.py --format=coco --output_dir=DIR --num_trainval=400 \
        --num_test=100 --seed=0 [--classes=aeroplane,bicycle]

writes the same VOC2007 images (identical JPEG bytes, same names such as 000005.jpg) in the COCO
layout instead: DIR/coco/images/{train,val}/ (trainval -> train, test -> val) and the official
COCO instances files DIR/coco/annotations/instances_{train,val}.json. Image ids are the VOC image
numbers (5 for 000005); annotation ids run from 1 across both files; the class at position i of
--classes gets category id 2*i + 1 (not contiguous, to exercise label mapping). Each bbox is the
VOC box in COCO's 0-based continuous terms [xmin - 1, ymin - 1, xmax - xmin + 1,
ymax - ymin + 1], its area the object's visible pixel count, iscrowd the VOC difficult flag, and
its segmentation the box as one polygon. The JSON has sorted keys, so it is byte-identical for a
given seed too.
"""

import collections
import json
import multiprocessing
import os
import sys
import time

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2
import numpy as np
from absl import app
from absl import flags

from dataset import voc
from utility import file_io
from utility import labels as label_utils

JPEG_QUALITY = 90
MIN_SCALE, MAX_SCALE = 0.05, 0.8      # object size / shorter image side
MAX_IOU = 0.3                         # between any two objects' boxes
TRUNCATED_PROBABILITY = 0.12
FADED_PROBABILITY = 0.03              # low-contrast objects, marked difficult
SMALL_SCALE = 0.09                    # below this, an object may be marked difficult...
SMALL_DIFFICULT_PROBABILITY = 0.25    # ...with this probability (VOC marks many tiny ones)
MAX_ROTATION_DEGREES = 20.0
PLACEMENT_TRIES = 25

# COCO output: the VOC2007 images under COCO names (trainval -> train, test -> val).
COCO_SOURCE_YEAR_FOLDER = 'VOC2007'   # seeds the COCO images exactly like VOC2007's
COCO_SPLITS = (('trainval', 'train'), ('test', 'val'))
COCO_SUPERCATEGORY = 'synthetic'

COLOURS = {  # RGB
    'red': (215, 40, 40), 'green': (40, 170, 60), 'blue': (40, 80, 215),
    'yellow': (235, 205, 35), 'magenta': (205, 45, 195), 'cyan': (35, 195, 205),
    'orange': (245, 135, 25), 'white': (245, 245, 245), 'purple': (115, 45, 165),
}

ClassStyle = collections.namedtuple('ClassStyle', ['shape', 'colour', 'texture'])

# One unique (shape, colour) pair per VOC class; the texture separates them further.
CLASS_STYLES = {
    'aeroplane': ClassStyle('triangle', 'red', 'solid'),
    'bicycle': ClassStyle('ring', 'blue', 'solid'),
    'bird': ClassStyle('star', 'yellow', 'solid'),
    'boat': ClassStyle('semicircle', 'cyan', 'solid'),
    'bottle': ClassStyle('square', 'green', 'stripes'),
    'bus': ClassStyle('square', 'orange', 'checker'),
    'car': ClassStyle('circle', 'red', 'dots'),
    'cat': ClassStyle('diamond', 'magenta', 'solid'),
    'chair': ClassStyle('cross', 'blue', 'stripes'),
    'cow': ClassStyle('hexagon', 'white', 'dots'),
    'diningtable': ClassStyle('hexagon', 'orange', 'stripes'),
    'dog': ClassStyle('circle', 'purple', 'stripes'),
    'horse': ClassStyle('triangle', 'green', 'checker'),
    'motorbike': ClassStyle('ring', 'yellow', 'dots'),
    'person': ClassStyle('cross', 'red', 'solid'),
    'pottedplant': ClassStyle('star', 'green', 'dots'),
    'sheep': ClassStyle('circle', 'white', 'solid'),
    'sofa': ClassStyle('semicircle', 'magenta', 'checker'),
    'train': ClassStyle('diamond', 'cyan', 'checker'),
    'tvmonitor': ClassStyle('square', 'blue', 'solid'),
}

Placement = collections.namedtuple(
    'Placement', ['name', 'outer', 'inner', 'scale', 'angle', 'faded', 'truncated'])


# ----------------------------------------------------------------------------------------------
# Shapes: polygons in units of the half size, centred on (0, 0), before rotation.

def _regular(count, start_degrees, radii=(1.0,)):
  angles = np.deg2rad(start_degrees + np.arange(count * len(radii)) * 360.0 / (count * len(radii)))
  r = np.tile(radii, count)
  return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


def _unit_shape(shape):
  """(outer polygon [k, 2], inner hole polygon [m, 2] or None) for a shape name."""
  circle = _regular(48, 0.0)
  if shape == 'circle':
    return circle, None
  if shape == 'ring':
    return circle, 0.55 * circle
  if shape == 'semicircle':
    t = np.deg2rad(np.linspace(180.0, 360.0, 25))
    return np.stack([np.cos(t), np.sin(t) + 0.5], axis=1), None
  if shape == 'square':
    return np.array([[-1., -1.], [1., -1.], [1., 1.], [-1., 1.]]), None
  if shape == 'triangle':
    return np.array([[0., -1.], [1., 0.9], [-1., 0.9]]), None
  if shape == 'diamond':
    return np.array([[0., -1.], [1., 0.], [0., 1.], [-1., 0.]]), None
  if shape == 'hexagon':
    return _regular(6, 0.0), None
  if shape == 'star':
    return _regular(5, -90.0, radii=(1.0, 0.45)), None
  if shape == 'cross':
    a = 0.33
    return np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                     [-a, a], [-1, a], [-1, -a], [-a, -a]], dtype=np.float64), None
  raise ValueError('Unknown shape %r.' % shape)


def _transform(points, half_w, half_h, angle, cx, cy):
  """Scales unit points by the half size, rotates by angle (radians), moves to (cx, cy)."""
  if points is None:
    return None
  x, y = points[:, 0] * half_w, points[:, 1] * half_h
  c, s = np.cos(angle), np.sin(angle)
  return np.stack([c * x - s * y + cx, s * x + c * y + cy], axis=1)


def _box_of(points):
  return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(),
                   points[:, 1].max()])


def _iou(a, b):
  """IoU of two [x0, y0, x1, y1] boxes (continuous coordinates)."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = iw * ih
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# Placement.

def _centre(rng, extent, size, truncate):
  """Centre coordinate so [centre + extent[0], centre + extent[1]] lies in [0, size - 1]; or,
  when truncating, so 40-75% of it crosses the far or near border."""
  lo, hi = extent
  if truncate:
    visible = rng.uniform(0.4, 0.75) * (hi - lo)
    if rng.random() < 0.5:
      return visible - hi          # sticks out at 0
    return size - visible - lo     # sticks out at size
  low, high = -lo, size - 1.0 - hi
  return rng.uniform(low, high) if high > low else (size - 1.0) / 2.0


def _propose(rng, class_names, width, height):
  """One random object placement (polygons in image coordinates)."""
  name = class_names[rng.integers(len(class_names))]
  style = CLASS_STYLES[name]
  side = min(width, height)
  scale = float(np.exp(rng.uniform(np.log(MIN_SCALE), np.log(MAX_SCALE))))
  aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
  half_w, half_h = scale * side / 2.0 * np.sqrt(aspect), scale * side / 2.0 / np.sqrt(aspect)
  angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
  outer, inner = _unit_shape(style.shape)
  rel = _box_of(_transform(outer, half_w, half_h, angle, 0.0, 0.0))
  truncate = rng.random() < TRUNCATED_PROBABILITY
  truncate_x = rng.random() < width / float(width + height)
  cx = _centre(rng, (rel[0], rel[2]), width, truncate and truncate_x)
  cy = _centre(rng, (rel[1], rel[3]), height, truncate and not truncate_x)
  faded = rng.random() < FADED_PROBABILITY
  return Placement(name, _transform(outer, half_w, half_h, angle, cx, cy),
                   _transform(inner, half_w, half_h, angle, cx, cy), scale, angle, faded,
                   truncate)


def place_objects(rng, class_names, width, height, num_objects):
  """Chooses up to num_objects non-overlapping placements (IoU < MAX_IOU), largest first."""
  placements, boxes = [], []
  for _ in range(num_objects):
    for _ in range(PLACEMENT_TRIES):
      candidate = _propose(rng, class_names, width, height)
      box = _box_of(candidate.outer)
      box = np.clip(box, 0.0, [width, height, width, height])
      if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        continue
      if all(_iou(box, other) < MAX_IOU for other in boxes):
        placements.append(candidate)
        boxes.append(box)
        break
  areas = [(p.scale, i) for i, p in enumerate(placements)]
  return [placements[i] for _, i in sorted(areas, key=lambda a: (-a[0], a[1]))]


# ----------------------------------------------------------------------------------------------
# Drawing.

def make_background(rng, width, height):
  """Cluttered low-saturation background: smooth noise, faint lines and blurred blobs."""
  grey = rng.uniform(70, 190)
  base = grey + rng.uniform(-25, 25, size=3)
  # Mostly luminance noise with a little chroma: clutter without class-like colour.
  grid = (height // 24 + 2, width // 24 + 2)
  coarse = (rng.standard_normal(grid + (1,), dtype=np.float32) * 22.0
            + rng.standard_normal(grid + (3,), dtype=np.float32) * 6.0)
  image = base.astype(np.float32) + cv2.resize(coarse, (width, height),
                                               interpolation=cv2.INTER_CUBIC)
  # Faint blobs (alpha 0.3, colour premultiplied so blurring leaves no dark halo), drawn and
  # blurred at quarter resolution: soft edges at a fraction of the cost.
  small_w, small_h = max(1, width // 4), max(1, height // 4)
  blobs = np.zeros((small_h, small_w, 3), np.float32)
  blob_alpha = np.zeros((small_h, small_w), np.float32)
  for _ in range(rng.integers(2, 9)):
    centre = (int(rng.integers(small_w)), int(rng.integers(small_h)))
    axes = (int(rng.integers(2, max(3, small_w // 3))), int(rng.integers(2, max(3, small_h // 3))))
    colour = 0.3 * (grey + rng.uniform(-45, 45) + rng.uniform(-12, 12, size=3))
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(blobs, centre, axes, angle, 0, 360, colour.tolist(), -1)
    cv2.ellipse(blob_alpha, centre, axes, angle, 0, 360, 0.3, -1)
  blobs = cv2.resize(cv2.GaussianBlur(blobs, (0, 0), 1.5), (width, height))
  blob_alpha = cv2.resize(cv2.GaussianBlur(blob_alpha, (0, 0), 1.5), (width, height))
  image = image * (1.0 - blob_alpha[..., None]) + blobs
  for _ in range(rng.integers(3, 13)):
    p0 = (int(rng.integers(width)), int(rng.integers(height)))
    p1 = (int(rng.integers(width)), int(rng.integers(height)))
    colour = (grey + rng.uniform(-40, 40) + rng.uniform(-8, 8, size=3)).tolist()
    cv2.line(image, p0, p1, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
  return image


def _texture(rng, style, placement, region_shape, origin):
  """Float RGB texture [h, w, 3] of one object over its bounding region."""
  colour = np.asarray(COLOURS[style.colour], np.float32)
  colour = np.clip(colour * rng.uniform(0.85, 1.1) + rng.normal(0, 12, size=3), 0, 255)
  dark = colour * 0.35 if style.colour != 'white' else np.array([85., 85., 85.], np.float32)
  h, w = region_shape
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  centre = placement.outer.mean(axis=0)
  dx, dy = xs + origin[0] - centre[0], ys + origin[1] - centre[1]
  c, s = np.cos(placement.angle), np.sin(placement.angle)
  u, v = c * dx + s * dy, -s * dx + c * dy
  size = _box_of(placement.outer)
  period = max(4.0, min(size[2] - size[0], size[3] - size[1]) / 5.0)
  if style.texture == 'stripes':
    pattern = np.floor(u / period) % 2 == 0
  elif style.texture == 'checker':
    pattern = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
  elif style.texture == 'dots':
    du, dv = u / period - np.round(u / period), v / period - np.round(v / period)
    pattern = du * du + dv * dv < 0.32 ** 2
  else:
    pattern = np.zeros((h, w), bool)
  shade = (0.88 + 0.12 * np.clip(v / (size[3] - size[1] + 1.0), -1, 1))[..., None]
  return np.where(pattern[..., None], dark, colour) * shade


def _fill(mask, polygon, value):
  # Fixed-point vertices (shift 4 = 1/16 px) keep small shapes' geometry.
  points = np.round(polygon * 16.0).astype(np.int32).reshape(-1, 1, 2)
  cv2.fillPoly(mask, [points], value, cv2.LINE_8, 4)


def draw_objects(rng, image, placements):
  """Draws placements onto image (float RGB, in place).

  Returns:
    (owner map int32 [h, w]: index of the placement that shows at each pixel, -1 for background;
     list of each placement's drawn pixel count inside the image before occlusion).
  """
  height, width = image.shape[:2]
  owner = np.full((height, width), -1, np.int32)
  drawn = [0] * len(placements)
  for index, placement in enumerate(placements):
    mask = np.zeros((height, width), np.uint8)
    _fill(mask, placement.outer, 255)
    if placement.inner is not None:
      _fill(mask, placement.inner, 0)
    ys, xs = np.nonzero(mask)
    drawn[index] = len(xs)
    if not len(xs):
      continue
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    region = _texture(rng, CLASS_STYLES[placement.name], placement, (y1 - y0, x1 - x0), (x0, y0))
    alpha = (mask[y0:y1, x0:x1] > 0)[..., None].astype(np.float32)
    alpha *= 0.45 if placement.faded else 1.0
    patch = image[y0:y1, x0:x1]
    image[y0:y1, x0:x1] = patch * (1.0 - alpha) + region * alpha
    owner[y0:y1, x0:x1][mask[y0:y1, x0:x1] > 0] = index
  return owner, drawn


def _annotate(rng, placements, owner, drawn, width, height):
  """VocObjects from the visible pixels of each placement."""
  objects = []
  for index, placement in enumerate(placements):
    ys, xs = np.nonzero(owner == index)
    if not len(xs):
      continue  # entirely hidden: nothing to annotate
    visible = len(xs) / float(drawn[index])
    extent = _box_of(placement.outer)
    truncated = int(extent[0] < 0 or extent[1] < 0 or extent[2] > width - 1
                    or extent[3] > height - 1)
    small = placement.scale < SMALL_SCALE and rng.random() < SMALL_DIFFICULT_PROBABILITY
    occluded = visible < 0.5
    tiny = xs.max() - xs.min() < 3 or ys.max() - ys.min() < 3
    difficult = int(placement.faded or small or occluded or tiny)
    objects.append(voc.VocObject(placement.name, float(xs.min() + 1), float(ys.min() + 1),
                                 float(xs.max() + 1), float(ys.max() + 1), difficult, truncated))
  return objects


def generate_image(rng, class_names, min_size=200, max_size=400, max_objects=6):
  """Draws one synthetic image.

  Args:
    rng: numpy Generator (the only source of randomness).
    class_names: names to draw from (each must be a VOC class name).
    min_size, max_size: range of each image side in pixels (sampled independently).
    max_objects: up to this many objects (at least one).

  Returns:
    (image uint8 [height, width, 3] RGB, list of VocObject with 1-based inclusive pixel boxes).
  """
  image, objects, _ = render_image(rng, class_names, min_size, max_size, max_objects)
  return image, objects


def visible_pixel_counts(owner, num_placements):
  """Visible pixel count of each placement that shows at all, in placement order.

  This is the order and the selection of _annotate (which skips entirely hidden placements), so
  the i-th count belongs to the i-th annotated object.
  """
  counts = np.bincount(owner.ravel() + 1, minlength=num_placements + 1)[1:]
  return [int(count) for count in counts if count > 0]


def render_image(rng, class_names, min_size=200, max_size=400, max_objects=6):
  """generate_image plus the visible pixel count (segmentation area) of each object.

  Returns:
    (image uint8 [height, width, 3] RGB, list of VocObject, list of int pixel counts, one per
     object: the pixels the object owns in the owner map of draw_objects).
  """
  width, height = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
  image = make_background(rng, width, height)
  placements = place_objects(rng, class_names, width, height, int(rng.integers(1, max_objects + 1)))
  owner, drawn = draw_objects(rng, image, placements)
  objects = _annotate(rng, placements, owner, drawn, width, height)
  areas = visible_pixel_counts(owner, len(placements))
  if len(areas) != len(objects):
    raise AssertionError('%d visible pixel counts for %d objects.' % (len(areas), len(objects)))
  image += rng.standard_normal(image.shape, dtype=np.float32) * 5.0
  image = cv2.GaussianBlur(image, (3, 3), 0.6)
  return np.clip(np.round(image), 0, 255).astype(np.uint8), objects, areas


# ----------------------------------------------------------------------------------------------
# Files.

def _escape(text):
  return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def annotation_xml(year_folder, filename, width, height, objects, seed):
  """VOC annotation XML text (tab-indented like the originals)."""
  lines = ['<annotation>', '\t<folder>%s</folder>' % year_folder,
           '\t<filename>%s</filename>' % _escape(filename), '\t<source>',
           '\t\t<database>Synthetic %s (make_synthetic_voc.py, seed %d)</database>'
           % (year_folder, seed),
           '\t\t<annotation>PASCAL %s</annotation>' % year_folder, '\t\t<image>synthetic</image>',
           '\t</source>', '\t<size>', '\t\t<width>%d</width>' % width,
           '\t\t<height>%d</height>' % height, '\t\t<depth>3</depth>', '\t</size>',
           '\t<segmented>0</segmented>']
  for obj in objects:
    lines += ['\t<object>', '\t\t<name>%s</name>' % _escape(obj.name),
              '\t\t<pose>Unspecified</pose>', '\t\t<truncated>%d</truncated>' % obj.truncated,
              '\t\t<difficult>%d</difficult>' % obj.difficult, '\t\t<bndbox>']
    lines += ['\t\t\t<%s>%d</%s>' % (tag, int(getattr(obj, tag)), tag)
              for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
    lines += ['\t\t</bndbox>', '\t</object>']
  return '\n'.join(lines + ['</annotation>', ''])


def _write_atomically(path, data):
  file_io.atomic_write(path, data)


def render_sample(seed, year_folder, number, class_names, min_size, max_size):
  """Draws and JPEG-encodes one image; the single drawing path of both output formats.

  The image's generator is seeded with (seed, year, number), year being the digits ending
  year_folder (0 if none), so a given image is the same whatever the format or worker.

  Returns:
    (JPEG bytes, width, height, list of VocObject, list of visible pixel counts per object).
  """
  year = int(year_folder[-4:]) if year_folder[-4:].isdigit() else 0
  rng = np.random.default_rng([seed, year, number])
  image, objects, areas = render_image(rng, class_names, min_size, max_size)
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise RuntimeError('JPEG encoding failed for %s image %d.' % (year_folder, number))
  height, width = image.shape[:2]
  return jpeg.tobytes(), width, height, objects, areas


def write_sample(task):
  """Generates and writes one image + annotation; returns (id, width, height, objects).

  Args:
    task: (year_dir, year_folder, image_id, seed, image_number, class_names, min_size, max_size)
      and optionally annotated (default True; False writes the image alone, the objects drawn
      in it are still returned).
  """
  year_dir, year_folder, image_id, seed, number, class_names, min_size, max_size = task[:8]
  annotated = task[8] if len(task) > 8 else True
  jpeg, width, height, objects, _ = render_sample(seed, year_folder, number, class_names,
                                                  min_size, max_size)
  _write_atomically(os.path.join(year_dir, 'JPEGImages', image_id + '.jpg'), jpeg)
  if not annotated:
    return image_id, width, height, objects
  xml = annotation_xml(year_folder, image_id + '.jpg', width, height, objects, seed)
  _write_atomically(os.path.join(year_dir, 'Annotations', image_id + '.xml'),
                    xml.encode('utf-8'))
  return image_id, width, height, objects


def write_coco_sample(task):
  """Generates and writes one COCO image; returns (id, width, height, objects, areas).

  The JPEG is the one write_sample writes for the same VOC2007 image number.

  Args:
    task: (images_dir, image_id, seed, image_number, class_names, min_size, max_size).
  """
  images_dir, image_id, seed, number, class_names, min_size, max_size = task
  jpeg, width, height, objects, areas = render_sample(seed, COCO_SOURCE_YEAR_FOLDER, number,
                                                      class_names, min_size, max_size)
  _write_atomically(os.path.join(images_dir, image_id + '.jpg'), jpeg)
  return image_id, width, height, objects, areas


def _run(tasks, num_workers, worker=write_sample):
  if num_workers <= 1 or len(tasks) < 8:
    return [worker(task) for task in tasks]
  # fork: workers inherit the imported modules (no TensorFlow here); seeds are per image, so
  # results do not depend on which worker draws which image.
  with multiprocessing.get_context('fork').Pool(num_workers) as pool:
    return pool.map(worker, tasks, chunksize=8)


def validate_class_names(class_names):
  unknown = [name for name in class_names if name not in CLASS_STYLES]
  if unknown:
    raise ValueError('--classes has names without a synthetic style: %s; use VOC class names '
                     '(%s).' % (', '.join(unknown), ','.join(label_utils.VOC_CLASSES)))
  return tuple(class_names)


def _check_options(class_names, min_size, max_size):
  """Validated class names (a tuple); raises ValueError on unknown names or bad sizes."""
  class_names = validate_class_names(class_names)
  if not 0 < min_size <= max_size:
    raise ValueError('Need 0 < --min_size <= --max_size (got %d, %d).' % (min_size, max_size))
  return class_names


# Splits generate_voc writes without annotation files, as the real ones (their XML is not public).
UNANNOTATED_SPLITS = ('VOC2012/test',)


def _voc_plan(num_trainval, num_test, num_trainval_2012, num_test_2012):
  """[(year folder, split, ids, number of the first image, annotated)] of generate_voc."""
  plan = [('VOC2007', 'trainval', ['%06d' % (i + 1) for i in range(num_trainval)], 0),
          ('VOC2007', 'test', ['%06d' % (num_trainval + i + 1) for i in range(num_test)],
           num_trainval)]
  if num_trainval_2012 > 0:
    plan.append(('VOC2012', 'trainval',
                 ['2012_%06d' % (i + 1) for i in range(num_trainval_2012)], 0))
  if num_test_2012 > 0:
    plan.append(('VOC2012', 'test', ['2012_%06d' % (num_trainval_2012 + i + 1)
                                     for i in range(num_test_2012)], num_trainval_2012))
  return [entry + ('%s/%s' % entry[:2] not in UNANNOTATED_SPLITS,) for entry in plan]


def generate_voc(output_dir, num_trainval, num_test, seed, class_names=label_utils.VOC_CLASSES,
                 num_trainval_2012=0, min_size=200, max_size=400, num_workers=2,
                 num_test_2012=0):
  """Writes the synthetic VOC tree under output_dir/VOCdevkit.

  VOC2007 gets ids 000001.. (trainval first, then test); VOC2012, when num_trainval_2012 > 0,
  gets ids 2012_000001.. in a trainval split, and when num_test_2012 > 0 the ids after those in
  a test split without annotation files, as the real VOC2012 test set. Split files are written
  last, so an interrupted run never lists an image that is not on disk.

  Returns:
    {split key like 'VOC2007/trainval': list of (id, width, height, objects)}; for the VOC2012
    test split the objects drawn, which no file records.
  """
  class_names = _check_options(class_names, min_size, max_size)
  plan = _voc_plan(num_trainval, num_test, num_trainval_2012, num_test_2012)
  results = {}
  for year_folder, split, ids, first_number, annotated in plan:
    year_dir = os.path.join(output_dir, 'VOCdevkit', year_folder)
    subs = ('JPEGImages', os.path.join('ImageSets', 'Main')) + (('Annotations',) if annotated
                                                                 else ())
    for sub in subs:
      os.makedirs(os.path.join(year_dir, sub), exist_ok=True)
    tasks = [(year_dir, year_folder, image_id, seed, first_number + i, class_names,
              min_size, max_size, annotated) for i, image_id in enumerate(ids)]
    results['%s/%s' % (year_folder, split)] = _run(tasks, num_workers)
  for year_folder, split, ids, _, _ in plan:
    split_path = os.path.join(output_dir, 'VOCdevkit', year_folder, 'ImageSets', 'Main',
                              split + '.txt')
    _write_atomically(split_path, ''.join(i + '\n' for i in ids).encode('ascii'))
  return results


# ----------------------------------------------------------------------------------------------
# COCO format.

def coco_category_id(index):
  """COCO category id of the class at 0-based position index of the class list: 1, 3, 5, ...

  Deliberately not contiguous (unlike labels 1..N), so readers must map ids to labels.
  """
  return 2 * int(index) + 1


def coco_categories(class_names):
  """The "categories" list: one {"id", "name", "supercategory"} per class, in class order."""
  return [{'id': coco_category_id(index), 'name': name, 'supercategory': COCO_SUPERCATEGORY}
          for index, name in enumerate(class_names)]


def coco_bbox(obj):
  """COCO [x, y, w, h] (continuous, 0-based) of a VocObject's 1-based inclusive pixel box."""
  return [float(obj.xmin - 1), float(obj.ymin - 1), float(obj.xmax - obj.xmin + 1),
          float(obj.ymax - obj.ymin + 1)]


def coco_annotation(annotation_id, image_id, category_id, obj, area):
  """One COCO instance annotation for a VocObject.

  Args:
    annotation_id, image_id, category_id: COCO integer ids.
    obj: VocObject (1-based inclusive pixel box); a difficult object becomes iscrowd 1, which
      COCO evaluation ignores as VOC evaluation ignores difficult objects.
    area: the object's visible pixel count (its segmentation area).
  """
  x, y, w, h = coco_bbox(obj)
  return {'id': int(annotation_id), 'image_id': int(image_id), 'category_id': int(category_id),
          'bbox': [x, y, w, h], 'area': float(area), 'iscrowd': int(bool(obj.difficult)),
          'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def coco_instances(samples, class_names, first_annotation_id, description):
  """COCO instances dict of one split.

  Args:
    samples: list of (image id text like '000005', width, height, objects, areas).
    class_names: the class list; an object's category is coco_category_id(its position).
    first_annotation_id: id of the split's first annotation (ids run on from there).
    description: text for info.description.

  Returns:
    (instances dict, the next free annotation id).
  """
  positions = {name: index for index, name in enumerate(class_names)}
  images, annotations = [], []
  annotation_id = first_annotation_id
  for image_id, width, height, objects, areas in samples:
    number = int(image_id)
    images.append({'id': number, 'file_name': image_id + '.jpg', 'width': int(width),
                   'height': int(height)})
    for obj, area in zip(objects, areas):
      if obj.name not in positions:
        raise ValueError('Object class %r of image %s is not in the class list.'
                         % (obj.name, image_id))
      category_id = coco_category_id(positions[obj.name])
      annotations.append(coco_annotation(annotation_id, number, category_id, obj, area))
      annotation_id += 1
  info = {'description': description, 'version': '1.0',
          'contributor': 'dataset/make_synthetic_voc.py'}
  instances = {'info': info, 'licenses': [], 'images': images, 'annotations': annotations,
               'categories': coco_categories(class_names)}
  return instances, annotation_id


def coco_json_bytes(instances):
  """Deterministic JSON bytes: sorted keys, compact separators, trailing newline."""
  return (json.dumps(instances, sort_keys=True, separators=(',', ':')) + '\n').encode('ascii')


def coco_annotation_path(output_dir, coco_split):
  """output_dir/coco/annotations/instances_<coco_split>.json."""
  return os.path.join(output_dir, 'coco', 'annotations', 'instances_%s.json' % coco_split)


def coco_images_dir(output_dir, coco_split):
  """output_dir/coco/images/<coco_split>."""
  return os.path.join(output_dir, 'coco', 'images', coco_split)


def generate_coco(output_dir, num_trainval, num_test, seed, class_names=label_utils.VOC_CLASSES,
                  min_size=200, max_size=400, num_workers=2):
  """Writes the synthetic data in the COCO layout under output_dir/coco.

  The images are byte for byte those generate_voc writes for VOC2007 with the same arguments,
  under the same names (000001.jpg..): trainval in images/train, test in images/val. Their
  annotations go to annotations/instances_{train,val}.json, written after all images, so an
  interrupted run never lists an image that is not on disk. Image ids are the VOC image numbers;
  annotation ids run from 1 across train then val; category ids come from coco_category_id;
  each annotation's area is the object's visible pixel count (see visible_pixel_counts).

  Returns:
    {'coco/train': list of (id, width, height, objects), 'coco/val': the same}, objects being
    VocObjects with 1-based inclusive pixel boxes (as generate_voc returns).
  """
  class_names = _check_options(class_names, min_size, max_size)
  counts = {'trainval': num_trainval, 'test': num_test}
  first_numbers = {'trainval': 0, 'test': num_trainval}
  samples = {}
  for voc_split, coco_split in COCO_SPLITS:
    images_dir = coco_images_dir(output_dir, coco_split)
    os.makedirs(images_dir, exist_ok=True)
    numbers = [first_numbers[voc_split] + i for i in range(counts[voc_split])]
    tasks = [(images_dir, '%06d' % (number + 1), seed, number, class_names, min_size, max_size)
             for number in numbers]
    samples[coco_split] = _run(tasks, num_workers, write_coco_sample)
  next_id = 1
  for _, coco_split in COCO_SPLITS:
    description = ('Synthetic COCO-format detection data (make_synthetic_voc.py, seed %d, %s)'
                   % (seed, coco_split))
    instances, next_id = coco_instances(samples[coco_split], class_names, next_id, description)
    _write_atomically(coco_annotation_path(output_dir, coco_split), coco_json_bytes(instances))
  return {'coco/' + split: [sample[:4] for sample in split_samples]
          for split, split_samples in samples.items()}


def summarize(results, class_names):
  """Printable summary lines: images per split, objects per class, difficult/truncated counts."""
  lines = []
  per_class = collections.Counter()
  difficult = truncated = 0
  for key, samples in results.items():
    objects = [obj for sample in samples for obj in sample[3]]
    lines.append('%-18s %6d images %7d objects%s' % (
        key, len(samples), len(objects),
        ' (drawn, no annotation files)' if key in UNANNOTATED_SPLITS else ''))
    per_class.update(obj.name for obj in objects)
    difficult += sum(obj.difficult for obj in objects)
    truncated += sum(obj.truncated for obj in objects)
  lines.append('objects per class: ' + ', '.join('%s %d' % (name, per_class[name])
                                                 for name in class_names))
  lines.append('difficult %d, truncated %d' % (difficult, truncated))
  return lines


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_enum('format', 'voc', ['voc', 'coco'],
                    'voc: OUTPUT_DIR/VOCdevkit/VOC2007 (and VOC2012); coco: the same VOC2007 '
                    'images as OUTPUT_DIR/coco/images/{train,val}/ with COCO instances files '
                    'OUTPUT_DIR/coco/annotations/instances_{train,val}.json (category ids 1, 3, '
                    '5, ..., iscrowd = VOC difficult).')
  flags.DEFINE_string('output_dir', None,
                      'Folder that receives VOCdevkit/ (--format=voc) or coco/ (--format=coco).')
  flags.DEFINE_integer('num_trainval', 200, 'VOC2007 trainval images (COCO: train).')
  flags.DEFINE_integer('num_test', 50, 'VOC2007 test images (COCO: val).')
  flags.DEFINE_integer('seed', 0, 'Seed; the same seed gives byte-identical files.')
  flags.DEFINE_list('classes', list(label_utils.VOC_CLASSES), 'VOC class names to draw.')
  flags.DEFINE_bool('with_voc2012', False,
                    'Also write VOC2012/ with a trainval split (--format=voc only).')
  flags.DEFINE_integer('num_trainval_2012', 100, 'VOC2012 trainval images (with --with_voc2012).')
  flags.DEFINE_integer('num_test_2012', 0, 'VOC2012 test images written without annotations, '
                       'as the real VOC2012 test set (with --with_voc2012).')
  flags.DEFINE_integer('min_size', 200, 'Smallest image side in pixels.')
  flags.DEFINE_integer('max_size', 400, 'Largest image side in pixels.')
  flags.DEFINE_integer('num_workers', 2, 'Worker processes (output does not depend on it).')
  flags.mark_flag_as_required('output_dir')


def _generate_from_flags():
  """Runs the generator the flags ask for; returns (written folder, results)."""
  if FLAGS.format == 'coco':
    if FLAGS.with_voc2012:
      raise ValueError('--with_voc2012 applies to --format=voc only; COCO output has the '
                       'VOC2007 images alone.')
    results = generate_coco(FLAGS.output_dir, FLAGS.num_trainval, FLAGS.num_test, FLAGS.seed,
                            FLAGS.classes, FLAGS.min_size, FLAGS.max_size, FLAGS.num_workers)
    return os.path.join(FLAGS.output_dir, 'coco'), results
  results = generate_voc(FLAGS.output_dir, FLAGS.num_trainval, FLAGS.num_test, FLAGS.seed,
                         FLAGS.classes, FLAGS.num_trainval_2012 if FLAGS.with_voc2012 else 0,
                         FLAGS.min_size, FLAGS.max_size, FLAGS.num_workers,
                         FLAGS.num_test_2012 if FLAGS.with_voc2012 else 0)
  return os.path.join(FLAGS.output_dir, 'VOCdevkit'), results


def main(argv):
  del argv
  start = time.time()
  try:
    written, results = _generate_from_flags()
  except ValueError as e:
    sys.exit('Error: %s' % e)
  print('Wrote %s' % written)
  for line in summarize(results, validate_class_names(FLAGS.classes)):
    print(line)
  print('%.1f s' % (time.time() - start))

if __name__ == '__main__':
  define_flags()
  app.run(main)
