import collections
import fnmatch
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dataset import convert_tfrecords as convert
from dataset import tfrecord_io
from dataset import voc
from utility import labels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [convert.SplitSpec('VOC2007', 'trainval')]
VAL = [convert.SplitSpec('VOC2007', 'test')]


def _object(name, box, difficult=None, truncated=None):
  tags = ''.join('<%s>%s</%s>' % (t, v, t) for t, v in (('difficult', difficult),
                                                        ('truncated', truncated)) if v is not None)
  coords = ''.join('<%s>%s</%s>' % (t, v, t) for t, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box))
  return '<object><name>%s</name><pose>Left</pose>%s<bndbox>%s</bndbox></object>' % (
      name, tags, coords)


def _xml(width, height, objects):
  size = '<size><width>%d</width><height>%d</height><depth>3</depth></size>' % (width, height)
  return '<annotation><folder>VOC2007</folder>%s%s</annotation>' % (size, ''.join(objects))


def _jpeg(width, height):
  image = np.zeros((height, width, 3), np.uint8)
  image[:, :, 1] = np.arange(width, dtype=np.uint8)[None, :] * 3
  return cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


GOOD = {  # id -> (width, height, objects); boxes are (xmin, ymin, xmax, ymax) VOC pixels
    '000001': (40, 30, [('dog', (1, 1, 40, 30), None, None), ('person', (5, 6, 20, 25), 1, 1)]),
    '000002': (32, 48, [('cat', (2.5, 3, 31, 47.5), 0, 0)]),
    'bild_ä': (24, 24, [('horse', (3, 4, 20, 22), 0, 0)]),
}


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data if isinstance(data, bytes) else data.encode('utf-8'))


def build_tree(root):
  """A tiny VOC2007 tree with good and bad cases; returns the VOCdevkit parent folder."""
  year = os.path.join(str(root), 'VOCdevkit', 'VOC2007')

  def add(image_id, xml=None, image=None):
    if xml is not None:
      _write(os.path.join(year, 'Annotations', image_id + '.xml'), xml)
    if image is not None:
      _write(os.path.join(year, 'JPEGImages', image_id + '.jpg'), image)

  for image_id, (width, height, objects) in GOOD.items():
    add(image_id, _xml(width, height, [_object(*o) for o in objects]), _jpeg(width, height))
  one_dog = [_object('dog', (2, 2, 10, 10))]
  add('000003', _xml(20, 20, one_dog), b'')                               # zero-byte JPEG
  add('000004', _xml(20, 20, one_dog), _jpeg(20, 20)[:200])               # truncated JPEG
  png = cv2.imencode('.png', np.full((20, 30, 3), 90, np.uint8))[1].tobytes()
  add('000005', _xml(30, 20, one_dog), png)                               # PNG behind .jpg
  gray = cv2.imencode('.jpg', np.full((16, 12), 77, np.uint8))[1].tobytes()
  add('000006', _xml(12, 16, one_dog), gray)                              # grayscale JPEG
  add('000007', '<annotation><object>', _jpeg(20, 20))                     # bad XML
  add('000008', _xml(50, 50, one_dog), _jpeg(40, 20))                      # size mismatch
  add('000009', _xml(40, 30, [_object('dog', (30, 5, 10, 20)),             # xmin > xmax
                              _object('cat', (-4, 10, 45, 35)),            # clipped
                              _object('cat', (41, 1, 60, 10)),             # outside
                              _object('unicorn', (2, 2, 9, 9)),            # unknown class
                              _object('bird', (3, 4, 5, 6), 1)]), _jpeg(40, 30))
  # 000010 is listed but missing on disk.
  add('000011', _xml(20, 20, [_object('unicorn', (2, 2, 9, 9))]), _jpeg(20, 20))  # none left
  add('000012', '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
      '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><annotation>&b;</annotation>',
      _jpeg(20, 20))                                                       # entity bomb
  add('000020', _xml(20, 20, [_object('sheep', (1, 1, 10, 20), 1, 0)]), _jpeg(20, 20))
  add('000021', _xml(20, 20, [_object('unicorn', (2, 2, 9, 9))]), _jpeg(20, 20))  # kept in val
  trainval = ['000001', '000002', '', '000003', '000004', '000005', '000006', '000007',
              '000008', '000009', '000010', '000011', '000012', 'bild_ä', '000002']
  split_dir = os.path.join(year, 'ImageSets', 'Main')
  _write(os.path.join(split_dir, 'trainval.txt'),
         b'\xef\xbb\xbf' + '\r\n'.join(trainval).encode('utf-8') + b'\r\n')
  _write(os.path.join(split_dir, 'test.txt'), '000020\n000021\n')
  return str(root)


def read_records(pattern):
  """{filename: decoded dict} of every record in the files matching pattern."""
  paths = sorted(glob.glob(pattern))
  with tf.Graph().as_default():
    dataset = tf.data.TFRecordDataset(paths).map(tfrecord_io.decode_example)
    element = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    decoded = {}
    with tf.compat.v1.Session() as sess:
      while True:
        try:
          record = sess.run(element)
        except tf.errors.OutOfRangeError:
          return decoded
        decoded[record['filename'].decode('utf-8')] = record


def _normalized(box, width, height):
  xmin, ymin, xmax, ymax = box
  return np.array([(ymin - 1) / height, (xmin - 1) / width, ymax / height, xmax / width],
                  np.float32)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  root = build_tree(tmp_path_factory.mktemp('voc'))
  out = str(tmp_path_factory.mktemp('records'))
  summary = convert.convert(root, out, TRAIN, VAL, train_shards=3, val_shards=2, num_workers=2)
  return root, out, summary, read_records(os.path.join(out, 'train-*')), read_records(
      os.path.join(out, 'val-*'))


def test_output_files(converted):
  _, out, summary, _, _ = converted
  assert sorted(os.listdir(out)) == [
      'conversion_summary.json', 'train-00000-of-00003', 'train-00001-of-00003',
      'train-00002-of-00003', 'val-00000-of-00002', 'val-00001-of-00002']
  with open(os.path.join(out, 'conversion_summary.json'), encoding='utf-8') as f:
    assert json.load(f)['sets'] == summary['sets']


def test_good_images_round_trip_exactly(converted):
  _, _, _, train, _ = converted
  for image_id, (width, height, objects) in GOOD.items():
    record = train[image_id + '.jpg']
    assert record['image'].shape == (height, width, 3)
    assert (record['height'], record['width']) == (height, width)
    expected = np.stack([_normalized(box, width, height) for _, box, _, _ in objects])
    np.testing.assert_array_equal(record['boxes'], expected)
    assert record['labels'].tolist() == [labels.name_to_label()[name]
                                         for name, _, _, _ in objects]
    assert record['difficult'].tolist() == [d or 0 for _, _, d, _ in objects]
    assert record['truncated'].tolist() == [t or 0 for _, _, _, t in objects]


def test_train_set_contents_and_bad_case_outcomes(converted):
  root, _, summary, train, _ = converted
  assert sorted(train) == ['000001.jpg', '000002.jpg', '000005.jpg', '000006.jpg',
                           '000008.jpg', '000009.jpg', 'bild_ä.jpg']
  year = os.path.join(root, 'VOCdevkit', 'VOC2007')
  skipped = {item['image']: item['reason'] for item in summary['skipped']}
  assert skipped == {
      'VOC2007/000003': '%s is empty (0 bytes).' % os.path.join(year, 'JPEGImages', '000003.jpg'),
      'VOC2007/000004': '%s is a truncated JPEG (no end-of-image marker).'
                        % os.path.join(year, 'JPEGImages', '000004.jpg'),
      'VOC2007/000007': skipped['VOC2007/000007'],
      'VOC2007/000010': '%s is listed in the split file but missing on disk.'
                        % os.path.join(year, 'Annotations', '000010.xml'),
      'VOC2007/000011': '%s has no valid object left; kept out of the training set.'
                        % os.path.join(year, 'Annotations', '000011.xml'),
      'VOC2007/000012': '%s: DOCTYPE declarations are not allowed in VOC annotations.'
                        % os.path.join(year, 'Annotations', '000012.xml'),
  }
  assert skipped['VOC2007/000007'].startswith(
      '%s is not well-formed XML' % os.path.join(year, 'Annotations', '000007.xml'))
  assert sorted(summary['reencoded']) == ['VOC2007/000005', 'VOC2007/000006']
  warnings = '\n'.join(summary['warnings'])
  assert ('%s: re-encoded PNG data behind a .jpg name as a 3-channel RGB JPEG (quality 95).'
          % os.path.join(year, 'JPEGImages', '000005.jpg')) in warnings
  assert ('%s: re-encoded grayscale JPEG' % os.path.join(year, 'JPEGImages', '000006.jpg')
          in warnings)
  assert ('%s: <size> says 50x50 but %s is 40x20; trusting the image.'
          % (os.path.join(year, 'Annotations', '000008.xml'),
             os.path.join(year, 'JPEGImages', '000008.jpg'))) in warnings
  xml_9 = os.path.join(year, 'Annotations', '000009.xml')
  for expected in ("object 0: dropped box 'dog' (30, 5, 10, 20): xmin > xmax",
                   "object 1: clipped box 'cat' (-4, 10, 45, 35) to the 40x30 image: "
                   "(1, 10, 40, 30)",
                   "object 2: dropped box 'cat' (41, 1, 60, 10): zero area",
                   "object 3: dropped object with unknown class 'unicorn'"):
    assert '%s: %s' % (xml_9, expected) in warnings


def test_repaired_images(converted):
  _, _, _, train, _ = converted
  png, gray, mismatch, boxes = (train[i + '.jpg'] for i in ('000005', '000006', '000008',
                                                            '000009'))
  assert png['image'].shape == (20, 30, 3)
  np.testing.assert_allclose(png['image'], 90, atol=2)
  assert gray['image'].shape == (16, 12, 3)
  np.testing.assert_allclose(gray['image'], 77, atol=2)
  # Normalized by the real 40x20 image, not the 50x50 the XML claims.
  np.testing.assert_array_equal(mismatch['boxes'], [_normalized((2, 2, 10, 10), 40, 20)])
  np.testing.assert_array_equal(boxes['boxes'], [_normalized((1, 10, 40, 30), 40, 30),
                                                 _normalized((3, 4, 5, 6), 40, 30)])
  assert boxes['labels'].tolist() == [8, 3] and boxes['difficult'].tolist() == [0, 1]


def test_stored_jpeg_bytes_are_the_files_on_disk_or_3_channel(converted):
  root, out, _, _, _ = converted
  year = os.path.join(root, 'VOCdevkit', 'VOC2007', 'JPEGImages')
  for path in glob.glob(os.path.join(out, 'train-*')):
    for record in tf.compat.v1.io.tf_record_iterator(path):
      feature = tf.train.Example.FromString(record).features.feature
      encoded = feature['image/encoded'].bytes_list.value[0]
      filename = feature['image/filename'].bytes_list.value[0].decode('utf-8')
      with open(os.path.join(year, filename), 'rb') as f:
        on_disk = f.read()
      if filename in ('000005.jpg', '000006.jpg'):
        assert convert.jpeg_frame_info(encoded) == (0xC0, 8, 3)
      else:
        assert encoded == on_disk


def test_val_keeps_images_without_objects_and_counts(converted):
  _, out, summary, train, val = converted
  assert sorted(val) == ['000020.jpg', '000021.jpg']
  assert val['000021.jpg']['num_boxes'] == 0 and val['000021.jpg']['boxes'].shape == (0, 4)
  assert val['000020.jpg']['difficult'].tolist() == [1]
  assert summary['sets']['val']['images_without_objects'] == 1
  counts = collections.Counter(labels.label_to_name()[label] for r in train.values()
                               for label in r['labels'])
  per_class = {k: v for k, v in summary['sets']['train']['objects_per_class'].items() if v}
  assert per_class == dict(counts) == {'dog': 4, 'person': 1, 'cat': 2, 'horse': 1, 'bird': 1}
  train_summary = summary['sets']['train']
  assert (train_summary['images_listed'], train_summary['images_written']) == (13, 7)
  assert (train_summary['difficult'], train_summary['truncated']) == (2, 1)
  assert train_summary['shards'] == ['train-00000-of-00003', 'train-00001-of-00003',
                                     'train-00002-of-00003']


def test_rerun_gives_identical_bytes_and_removes_stale_shards(converted, tmp_path):
  root, out, _, _, _ = converted
  other = str(tmp_path / 'again')
  os.makedirs(other)
  open(os.path.join(other, 'train-00000-of-00008'), 'wb').close()
  convert.convert(root, other, TRAIN, VAL, train_shards=3, val_shards=2, num_workers=1)
  names = sorted(n for n in os.listdir(out) if n != 'conversion_summary.json')
  assert sorted(n for n in os.listdir(other) if n != 'conversion_summary.json') == names
  for name in names:
    with open(os.path.join(out, name), 'rb') as a, open(os.path.join(other, name), 'rb') as b:
      assert a.read() == b.read(), name


def _shard_like_files(folder):
  """Files anywhere under folder whose name looks like a finished shard."""
  return [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names
          if fnmatch.fnmatch(n, 'train-*-of-*') or fnmatch.fnmatch(n, 'val-*-of-*')]


def test_failure_mid_way_leaves_no_shards(converted, tmp_path):
  root, _, _, _, _ = converted
  calls = []

  def failing_load(year, image_id, keep_empty):
    calls.append(image_id)
    if len(calls) == 4:
      raise RuntimeError('worker died')
    return convert.load_item(root, year, image_id, ('dog', 'cat'), keep_empty)

  out = str(tmp_path / 'out')
  with pytest.raises(RuntimeError, match='worker died'):
    convert.convert(root, out, TRAIN, VAL, train_shards=2, val_shards=1, num_workers=2,
                    load_fn=failing_load)
  assert os.listdir(out) == []


def test_killed_process_leaves_no_complete_looking_shards(converted, tmp_path):
  root, _, _, _, _ = converted
  out = str(tmp_path / 'killed')
  # The process dies hard (no cleanup) while the val set is being written.
  script = (
      'import os, sys\n'
      'sys.path.insert(0, %r)\n'
      'from dataset import convert_tfrecords as c\n'
      'def load(year, image_id, keep_empty):\n'
      '  if image_id == "000021": os._exit(3)\n'
      '  return c.load_item(%r, year, image_id, ("dog", "cat"), keep_empty)\n'
      'c.convert(%r, %r, c.parse_split_specs("VOC2007:trainval", "t"),\n'
      '          c.parse_split_specs("VOC2007:test", "v"), 2, 1, 1, load_fn=load)\n'
      % (REPO, root, root, out))
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, timeout=120)
  assert result.returncode == 3, result.stderr.decode()
  assert _shard_like_files(out) == []
  (temp_dir,) = os.listdir(out)
  assert temp_dir.startswith(convert.TEMP_PREFIX)
  assert sorted(os.listdir(os.path.join(out, temp_dir))) == [
      'partial-train-00000-of-00002', 'partial-train-00001-of-00002', 'partial-val-00000-of-00001']
  # The next run cleans the dead run's temporary folder.
  convert.convert(root, out, TRAIN, [], train_shards=1, num_workers=1)
  assert sorted(os.listdir(out)) == ['conversion_summary.json', 'train-00000-of-00001']


def test_strict_fails_at_the_first_warning_naming_the_file(converted, tmp_path):
  root, _, _, _, _ = converted
  out = str(tmp_path / 'strict')
  with pytest.raises(convert.ConversionError) as error:
    convert.convert(root, out, TRAIN, VAL, num_workers=2, strict=True)
  assert str(error.value).startswith('--strict: ')
  assert os.path.join(root, 'VOCdevkit', 'VOC2007') in str(error.value)
  assert os.listdir(out) == []


def test_strict_command_line_exits_non_zero(converted, tmp_path):
  root, _, _, _, _ = converted
  out = str(tmp_path / 'cli')
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'dataset', 'convert_tfrecords.py'),
       '--dataset_directory=' + root, '--output_directory=' + out,
       '--train_splits=VOC2007:trainval', '--val_splits=', '--strict', '--num_workers=1'],
      capture_output=True, timeout=120)
  stderr = result.stderr.decode('utf-8')
  assert result.returncode == 1
  assert 'Error: --strict: ' in stderr
  assert os.path.join(root, 'VOCdevkit', 'VOC2007') in stderr
  assert _shard_like_files(out) == []


def test_missing_year_folder_is_a_clear_error(converted, tmp_path):
  root, _, _, _, _ = converted
  with pytest.raises(voc.DatasetLayoutError, match='--train_splits=VOC2007:trainval'):
    convert.convert(root, str(tmp_path / 'x'), convert.parse_split_specs(
        'VOC2007:trainval,VOC2012:trainval', 'train_splits'), VAL)
  assert not os.path.exists(str(tmp_path / 'x'))


def test_train_val_overlap_is_a_warning(converted, tmp_path):
  root, _, _, _, _ = converted
  summary = convert.convert(root, str(tmp_path / 'o'), VAL, VAL, 1, 1, num_workers=1)
  assert summary['warnings'][0].startswith('2 images are in both the train and val splits')


def test_parse_split_specs():
  assert convert.parse_split_specs('VOC2007:trainval, VOC2012:trainval,', 'train_splits') == [
      convert.SplitSpec('VOC2007', 'trainval'), convert.SplitSpec('VOC2012', 'trainval')]
  assert convert.parse_split_specs('', 'val_splits') == []
  with pytest.raises(convert.ConversionError,
                     match="--val_splits entry 'VOC2007' must look like VOC2007:trainval"):
    convert.parse_split_specs('VOC2007', 'val_splits')


def test_jpeg_frame_info_and_reencode_reasons():
  colour = cv2.imencode('.jpg', np.zeros((4, 4, 3), np.uint8))[1].tobytes()
  progressive = cv2.imencode('.jpg', np.zeros((4, 4, 3), np.uint8),
                             [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
  assert convert.jpeg_frame_info(colour) == (0xC0, 8, 3)
  assert convert.jpeg_frame_info(progressive) == (0xC2, 8, 3)
  assert convert._reencode_reason(colour) is None
  assert convert._reencode_reason(progressive) is None
  # SOI, then a SOF0 segment declaring 4 components (CMYK).
  cmyk = b'\xff\xd8' + b'\xff\xc0\x00\x14\x08\x00\x04\x00\x04\x04' + b'\x00' * 12
  assert convert.jpeg_frame_info(cmyk) == (0xC0, 8, 4)
  assert convert._reencode_reason(b'\xff\xd8\xff' + cmyk[3:]) == 'CMYK JPEG'
  assert convert._reencode_reason(b'GIF89a...') == 'GIF data behind a .jpg name'
