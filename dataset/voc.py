"""Pascal VOC layout and annotation XML, without TensorFlow.

A VOC root holds one folder per year (``VOC2007``, ``VOC2012``), each with ``Annotations/<id>.xml``,
``JPEGImages/<id>.jpg`` and ``ImageSets/Main/<split>.txt``. The root given by the user may be
the ``VOCdevkit`` folder itself or its parent; both are resolved.

Boxes here are raw VOC pixels exactly as written in the XML: 1-based, inclusive, floats (a few
VOC2012 files have fractional coordinates). A box spans the continuous pixel-edge interval
``[xmin - 1, xmax]`` x ``[ymin - 1, ymax]``, the same reading ``utility.boxes`` uses to normalize
it, so a box with xmin == xmax is one pixel wide, not empty. Conversion to the normalized graph
convention happens only when a record is written (``dataset/tfrecord_io.py``).

The numpy-only evaluator imports this module, so it must not import TensorFlow.
"""

import math
import os
import typing
import xml.etree.ElementTree as ElementTree
from xml.parsers import expat

# A VOC annotation is a few KB; anything this large is not one, and reading it whole would be a
# way to exhaust memory.
MAX_ANNOTATION_BYTES = 4 * 1024 * 1024


class AnnotationError(ValueError):
  """An annotation file that cannot be used (bad XML, missing or non-numeric fields)."""


class DatasetLayoutError(ValueError):
  """A VOC root, year folder or split file that is not where the flags say."""


class VocObject(typing.NamedTuple):
  """One <object> of a VOC annotation, raw pixel values as in the XML."""
  name: str
  xmin: float
  ymin: float
  xmax: float
  ymax: float
  difficult: int = 0   # 0 when the <difficult> tag is absent
  truncated: int = 0   # 0 when the <truncated> tag is absent


class VocAnnotation(typing.NamedTuple):
  """A parsed annotation file; ``width``/``height`` are None when <size> is missing or invalid."""
  filename: str
  width: typing.Optional[int]
  height: typing.Optional[int]
  objects: typing.Tuple[VocObject, ...]


# ----------------------------------------------------------------------------------------------
# Layout.

def year_directory(voc_root, year_folder):
  """Returns the folder of one year, e.g. '<root>/VOCdevkit/VOC2007'.

  Args:
    voc_root: the VOCdevkit folder (containing VOC2007/) or its parent (containing VOCdevkit/).
    year_folder: e.g. 'VOC2007'.

  Raises:
    DatasetLayoutError: if neither '<root>/<year>' nor '<root>/VOCdevkit/<year>' is a folder.
  """
  candidates = [os.path.join(voc_root, year_folder),
                os.path.join(voc_root, 'VOCdevkit', year_folder)]
  for candidate in candidates:
    if os.path.isdir(candidate):
      return candidate
  raise DatasetLayoutError(
      'VOC year folder %r not found (looked for %s); name only the years you have, e.g. '
      '--train_splits=VOC2007:trainval --val_splits=VOC2007:test.'
      % (year_folder, ' and '.join(candidates)))


def split_file_path(voc_root, year_folder, split):
  """'<year dir>/ImageSets/Main/<split>.txt' (the year folder must exist)."""
  return os.path.join(year_directory(voc_root, year_folder), 'ImageSets', 'Main', split + '.txt')


def annotation_path(voc_root, year_folder, image_id):
  """'<year dir>/Annotations/<image_id>.xml'."""
  return os.path.join(year_directory(voc_root, year_folder), 'Annotations', image_id + '.xml')


def image_path(voc_root, year_folder, image_id):
  """'<year dir>/JPEGImages/<image_id>.jpg'."""
  return os.path.join(year_directory(voc_root, year_folder), 'JPEGImages', image_id + '.jpg')


def read_split_ids(voc_root, year_folder, split):
  """Reads the image ids of ``<root>/<year_folder>/ImageSets/Main/<split>.txt``.

  CRLF line endings, blank lines, surrounding spaces and a UTF-8 byte order mark are tolerated.
  Only the first column is used, so a per-class file ('000005 -1') lists all of its images.
  Repeated ids are dropped, keeping the first occurrence.

  Returns:
    A list of id strings in file order.

  Raises:
    DatasetLayoutError: if the year folder or the split file does not exist.
  """
  path = split_file_path(voc_root, year_folder, split)
  if not os.path.isfile(path):
    raise DatasetLayoutError(
        'Split file %s not found; name an existing split of %s, e.g. '
        '--train_splits=%s:trainval or --val_splits=%s:test.'
        % (path, year_folder, year_folder, year_folder))
  with open(path, 'rb') as f:
    text = f.read().decode('utf-8-sig')
  ids, seen = [], set()
  for line in text.replace('\r', '\n').split('\n'):
    fields = line.split()
    if fields and fields[0] not in seen:
      seen.add(fields[0])
      ids.append(fields[0])
  return ids


# ----------------------------------------------------------------------------------------------
# XML.

def _refuse_declaration(kind):
  def handler(*unused_args):
    raise AnnotationError('%s declarations are not allowed in VOC annotations' % kind)
  return handler


def _parse_xml_safely(data):
  """Parses bytes into an ElementTree element, refusing any DTD.

  VOC annotations never use a DOCTYPE; refusing it outright rules out entity-expansion bombs
  ("billion laughs") and external entities before any expansion can happen, in bounded time
  and memory, whatever the expat version.
  """
  builder = ElementTree.TreeBuilder()
  parser = expat.ParserCreate()
  parser.StartDoctypeDeclHandler = _refuse_declaration('DOCTYPE')
  parser.EntityDeclHandler = _refuse_declaration('ENTITY')
  parser.ExternalEntityRefHandler = _refuse_declaration('External entity')
  parser.StartElementHandler = builder.start
  parser.EndElementHandler = lambda tag: builder.end(tag)
  parser.CharacterDataHandler = builder.data
  parser.buffer_text = True
  parser.Parse(data, True)
  return builder.close()


def _number(element, tag, path, required):
  """Float value of a child tag; None when absent and not required."""
  child = element.find(tag)
  text = child.text.strip() if child is not None and child.text else ''
  if not text:
    if required:
      raise AnnotationError('%s: <%s> is missing or empty.' % (path, tag))
    return None
  try:
    value = float(text)
  except ValueError:
    raise AnnotationError('%s: <%s> is %r, not a number.' % (path, tag, text)) from None
  if not math.isfinite(value):
    raise AnnotationError('%s: <%s> is %r, not a finite number.' % (path, tag, text))
  return value


def _flag(element, tag, path):
  """0/1 value of an optional flag tag such as <difficult>; 0 when absent."""
  value = _number(element, tag, path, required=False)
  return 0 if value is None or value == 0 else 1


def _image_size(root, path):
  """(width, height) as ints, or (None, None) when <size> is missing or not positive integers."""
  size = root.find('size')
  if size is None:
    return None, None
  try:
    width = _number(size, 'width', path, required=True)
    height = _number(size, 'height', path, required=True)
  except AnnotationError:
    return None, None
  if width <= 0 or height <= 0 or width != int(width) or height != int(height):
    return None, None
  return int(width), int(height)


def _parse_object(element, index, path):
  name_element = element.find('name')
  name = (name_element.text or '').strip() if name_element is not None else ''
  if not name:
    raise AnnotationError('%s: <object> %d has no <name>.' % (path, index))
  bndbox = element.find('bndbox')
  if bndbox is None:
    raise AnnotationError('%s: <object> %d (%s) has no <bndbox>.' % (path, index, name))
  xmin, ymin, xmax, ymax = (_number(bndbox, tag, path, required=True)
                            for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
  return VocObject(name, xmin, ymin, xmax, ymax,
                   difficult=_flag(element, 'difficult', path),
                   truncated=_flag(element, 'truncated', path))


def parse_annotation(path):
  """Parses one VOC annotation file.

  Only direct <object> children of <annotation> are read; their <part> children (person
  layout) and <pose>, <occluded> etc. are ignored. No clipping or validation of box geometry
  happens here (see ``sanitize_objects``).

  Args:
    path: the XML file.

  Returns:
    A VocAnnotation. ``filename`` is <filename> when present, else '<file stem>.jpg'.

  Raises:
    AnnotationError: naming the file, for XML that is not well formed, any DTD/entity
      declaration, a root other than <annotation>, or an <object> without a name, a box or
      with non-numeric coordinates.
  """
  with open(path, 'rb') as f:
    data = f.read(MAX_ANNOTATION_BYTES + 1)
  if len(data) > MAX_ANNOTATION_BYTES:
    raise AnnotationError('%s is larger than %d bytes; not a VOC annotation.'
                          % (path, MAX_ANNOTATION_BYTES))
  try:
    root = _parse_xml_safely(data)
  except AnnotationError as e:
    raise AnnotationError('%s: %s.' % (path, e)) from None
  except expat.ExpatError as e:
    raise AnnotationError('%s is not well-formed XML (%s).' % (path, e)) from None
  if root.tag != 'annotation':
    raise AnnotationError('%s: root element is <%s>, expected <annotation>.' % (path, root.tag))
  filename_element = root.find('filename')
  filename = (filename_element.text or '').strip() if filename_element is not None else ''
  if not filename:
    filename = os.path.splitext(os.path.basename(path))[0] + '.jpg'
  width, height = _image_size(root, path)
  objects = tuple(_parse_object(element, index, path)
                  for index, element in enumerate(root.findall('object')))
  return VocAnnotation(filename, width, height, objects)


# ----------------------------------------------------------------------------------------------
# Validation against the decoded image.

def _describe(obj):
  return "'%s' (%g, %g, %g, %g)" % (obj.name, obj.xmin, obj.ymin, obj.xmax, obj.ymax)


def _sanitize_one(obj, image_width, image_height):
  """Returns (object or None, warning or None) for one object with a known class."""
  if obj.xmin > obj.xmax or obj.ymin > obj.ymax:
    return None, 'dropped box %s: xmin > xmax or ymin > ymax' % _describe(obj)
  # The box covers pixel edges [xmin - 1, xmax]; the image covers [0, width].
  clipped = obj._replace(xmin=max(obj.xmin, 1.0), ymin=max(obj.ymin, 1.0),
                         xmax=min(obj.xmax, float(image_width)),
                         ymax=min(obj.ymax, float(image_height)))
  if clipped.xmax - (clipped.xmin - 1.0) <= 0.0 or clipped.ymax - (clipped.ymin - 1.0) <= 0.0:
    return None, 'dropped box %s: zero area inside the %dx%d image' % (
        _describe(obj), image_width, image_height)
  if clipped != obj:
    return clipped, 'clipped box %s to the %dx%d image: (%g, %g, %g, %g)' % (
        _describe(obj), image_width, image_height,
        clipped.xmin, clipped.ymin, clipped.xmax, clipped.ymax)
  return obj, None


def sanitize_objects(annotation, image_width, image_height, class_names, source=None):
  """Keeps the objects that can be written, clipped to the image.

  Rules: an unknown class name drops the object; xmin > xmax or ymin > ymax drops it; a box is
  clipped to [1, width] x [1, height] (1-based inclusive pixels) when some positive area
  remains, else dropped. Fractional coordinates stay as they are. Every change is a warning.

  Args:
    annotation: a VocAnnotation.
    image_width, image_height: size of the decoded image (trusted over the XML <size>).
    class_names: the known class names.
    source: what to name in the warnings (e.g. the XML path); default the annotation filename.

  Returns:
    (kept objects as a list of VocObject, list of warning strings each naming ``source``).
  """
  source = source or annotation.filename
  known = set(class_names)
  kept, warnings = [], []
  for index, obj in enumerate(annotation.objects):
    if obj.name not in known:
      result, warning = None, 'dropped object with unknown class %r' % obj.name
    else:
      result, warning = _sanitize_one(obj, image_width, image_height)
    if warning:
      warnings.append('%s: object %d: %s.' % (source, index, warning))
    if result is not None:
      kept.append(result)
  return kept, warnings
