r"""Converts a Pascal VOC layout, or a COCO-format dataset, to sharded TFRecords.

    python dataset/convert_tfrecords.py --dataset_directory=VOCROOT --output_directory=DIR \
        [--train_splits=VOC2007:trainval,VOC2012:trainval] [--val_splits=VOC2007:test] \
        [--train_shards=16] [--val_shards=16] [--num_workers=2] [--strict] [--class_names=voc] \
        [--unannotated_splits=VOC2012:test]

    python dataset/convert_tfrecords.py --format=coco --annotations=instances_train2017.json \
        --images=train2017/ --output_directory=DIR [--split_name=train|val] [--train_shards=...]

VOCROOT is the VOCdevkit folder or its parent. Image ids come from ImageSets/Main/<split>.txt.
Output: DIR/train-00000-of-00016 ... and DIR/val-00000-of-00016 ... (keys in
docs/TFRECORD_FORMAT.md), plus DIR/conversion_summary.json.

COCO (dataset/coco.py): one instances file and its image folder become one set (--split_name);
run it once per split into the same DIR. The categories sorted by id are labels 1..N; the
summary records "class_names" and "category_ids" (label i -> category_ids[i - 1]), which
training and evaluation read back to write results with the original ids. Crowd objects are
stored with iscrowd 1 (training leaves them out of the targets, evaluation ignores them as
COCOeval does); images without annotations are kept in both splits (negatives).

A split named in --unannotated_splits (the VOC2012 test set, whose annotations are not public)
is read without annotation files: each record holds the image, its size as decoded and no
object, and the summary records "annotated": false for its set, so eval_ssd.py packages the
detections for the evaluation server instead of computing an AP. Such a split must be in
--val_splits, in a set of its own (a set mixing both could be neither scored nor submitted).
Any Annotations/<id>.xml of its images is not read: the VOC2012 test tarball has XML only for
the images of the person-layout and action tasks, with partial objects.

Choices:
- Records are shuffled with --seed before being dealt round-robin into the shards, so every
  shard holds a random, balanced sample and reruns give byte-identical shards (no timestamps;
  workers decode in parallel but results are consumed in a fixed order; map keys are serialized
  deterministically).
- JPEG bytes are stored as on disk when the file is an 8-bit, 3-component baseline or
  progressive JPEG; anything else that decodes (grayscale or CMYK JPEG, PNG behind .jpg, ...) is
  re-encoded as an RGB JPEG of quality 95 and reported.
- Bad input never stops the conversion (unless --strict): the image or object is skipped or
  repaired and a warning names the file. Truncated JPEGs (no end-of-image marker) are skipped
  rather than written with grey fill.
- A training image with no object left is kept out of the train set (it would teach only
  background, and the Caffe loss learns nothing from it), unless --keep_empty_images: then it
  is written, counted as an image without objects, and training with
  --min_negatives_per_image > 0 mines hard negatives in it. A validation image with no object
  is kept: evaluation must see every image, and detections on it count as false positives.
- Shards are written under a temporary folder in DIR with names that do not match
  '<set>-*-of-*' and renamed only after every set converted, so a killed run never leaves
  shards that look complete. Old shards of a rewritten set (another shard count) are removed.
"""

import collections
import concurrent.futures
import glob
import json
import os
import shutil
import sys
import tempfile
import time

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from dataset import coco
from dataset import tfrecord_io
from dataset import voc
from utility import file_io
from utility import labels as label_utils
from utility import progress

REENCODE_QUALITY = 95
BATCH_SIZE = 256          # items decoded in parallel before being written, bounds memory
MAX_PRINTED_WARNINGS = 50
SUMMARY_FILENAME = file_io.CONVERSION_SUMMARY
TEMP_PREFIX = '.convert-tmp-'

SplitSpec = collections.namedtuple('SplitSpec', ['year_folder', 'split'])

ItemResult = collections.namedtuple(
    'ItemResult', ['key', 'record', 'objects', 'warnings', 'skip_reason', 'reencoded', 'note'])


class ConversionError(RuntimeError):
  """A conversion that must stop: --strict warning, bad flags, nothing to write."""


class ImageError(ValueError):
  """An image file that cannot be used."""


# ----------------------------------------------------------------------------------------------
# Flags -> specs.

def parse_split_specs(text, flag_name):
  """'VOC2007:trainval,VOC2012:trainval' -> [SplitSpec, ...]; '' -> [] (the set is skipped)."""
  specs = []
  for entry in (e.strip() for e in text.split(',')):
    if not entry:
      continue
    year_folder, _, split = entry.partition(':')
    if not year_folder.strip() or not split.strip():
      raise ConversionError('--%s entry %r must look like VOC2007:trainval.' % (flag_name, entry))
    spec = SplitSpec(year_folder.strip(), split.strip())
    if spec not in specs:
      specs.append(spec)
  return specs


def list_items(voc_root, specs):
  """[(year_folder, image_id), ...] of all specs in order, repeats removed."""
  items, seen = [], set()
  for spec in specs:
    for image_id in voc.read_split_ids(voc_root, spec.year_folder, spec.split):
      if (spec.year_folder, image_id) not in seen:
        seen.add((spec.year_folder, image_id))
        items.append((spec.year_folder, image_id))
  return items


def shuffled(items, seed):
  """Items in a fixed pseudo-random order (numpy RandomState: stable across versions)."""
  order = np.random.RandomState(seed).permutation(len(items))
  return [items[i] for i in order]


# ----------------------------------------------------------------------------------------------
# Images.

_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}   # DHT, JPG and DAC are not SOF


def jpeg_frame_info(data):
  """(SOF marker, sample precision, number of components) of a JPEG, or None if not found."""
  position = 2
  while position + 4 <= len(data):
    if data[position] != 0xFF:
      return None
    marker = data[position + 1]
    if marker == 0xFF:  # fill byte
      position += 1
      continue
    if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
      position += 2
      continue
    length = int.from_bytes(data[position + 2:position + 4], 'big')
    if marker in _SOF_MARKERS:
      if position + 10 > len(data):
        return None
      return marker, data[position + 4], data[position + 9]
    position += 2 + length
  return None


def _image_kind(data):
  for magic, kind in ((b'\x89PNG', 'PNG'), (b'GIF8', 'GIF'), (b'BM', 'BMP'),
                      (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'), (b'RIFF', 'WebP')):
    if data.startswith(magic):
      return kind
  return 'non-JPEG'


def _reencode_reason(data):
  """Why a decodable file must be re-encoded, or None when its bytes can be stored as they are."""
  if not data.startswith(b'\xff\xd8\xff'):
    return '%s data behind a .jpg name' % _image_kind(data)
  info = jpeg_frame_info(data)
  if info is None:
    return 'JPEG without a frame header'
  marker, precision, components = info
  if components != 3:
    return {1: 'grayscale JPEG', 4: 'CMYK JPEG'}.get(components, '%d-channel JPEG' % components)
  if precision != 8:
    return '%d-bit JPEG' % precision
  if marker not in (0xC0, 0xC1, 0xC2):
    return 'JPEG with uncommon coding (SOF 0x%X)' % marker
  return None


def load_image(path):
  """Reads and fully decodes an image file.

  Returns:
    (3-channel JPEG bytes to store, height, width, re-encode note or None).

  Raises:
    ImageError: naming the file, if it is empty, a truncated JPEG or not decodable.
  """
  with open(path, 'rb') as f:
    data = f.read()
  if not data:
    raise ImageError('%s is empty (0 bytes).' % path)
  is_jpeg = data.startswith(b'\xff\xd8\xff')
  # A truncated JPEG still "decodes" (grey fill) in libjpeg; the missing end-of-image marker
  # (FF D9) is what tells it apart.
  if is_jpeg and not data.rstrip(b'\x00\r\n\t ').endswith(b'\xff\xd9'):
    raise ImageError('%s is a truncated JPEG (no end-of-image marker).' % path)
  # Ignore EXIF orientation: tf.io.decode_jpeg does, and stored sizes must match its output.
  image = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
  if image is None or image.size == 0:
    raise ImageError('%s cannot be decoded as an image.' % path)
  height, width = image.shape[:2]
  reason = _reencode_reason(data)
  if reason is None:
    return data, height, width, None
  ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, REENCODE_QUALITY])
  if not ok:
    raise ImageError('%s could not be re-encoded as JPEG.' % path)
  return (encoded.tobytes(), height, width,
          '%s: re-encoded %s as a 3-channel RGB JPEG (quality %d).'
          % (path, reason, REENCODE_QUALITY))


# ----------------------------------------------------------------------------------------------
# One item.

def _skip(key, reason, warnings=()):
  return ItemResult(key, None, [], list(warnings), reason, None, None)


def load_item(voc_root, year_folder, image_id, class_names, keep_empty, annotated=True):
  """Reads, validates and serializes one image and its annotation (runs in a worker).

  Args:
    voc_root, year_folder, image_id: where the files are.
    class_names: known class names (labels 1..N).
    keep_empty: keep an image with no valid object (validation sets) instead of skipping it.
    annotated: False for a split without annotations (load_unannotated_item).

  Returns:
    An ItemResult: ``record`` is the serialized Example, or None with ``skip_reason`` set.
    Every warning names the file it is about.
  """
  key = '%s/%s' % (year_folder, image_id)
  if not annotated:
    return load_unannotated_item(voc_root, year_folder, image_id, class_names)
  xml_path = voc.annotation_path(voc_root, year_folder, image_id)
  jpg_path = voc.image_path(voc_root, year_folder, image_id)
  for path in (xml_path, jpg_path):
    if not os.path.isfile(path):
      hint = ''
      if path == xml_path and os.path.isfile(jpg_path):
        hint = (' (a split without annotations, such as the VOC2012 test set, converts with '
                '--unannotated_splits=%s:<split>)' % year_folder)
      return _skip(key, '%s is listed in the split file but missing on disk%s.' % (path, hint))
  try:
    annotation = voc.parse_annotation(xml_path)
    encoded, height, width, reencoded = load_image(jpg_path)
  except (voc.AnnotationError, ImageError, OSError) as e:
    return _skip(key, str(e))
  warnings = [reencoded] if reencoded else []
  if annotation.width is None or annotation.height is None:
    warnings.append('%s: <size> is missing or invalid; using the image size %dx%d.'
                    % (xml_path, width, height))
  elif (annotation.width, annotation.height) != (width, height):
    warnings.append('%s: <size> says %dx%d but %s is %dx%d; trusting the image.'
                    % (xml_path, annotation.width, annotation.height, jpg_path, width, height))
  objects, object_warnings = voc.sanitize_objects(annotation, width, height, class_names,
                                                  source=xml_path)
  warnings += object_warnings
  return _item_result(key, xml_path, encoded, image_id + '.jpg', height, width, objects,
                      class_names, keep_empty, warnings, reencoded)


def load_unannotated_item(voc_root, year_folder, image_id, class_names):
  """Serializes one image of a split without annotations: no object, the size decoded.

  The image is decoded in full (load_image), so its size is the one tf.io.decode_jpeg gives
  and a corrupt or truncated file is skipped with a reason naming it, as in annotated splits.
  Annotations/<id>.xml is not read even when it exists (module docstring).
  """
  key = '%s/%s' % (year_folder, image_id)
  jpg_path = voc.image_path(voc_root, year_folder, image_id)
  if not os.path.isfile(jpg_path):
    return _skip(key, '%s is listed in the split file but missing on disk.' % jpg_path)
  try:
    encoded, height, width, reencoded = load_image(jpg_path)
  except (ImageError, OSError) as e:
    return _skip(key, str(e))
  example = tfrecord_io.make_example(encoded, image_id + '.jpg', height, width, (), class_names)
  return ItemResult(key, example.SerializeToString(deterministic=True), [],
                    [reencoded] if reencoded else [], None, reencoded, None)


def _item_result(key, source, encoded, filename, height, width, objects, class_names,
                 keep_empty, warnings, reencoded, source_id=''):
  """The ItemResult of an image whose objects were validated (both formats)."""
  note = None
  if not objects:
    if not keep_empty:
      return _skip(key, '%s has no valid object left; kept out of the training set.' % source,
                   warnings)
    note = '%s has no valid object; kept as an image without objects.' % source
  example = tfrecord_io.make_example(encoded, filename, height, width, objects, class_names,
                                     source_id=source_id)
  return ItemResult(key, example.SerializeToString(deterministic=True), objects, warnings,
                    None, reencoded, note)


def load_coco_item(dataset, images_directory, index, keep_empty):
  """Reads, validates and serializes image ``index`` of a CocoDataset (runs in a worker).

  The boxes are in the pixels of the size the annotation file gives; an image file of another
  size is skipped (its boxes would be wrong), a missing size is taken from the file.
  """
  image = dataset.images[index]
  key = 'image %d (%s)' % (image.image_id, image.file_name)
  path = coco.image_path(images_directory, image)
  if not os.path.isfile(path):
    return _skip(key, '%s (image id %d of %s) is missing on disk.'
                 % (path, image.image_id, dataset.path))
  try:
    encoded, height, width, reencoded = load_image(path)
  except (ImageError, OSError) as e:
    return _skip(key, str(e))
  warnings = [reencoded] if reencoded else []
  listed = (image.width, image.height)
  if all(isinstance(v, int) and v > 0 for v in listed):
    if listed != (width, height):
      return _skip(key, '%s: image id %d is %dx%d in the annotations but %s is %dx%d; its '
                   'boxes cannot be trusted.' % (dataset.path, image.image_id, listed[0],
                                                 listed[1], path, width, height))
  else:
    warnings.append('%s: image id %d has no valid width/height; using the file\'s %dx%d.'
                    % (dataset.path, image.image_id, width, height))
  objects, object_warnings = coco.sanitize_objects(image, dataset.categories, width, height,
                                                   source=dataset.path)
  return _item_result(key, '%s image id %d' % (dataset.path, image.image_id), encoded,
                      image.file_name, height, width, objects, dataset.categories.names,
                      keep_empty, warnings + object_warnings, reencoded,
                      source_id=str(image.image_id))


# ----------------------------------------------------------------------------------------------
# One set of shards.

class _SetStats(object):
  """Counters of one output set (train or val)."""

  def __init__(self, name, specs, class_names, num_items, annotated=True):
    self.name = name
    self.specs = specs
    self.annotated = annotated
    self.class_names = class_names
    self.images_listed = num_items
    self.images_written = 0
    self.objects_per_class = collections.Counter()
    self.difficult = 0
    self.truncated = 0
    self.crowd = 0
    self.images_without_objects = 0

  def add(self, result):
    self.images_written += 1
    self.objects_per_class.update(obj.name for obj in result.objects)
    self.difficult += sum(obj.difficult for obj in result.objects)
    self.truncated += sum(obj.truncated for obj in result.objects)
    self.crowd += sum(getattr(obj, 'iscrowd', 0) for obj in result.objects)
    self.images_without_objects += int(not result.objects)

  def as_dict(self, shards):
    return {
        'splits': list(self.specs),
        'annotated': self.annotated,
        'images_listed': self.images_listed,
        'images_written': self.images_written,
        'images_without_objects': self.images_without_objects,
        'objects': sum(self.objects_per_class.values()),
        'objects_per_class': {name: self.objects_per_class[name] for name in self.class_names},
        'difficult': self.difficult,
        'truncated': self.truncated,
        'crowd': self.crowd,
        'shards': shards,
    }


class _Report(object):
  """Warnings, skips and re-encodes across sets; raises at the first warning when strict."""

  def __init__(self, strict):
    self.strict = strict
    self.warnings, self.skipped, self.reencoded, self.notes = [], [], [], []

  def warn(self, message):
    if self.strict:
      raise ConversionError('--strict: %s' % message)
    if len(self.warnings) < MAX_PRINTED_WARNINGS:
      logging.warning(message)
    elif len(self.warnings) == MAX_PRINTED_WARNINGS:
      logging.warning('More warnings follow; all are listed in %s.', SUMMARY_FILENAME)
    self.warnings.append(message)

  def add(self, result):
    for message in result.warnings:
      self.warn(message)
    if result.skip_reason:
      self.warn('skipped %s' % result.skip_reason)
      self.skipped.append({'image': result.key, 'reason': result.skip_reason})
    if result.reencoded:
      self.reencoded.append(result.key)
    if result.note:
      logging.info(result.note)
      self.notes.append(result.note)


def write_set(name, items, num_shards, temp_dir, executor, load_fn, report, stats):
  """Decodes items in parallel and deals the records round-robin into num_shards files.

  Returns:
    The list of final shard names; the files are in temp_dir under 'partial-<name>'.
  """
  shards = [tfrecord_io.shard_name(name, i, num_shards) for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(os.path.join(temp_dir, 'partial-' + shard))
             for shard in shards]
  counter = progress.Progress('%s: converting' % name, len(items), 'images')
  try:
    for start in range(0, len(items), BATCH_SIZE):
      batch = items[start:start + BATCH_SIZE]
      for result in executor.map(lambda item: load_fn(*item), batch):  # keeps input order
        report.add(result)
        if result.record is not None:
          writers[stats.images_written % num_shards].write(result.record)
          stats.add(result)
        counter.update()
    counter.finish()
  finally:
    for writer in writers:
      writer.close()
  return shards


# ----------------------------------------------------------------------------------------------
# Whole conversion.

def _remove_stale_temp_dirs(output_directory):
  """Removes temp folders left by killed runs (their process no longer exists)."""
  for path in glob.glob(os.path.join(output_directory, TEMP_PREFIX + '*')):
    pid = os.path.basename(path)[len(TEMP_PREFIX):].split('-')[0]
    if not pid.isdigit():
      continue
    try:
      os.kill(int(pid), 0)
    except ProcessLookupError:
      shutil.rmtree(path, ignore_errors=True)
    except PermissionError:
      pass


def _publish(output_directory, temp_dir, shards_per_set):
  """Moves finished shards into place, removing older shards of the same sets."""
  for name, shards in shards_per_set.items():
    pattern = os.path.join(output_directory, '%s-[0-9][0-9][0-9][0-9][0-9]-of-[0-9]*' % name)
    for old in glob.glob(pattern):
      if os.path.basename(old) not in shards:
        logging.info('Removing old shard %s.', old)
        os.remove(old)
  for shards in shards_per_set.values():
    for shard in shards:
      os.replace(os.path.join(temp_dir, 'partial-' + shard), os.path.join(output_directory, shard))


def _write_json_atomically(path, data):
  file_io.atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + '\n', mode='w')


def _split_label(spec):
  return '%s:%s' % spec


def _check_unannotated(train_specs, val_specs, unannotated_specs):
  """Raises ConversionError unless every unannotated split makes up the whole val set.

  Returns:
    True when the val set is converted without annotations.
  """
  for spec in unannotated_specs:
    label = _split_label(spec)
    if spec in train_specs:
      raise ConversionError('--unannotated_splits names %s, which is in --train_splits; '
                            'training needs annotations, so list it in --val_splits only.'
                            % label)
    if spec not in val_specs:
      raise ConversionError('--unannotated_splits names %s, which is not in --val_splits; list '
                            'it there too (--val_splits=%s).' % (label, label))
  annotated = [_split_label(spec) for spec in val_specs if spec not in unannotated_specs]
  if unannotated_specs and annotated:
    raise ConversionError(
        '--val_splits mixes splits with annotations (%s) and without (%s); such a set can be '
        'neither scored nor submitted: convert them into separate --output_directory folders.'
        % (','.join(annotated), ','.join(_split_label(spec) for spec in unannotated_specs)))
  return bool(unannotated_specs)


def _plan(dataset_directory, train_specs, val_specs, seed, report, keep_empty_images=False,
          unannotated_specs=()):
  """[(set name, split labels, shuffled items, keep_empty, annotated)], failing early on a
  missing split or a misplaced unannotated split.

  An item is (year_folder, image_id, keep_empty), plus False for a split without annotations.
  """
  if not os.path.isdir(dataset_directory):
    raise ConversionError('--dataset_directory %s is not a folder; point it at VOCdevkit or its '
                          'parent.' % dataset_directory)
  val_unannotated = _check_unannotated(train_specs, val_specs, unannotated_specs)
  plan = []
  for name, specs, keep_empty, offset, annotated in (
      ('train', train_specs, keep_empty_images, 0, True),
      ('val', val_specs, True, 1, not val_unannotated)):
    if specs:
      items = shuffled(list_items(dataset_directory, specs), seed + offset)
      extra = () if annotated else (False,)
      plan.append((name, [_split_label(spec) for spec in specs],
                   [(year, image_id, keep_empty) + extra for year, image_id in items],
                   keep_empty, annotated))
  if len(plan) == 2:
    shared = sorted(set(item[:2] for item in plan[0][2]) & set(item[:2] for item in plan[1][2]))
    if shared:
      report.warn('%d images are in both the train and val splits (e.g. %s/%s); the '
                  'evaluation will be optimistic.' % ((len(shared),) + shared[0]))
  if not plan:
    raise ConversionError('Both --train_splits and --val_splits are empty; nothing to convert.')
  return plan


def _check_counts(train_shards, val_shards, num_workers):
  if min(train_shards, val_shards) < 1 or num_workers < 1:
    raise ConversionError('--train_shards, --val_shards and --num_workers must be >= 1.')


def _write_plan(plan, output_directory, load_fn, shards_of, num_workers, report, class_names):
  """Writes every set of plan (one code path for all formats); returns {set name: stats dict}.

  Args:
    plan: [(set name, split labels, items, keep_empty, annotated)]; load_fn(*item) ->
      ItemResult.
    shards_of: set name -> number of shards.

  Raises:
    ConversionError: when a set has no image left; nothing is written to the final names then.
  """
  os.makedirs(output_directory, exist_ok=True)
  _remove_stale_temp_dirs(output_directory)
  temp_dir = tempfile.mkdtemp(prefix='%s%d-' % (TEMP_PREFIX, os.getpid()), dir=output_directory)
  sets, shards_per_set = {}, {}
  executor = concurrent.futures.ThreadPoolExecutor(num_workers)
  try:
    with executor:
      for name, split_labels, items, _, annotated in plan:
        stats = _SetStats(name, split_labels, class_names, len(items), annotated)
        shards = write_set(name, items, shards_of(name), temp_dir, executor, load_fn, report,
                           stats)
        if not stats.images_written:
          raise ConversionError('No image of %s could be converted; see the warnings above.'
                                % ','.join(split_labels))
        sets[name], shards_per_set[name] = stats.as_dict(shards), shards
    _publish(output_directory, temp_dir, shards_per_set)
  except BaseException:
    executor.shutdown(wait=True, cancel_futures=True)  # stop queued work before cleaning up
    raise
  finally:
    shutil.rmtree(temp_dir, ignore_errors=True)
  return sets


def _summary(source, output_directory, class_names, sets, report, start, extra=None,
             images=None):
  """The conversion summary, also written (atomically) as DIR/conversion_summary.json.

  images: how many images this run read (default: all of sets) for images_per_sec.
  """
  seconds = time.time() - start
  if images is None:
    images = sum(s['images_listed'] for s in sets.values())
  summary = {'dataset_directory': source, 'output_directory': output_directory,
             'class_names': list(class_names)}
  summary.update(extra or {})
  summary.update({
      'sets': sets, 'skipped': report.skipped,
      'reencoded': report.reencoded, 'num_warnings': len(report.warnings),
      'warnings': report.warnings, 'notes': report.notes, 'seconds': round(seconds, 3),
      'images_per_sec': round(images / max(seconds, 1e-9), 1),
  })
  _write_json_atomically(os.path.join(output_directory, SUMMARY_FILENAME), summary)
  return summary


def convert(dataset_directory, output_directory, train_specs, val_specs, train_shards=16,
            val_shards=16, num_workers=2, strict=False, class_names=label_utils.VOC_CLASSES,
            seed=0, load_fn=None, keep_empty_images=False, unannotated_specs=()):
  """Converts the listed VOC splits; returns the summary dict (also written as JSON).

  Args:
    dataset_directory: VOCdevkit folder or its parent.
    output_directory: receives the shards and conversion_summary.json (created if needed).
    train_specs, val_specs: lists of SplitSpec; an empty list skips that set.
    train_shards, val_shards: number of shard files per set.
    num_workers: decoding threads.
    strict: raise ConversionError at the first warning.
    class_names: names of labels 1..N.
    seed: shuffling seed.
    load_fn: replaces ``load_item``: (year_folder, image_id, keep_empty) -> ItemResult; the
      items of an unannotated split pass a fourth argument, annotated=False.
    keep_empty_images: also write training images without objects (negatives only).
    unannotated_specs: SplitSpecs of val_specs read without annotations (the VOC2012 test
      set): records without objects, "annotated": false in the summary.

  Raises:
    ConversionError, voc.DatasetLayoutError: nothing is written to the final names then.
  """
  _check_counts(train_shards, val_shards, num_workers)
  start = time.time()
  report = _Report(strict)
  plan = _plan(dataset_directory, train_specs, val_specs, seed, report, keep_empty_images,
               unannotated_specs)
  if load_fn is None:
    def load_fn(year_folder, image_id, keep_empty, annotated=True):
      return load_item(dataset_directory, year_folder, image_id, class_names, keep_empty,
                       annotated)
  sets = _write_plan(plan, output_directory, load_fn,
                     lambda name: train_shards if name == 'train' else val_shards,
                     num_workers, report, class_names)
  return _summary(dataset_directory, output_directory, class_names, sets, report, start)


def _sets_kept_from(output_directory, class_names, category_ids, split_name):
  """The other sets of an earlier COCO conversion into output_directory (one split per run).

  Raises:
    ConversionError: when that conversion has other categories (its shards would disagree).
  """
  path = os.path.join(output_directory, SUMMARY_FILENAME)
  if not os.path.isfile(path):
    return {}
  with open(path, encoding='utf-8') as f:
    old = json.load(f)
  kept = {name: stats for name, stats in old.get('sets', {}).items() if name != split_name
          and all(os.path.isfile(os.path.join(output_directory, shard))
                  for shard in stats.get('shards', ()))}
  if kept and (old.get('class_names') != list(class_names)
               or old.get('category_ids') != list(category_ids)):
    raise ConversionError(
        '%s holds the %s set of a conversion with other categories; write this split to an '
        'empty --output_directory or convert every split from the same category list.'
        % (output_directory, '/'.join(sorted(kept))))
  return kept


def convert_coco(annotations, images_directory, output_directory, split_name='train',
                 num_shards=16, num_workers=2, strict=False, seed=0):
  """Converts one COCO-format split (instances JSON + image folder) into <split_name>-* shards.

  Images without (valid) annotations are kept: they are negatives. The summary keeps the other
  split of an earlier run into the same output_directory.

  Returns:
    The summary dict (also written as conversion_summary.json), with "category_ids".

  Raises:
    ConversionError, coco.CocoFormatError: nothing is written to the final names then.
  """
  _check_counts(num_shards, num_shards, num_workers)
  if not split_name or '/' in split_name or split_name.startswith('.'):
    raise ConversionError('--split_name %r must be a plain name such as train or val.'
                          % split_name)
  if not os.path.isdir(images_directory or ''):
    raise ConversionError('--images %s is not a folder; point it at the folder of the images '
                          'that %s lists.' % (images_directory, annotations))
  start = time.time()
  report = _Report(strict)
  dataset = coco.load(annotations)
  for message in dataset.warnings:
    report.warn(message)
  class_names, category_ids = dataset.categories.names, dataset.categories.ids
  kept = _sets_kept_from(output_directory, class_names, category_ids, split_name)
  items = shuffled([(index, True) for index in range(len(dataset.images))], seed)
  plan = [(split_name, [annotations], items, True, True)]

  def load_fn(index, keep_empty):
    return load_coco_item(dataset, images_directory, index, keep_empty)

  sets = _write_plan(plan, output_directory, load_fn, lambda name: num_shards, num_workers,
                     report, class_names)
  kept.update(sets)
  return _summary(images_directory, output_directory, class_names, kept, report, start,
                  extra={'format': 'coco', 'annotations': annotations,
                         'category_ids': list(category_ids)}, images=len(items))


def format_summary(summary):
  """Human-readable summary lines."""
  lines = []
  for name, s in summary['sets'].items():
    lines.append('%s (%s%s): %d of %d images written to %d shards, %d objects (%d difficult, '
                 '%d truncated, %d crowd), %d images without objects'
                 % (name, ','.join(s['splits']),
                    '' if s.get('annotated', True) else ', without annotations',
                    s['images_written'], s['images_listed'], len(s['shards']), s['objects'],
                    s['difficult'], s['truncated'], s.get('crowd', 0),
                    s['images_without_objects']))
    lines += ['  %-12s %6d' % (cls, count) for cls, count in s['objects_per_class'].items()]
  lines.append('skipped %d images:' % len(summary['skipped']))
  lines += ['  %s' % item['reason'] for item in summary['skipped']]
  lines.append('re-encoded %d images, %d warnings in total'
               % (len(summary['reencoded']), summary['num_warnings']))
  lines.append('%.1f s, %.1f images/s' % (summary['seconds'], summary['images_per_sec']))
  return lines


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_enum('format', 'voc', ['voc', 'coco'], 'Input layout: a VOCdevkit (voc) or a '
                    'COCO instances JSON plus its image folder (coco).')
  flags.DEFINE_string('dataset_directory', None, 'VOC: the VOCdevkit folder or its parent.')
  flags.DEFINE_string('annotations', None, 'COCO: the instances_*.json file.')
  flags.DEFINE_string('images', None, 'COCO: the folder of the images the file lists.')
  flags.DEFINE_string('split_name', 'train', 'COCO: the set to write (train or val: '
                      'training reads train-*, evaluation val-*).')
  flags.DEFINE_string('output_directory', None, 'Folder that receives the shards.')
  flags.DEFINE_string('train_splits', 'VOC2007:trainval,VOC2012:trainval',
                      'YEAR:SPLIT list for the train set; empty skips it.')
  flags.DEFINE_string('val_splits', 'VOC2007:test', 'YEAR:SPLIT list for the val set; empty '
                      'skips it.')
  flags.DEFINE_integer('train_shards', 16, 'Number of train shards (COCO: of the split).')
  flags.DEFINE_integer('val_shards', 16, 'Number of val shards.')
  flags.DEFINE_integer('num_workers', 2, 'Decoding threads.')
  flags.DEFINE_bool('strict', False, 'Fail at the first warning, naming the file.')
  flags.DEFINE_string('class_names', 'voc', "VOC: 'voc', a comma-separated list, or a labels "
                      "file (COCO takes the file's categories).")
  flags.DEFINE_integer('seed', 0, 'Seed of the record shuffle.')
  flags.DEFINE_bool('keep_empty_images', False, 'VOC: also write training images without '
                    'objects (negatives; train with --min_negatives_per_image > 0 to learn '
                    'from them). Validation images without objects are always kept.')
  flags.DEFINE_string('unannotated_splits', '', 'VOC: YEAR:SPLIT list of --val_splits entries '
                      'that have no annotations (the VOC2012 test set): read the images alone, '
                      'write records without objects; eval_ssd.py then writes a submission for '
                      'the evaluation server instead of computing AP.')
  flags.mark_flags_as_required(['output_directory'])


def _run_from_flags():
  if FLAGS.format == 'coco':
    if not FLAGS.annotations or not FLAGS.images:
      raise ConversionError('--format=coco needs --annotations=FILE and --images=DIR.')
    return convert_coco(FLAGS.annotations, FLAGS.images, FLAGS.output_directory,
                        FLAGS.split_name, FLAGS.train_shards, FLAGS.num_workers, FLAGS.strict,
                        FLAGS.seed)
  if not FLAGS.dataset_directory:
    raise ConversionError('--dataset_directory is required for --format=voc.')
  return convert(FLAGS.dataset_directory, FLAGS.output_directory,
                 parse_split_specs(FLAGS.train_splits, 'train_splits'),
                 parse_split_specs(FLAGS.val_splits, 'val_splits'),
                 FLAGS.train_shards, FLAGS.val_shards, FLAGS.num_workers, FLAGS.strict,
                 label_utils.load_class_names(FLAGS.class_names), FLAGS.seed,
                 keep_empty_images=FLAGS.keep_empty_images,
                 unannotated_specs=parse_split_specs(FLAGS.unannotated_splits,
                                                     'unannotated_splits'))


def main(argv):
  del argv
  try:
    summary = _run_from_flags()
  except (ConversionError, ValueError) as e:
    sys.exit('Error: %s' % e)
  print('\n'.join(format_summary(summary)))
  print('Wrote %s' % os.path.join(FLAGS.output_directory, SUMMARY_FILENAME))


if __name__ == '__main__':
  define_flags()
  app.run(main)
