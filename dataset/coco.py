"""COCO-format detection annotations (an ``instances_*.json`` file and its image folder),
without TensorFlow.

A COCO box is ``[x, y, width, height]`` in continuous pixel coordinates with the origin at the
image's top-left corner. The records store boxes the way the VOC path does, so an object here
carries its box in the VOC reading (``dataset/voc.py``: 1-based, inclusive, the box spanning
``[xmin - 1, xmax]``): xmin = x + 1, ymin = y + 1, xmax = x + width, ymax = y + height, which
``utility.boxes.voc_pixels_to_normalized`` maps to exactly x / W, y / H, (x + w) / W,
(y + h) / H. One writer and one decoder therefore serve both formats.

Labels: the categories sorted by id become labels 1..N (COCO's 80 ids 1..90 with gaps become
1..80); ``Categories.ids`` maps them back when results are written.

Bad input is reported, never turned into wrong boxes: every problem is a warning naming the
annotation file and the image or annotation id, and the object (or image) is left out.
"""

import json
import math
import os
import typing

class CocoFormatError(ValueError):
  """An annotation file that cannot be used at all (missing, not JSON, no categories)."""


class CocoObject(typing.NamedTuple):
  """One annotation, its box in the VOC reading (module docstring)."""
  name: str
  xmin: float
  ymin: float
  xmax: float
  ymax: float
  difficult: int = 0
  truncated: int = 0
  area: float = 0.0      # COCO's area (of the segmentation), pixels of the original image
  iscrowd: int = 0
  annotation_id: int = 0


class CocoImage(typing.NamedTuple):
  """One entry of "images" with its annotations (the raw dicts, in file order)."""
  image_id: int
  file_name: str
  width: int
  height: int
  annotations: tuple


class Categories(typing.NamedTuple):
  """Category ids sorted ascending and their names: label i + 1 is ids[i] / names[i]."""
  ids: tuple
  names: tuple

  def name_of(self):
    return dict(zip(self.ids, self.names))


class CocoDataset(typing.NamedTuple):
  path: str
  categories: Categories
  images: tuple          # CocoImage, in file order, each id once
  warnings: tuple        # problems found while reading the file


def _is_number(value):
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def read_categories(entries, path):
  """'categories' entries -> Categories (sorted by id).

  Raises:
    CocoFormatError: naming path, when there is none, an id repeats or an entry is malformed.
  """
  if not isinstance(entries, list) or not entries:
    raise CocoFormatError('%s has no "categories" list; a COCO instances file names its '
                          'categories as [{"id": 1, "name": "person"}, ...].' % path)
  by_id = {}
  for entry in entries:
    if (not isinstance(entry, dict) or not isinstance(entry.get('id'), int)
        or not isinstance(entry.get('name'), str) or not entry['name'].strip()):
      raise CocoFormatError('%s: category %r needs an integer "id" and a "name".'
                            % (path, entry))
    if entry['id'] in by_id:
      raise CocoFormatError('%s: category id %d is listed twice.' % (path, entry['id']))
    by_id[entry['id']] = entry['name'].strip()
  names = [by_id[i] for i in sorted(by_id)]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise CocoFormatError('%s: category names must be unique; repeated: %s.'
                          % (path, ', '.join(repeated)))
  return Categories(tuple(sorted(by_id)), tuple(names))


def load(path):
  """Reads an instances file.

  Images listed twice (same id) keep their first entry; annotations of an unknown image are
  dropped; both with a warning in ``CocoDataset.warnings``.

  Raises:
    CocoFormatError: naming the file, when it is missing, not JSON or lacks images/categories.
  """
  if not os.path.isfile(path):
    raise CocoFormatError('COCO annotation file %s not found (--annotations).' % path)
  try:
    with open(path, 'rb') as f:
      data = json.loads(f.read().decode('utf-8-sig'))
  except (ValueError, UnicodeDecodeError) as e:
    raise CocoFormatError('%s is not valid JSON: %s' % (path, e)) from None
  if not isinstance(data, dict) or not isinstance(data.get('images'), list):
    raise CocoFormatError('%s has no "images" list; is it a COCO instances file?' % path)
  categories = read_categories(data.get('categories'), path)
  warnings = []
  images = {}
  for entry in data['images']:
    image_id = entry.get('id') if isinstance(entry, dict) else None
    if not isinstance(image_id, int) or not isinstance(entry.get('file_name'), str):
      warnings.append('%s: image entry %r needs an integer "id" and a "file_name"; skipped.'
                      % (path, entry))
      continue
    if image_id in images:
      warnings.append('%s: image id %d is listed twice (%s, %s); keeping the first.'
                      % (path, image_id, images[image_id]['file_name'], entry['file_name']))
      continue
    images[image_id] = entry
  annotations = {image_id: [] for image_id in images}
  for annotation in data.get('annotations') or []:
    image_id = annotation.get('image_id') if isinstance(annotation, dict) else None
    if image_id not in annotations:
      warnings.append('%s: annotation %s refers to image id %r, which is not in "images"; '
                      'skipped.' % (path, _annotation_id(annotation), image_id))
      continue
    annotations[image_id].append(annotation)
  return CocoDataset(path, categories, tuple(
      CocoImage(image_id, entry['file_name'], entry.get('width'), entry.get('height'),
                tuple(annotations[image_id]))
      for image_id, entry in images.items()), tuple(warnings))


def _annotation_id(annotation):
  return annotation.get('id', '?') if isinstance(annotation, dict) else '?'


def sanitize_objects(image, categories, width, height, source):
  """The image's annotations as CocoObjects inside a width x height image.

  A bbox that is not four finite numbers, has a width or height <= 0 or lies outside the image
  is left out; one that crosses the border is clipped to it; an unknown category id is left out;
  a missing or non-positive area becomes the box's; iscrowd other than 0/1 leaves it out.

  Returns:
    (objects, warnings); each warning names source, the image id and the annotation id.
  """
  name_of = categories.name_of()
  objects, warnings = [], []

  def warn(annotation, text):
    warnings.append('%s: annotation %s of image %d (%s) %s' % (
        source, _annotation_id(annotation), image.image_id, image.file_name, text))

  for annotation in image.annotations:
    category_id = annotation.get('category_id')
    if category_id not in name_of:
      warn(annotation, 'has unknown category id %r; skipped.' % (category_id,))
      continue
    bbox = annotation.get('bbox')
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(map(_is_number, bbox))):
      warn(annotation, 'has bbox %r, not [x, y, width, height]; skipped.' % (bbox,))
      continue
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
      warn(annotation, 'has bbox %r with a %s; skipped.'
           % (bbox, 'negative or zero width' if w <= 0 else 'negative or zero height'))
      continue
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 <= x1 or y2 <= y1:
      warn(annotation, 'has bbox %r outside the %dx%d image; skipped.' % (bbox, width, height))
      continue
    if (x1, y1, x2, y2) != (x, y, x + w, y + h):
      warn(annotation, 'has bbox %r crossing the %dx%d image border; clipped.'
           % (bbox, width, height))
    iscrowd = annotation.get('iscrowd', 0)
    if iscrowd not in (0, 1) or isinstance(iscrowd, bool):
      warn(annotation, 'has iscrowd %r (must be 0 or 1); skipped.' % (iscrowd,))
      continue
    area = annotation.get('area')
    if not _is_number(area) or area <= 0:
      area = (x2 - x1) * (y2 - y1)
    objects.append(CocoObject(name_of[category_id], x1 + 1.0, y1 + 1.0, x2, y2,
                              area=float(area), iscrowd=int(iscrowd),
                              annotation_id=_annotation_id(annotation)))
  return objects, warnings


def image_path(images_directory, image):
  """'<images dir>/<file_name>'."""
  return os.path.join(images_directory, image.file_name)
