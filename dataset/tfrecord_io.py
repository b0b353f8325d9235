"""The TFRecord contract: writing one tf.train.Example per image and decoding it in the graph.

Keys and conventions are a public contract (``docs/TFRECORD_FORMAT.md``): later tools
and users' own readers rely on them. Boxes are stored normalized to [0, 1] with
``utility.boxes.voc_pixels_to_normalized`` (VOC min edge v -> (v - 1) / size, max edge
v -> v / size); the evaluator inverts exactly that mapping with ``normalized_to_voc_pixels``.
Labels are 1..num_classes-1 (0 is the background, ``utility/labels.py``).

``image/source_id`` (the dataset's image id, e.g. COCO's), ``image/object/area`` (pixels) and
``image/object/iscrowd`` came with COCO support; records written before them decode with
source_id '' , area = the box area in pixels and iscrowd 0.
"""

import tensorflow as tf

from utility import boxes as box_utils
from utility import labels as label_utils

IMAGE_FORMAT = b'JPEG'

# Feature spec for tf.io.parse_single_example; per-object lists are variable length.
FEATURE_SPEC = {
    'image/encoded': tf.io.FixedLenFeature([], tf.string),
    'image/format': tf.io.FixedLenFeature([], tf.string, default_value=IMAGE_FORMAT),
    'image/filename': tf.io.FixedLenFeature([], tf.string, default_value=b''),
    'image/height': tf.io.FixedLenFeature([], tf.int64),
    'image/width': tf.io.FixedLenFeature([], tf.int64),
    'image/channels': tf.io.FixedLenFeature([], tf.int64, default_value=3),
    'image/shape': tf.io.FixedLenFeature([3], tf.int64),
    'image/object/bbox/xmin': tf.io.VarLenFeature(tf.float32),
    'image/object/bbox/ymin': tf.io.VarLenFeature(tf.float32),
    'image/object/bbox/xmax': tf.io.VarLenFeature(tf.float32),
    'image/object/bbox/ymax': tf.io.VarLenFeature(tf.float32),
    'image/object/bbox/label': tf.io.VarLenFeature(tf.int64),
    'image/object/bbox/label_text': tf.io.VarLenFeature(tf.string),
    'image/object/bbox/difficult': tf.io.VarLenFeature(tf.int64),
    'image/object/bbox/truncated': tf.io.VarLenFeature(tf.int64),
    'image/source_id': tf.io.FixedLenFeature([], tf.string, default_value=b''),
    'image/object/area': tf.io.VarLenFeature(tf.float32),
    'image/object/iscrowd': tf.io.VarLenFeature(tf.int64),
}


def shard_name(split, index, num_shards):
  """'train', 3, 16 -> 'train-00003-of-00016'."""
  return '%s-%05d-of-%05d' % (split, index, num_shards)


def _int64_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _bytes_feature(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def object_area(obj):
  """An object's area in pixels: its own ``area`` (COCO: the segmentation's) when it has one,
  else its box's, the box spanning [xmin - 1, xmax] x [ymin - 1, ymax]."""
  area = getattr(obj, 'area', None)
  if area is not None:
    return float(area)
  return float(obj.xmax - obj.xmin + 1) * float(obj.ymax - obj.ymin + 1)


def make_example(image_bytes, filename, height, width, objects,
                 class_names=label_utils.VOC_CLASSES, source_id=''):
  """Builds the tf.train.Example of one image.

  Args:
    image_bytes: a 3-channel JPEG (bytes) of ``height`` x ``width`` pixels.
    filename: image file name, e.g. '000005.jpg' (str or bytes).
    height, width: size of the decoded image in pixels.
    objects: sequence of ``dataset.voc.VocObject`` already validated against the image
      (``voc.sanitize_objects``): 1-based inclusive pixel boxes inside the image; objects with
      ``area`` and ``iscrowd`` fields too (``dataset.coco.CocoObject``) also store those.
    class_names: names of labels 1..N.
    source_id: the dataset's image id (COCO's integer id as text), '' if it has none.

  Returns:
    A tf.train.Example with the keys of docs/TFRECORD_FORMAT.md.

  Raises:
    ValueError: if an object's class is not in ``class_names``.
  """
  objects = tuple(objects)
  name_to_label = label_utils.name_to_label(class_names)
  unknown = sorted({obj.name for obj in objects} - set(name_to_label))
  if unknown:
    raise ValueError('Objects of %s have unknown classes %s; drop them with '
                     'voc.sanitize_objects first.' % (filename, unknown))
  normalized = [box_utils.voc_pixels_to_normalized(obj.xmin, obj.ymin, obj.xmax, obj.ymax,
                                                   float(width), float(height))
                for obj in objects]
  if isinstance(filename, str):
    filename = filename.encode('utf-8')
  if isinstance(source_id, str):
    source_id = source_id.encode('utf-8')
  feature = {
      'image/encoded': _bytes_feature([image_bytes]),
      'image/format': _bytes_feature([IMAGE_FORMAT]),
      'image/filename': _bytes_feature([filename]),
      'image/height': _int64_feature([height]),
      'image/width': _int64_feature([width]),
      'image/channels': _int64_feature([3]),
      'image/shape': _int64_feature([height, width, 3]),
      'image/object/bbox/ymin': _float_feature(box[0] for box in normalized),
      'image/object/bbox/xmin': _float_feature(box[1] for box in normalized),
      'image/object/bbox/ymax': _float_feature(box[2] for box in normalized),
      'image/object/bbox/xmax': _float_feature(box[3] for box in normalized),
      'image/object/bbox/label': _int64_feature(name_to_label[obj.name] for obj in objects),
      'image/object/bbox/label_text': _bytes_feature(obj.name.encode('utf-8')
                                                     for obj in objects),
      'image/object/bbox/difficult': _int64_feature(int(obj.difficult) for obj in objects),
      'image/object/bbox/truncated': _int64_feature(int(obj.truncated) for obj in objects),
      'image/source_id': _bytes_feature([source_id]),
      'image/object/area': _float_feature(object_area(obj) for obj in objects),
      'image/object/iscrowd': _int64_feature(int(getattr(obj, 'iscrowd', 0))
                                             for obj in objects),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature))


def decode_example(serialized):
  """Decodes one serialized Example into tensors (graph-mode friendly, for tf.data.map).

  Args:
    serialized: string scalar tensor, one record.

  Returns:
    A dict of tensors:
      'image': uint8 [height, width, 3], RGB.
      'boxes': float32 [num_boxes, 4], normalized [ymin, xmin, ymax, xmax].
      'labels': int64 [num_boxes], 1..num_classes-1.
      'difficult', 'truncated', 'iscrowd': int64 [num_boxes], 0 or 1.
      'area': float32 [num_boxes], pixels of the original image.
      'filename': string scalar, e.g. b'000005.jpg'.
      'source_id': string scalar, the dataset's image id (b'' when the records have none).
      'height', 'width': int64 scalars, the original image size.
      'num_boxes': int32 scalar.
  """
  features = tf.io.parse_single_example(serialized, FEATURE_SPEC)

  def dense(key):
    return tf.sparse.to_dense(features['image/object/bbox/' + key])

  # channels=3 also expands any grayscale JPEG written by another tool.
  image = tf.io.decode_jpeg(features['image/encoded'], channels=3)
  boxes = tf.stack([dense('ymin'), dense('xmin'), dense('ymax'), dense('xmax')], axis=1)
  labels = dense('label')
  num_boxes = tf.shape(labels, out_type=tf.int32)[0]
  height = tf.cast(features['image/height'], tf.float32)
  width = tf.cast(features['image/width'], tf.float32)
  box_area = (boxes[:, 2] - boxes[:, 0]) * height * (boxes[:, 3] - boxes[:, 1]) * width
  return {
      'image': image,
      'boxes': tf.reshape(boxes, [-1, 4]),
      'labels': labels,
      'difficult': dense('difficult'),
      'truncated': dense('truncated'),
      'iscrowd': _per_object_or(tf.sparse.to_dense(features['image/object/iscrowd']),
                                tf.zeros_like(labels), num_boxes),
      'area': _per_object_or(tf.sparse.to_dense(features['image/object/area']), box_area,
                             num_boxes),
      'filename': features['image/filename'],
      'source_id': features['image/source_id'],
      'height': features['image/height'],
      'width': features['image/width'],
      'num_boxes': num_boxes,
  }


def _per_object_or(values, fallback, num_boxes):
  """values when the record has one per object, else fallback (records written before the key)."""
  return tf.cond(tf.equal(tf.size(values), num_boxes), lambda: values, lambda: fallback)
