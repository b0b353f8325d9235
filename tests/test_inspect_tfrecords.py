import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dataset import inspect_tfrecords
from dataset import tfrecord_io
from dataset import voc


def _record(height, width, objects):
  jpeg = cv2.imencode('.jpg', np.zeros((height, width, 3), np.uint8))[1].tobytes()
  return tfrecord_io.make_example(jpeg, 'x.jpg', height, width, objects).SerializeToString()


def _write_shard(path, records):
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      writer.write(record)


@pytest.fixture
def shards(tmp_path):
  dog = voc.VocObject('dog', 1, 1, 5, 5)
  _write_shard(str(tmp_path / 'train-00000-of-00002'), [
      _record(30, 40, [dog, voc.VocObject('cat', 2, 2, 8, 8, difficult=1)]),
      _record(12, 50, [])])
  _write_shard(str(tmp_path / 'train-00001-of-00002'), [
      _record(64, 20, [dog, dog._replace(truncated=1, difficult=1)])])
  _write_shard(str(tmp_path / 'val-00000-of-00001'), [_record(10, 10, [dog])])
  return str(tmp_path)


def test_inspect_counts_records_objects_and_sizes(shards):
  report = inspect_tfrecords.inspect_shards(os.path.join(shards, 'train-*'))
  assert report['files'] == [os.path.join(shards, 'train-00000-of-00002'),
                             os.path.join(shards, 'train-00001-of-00002')]
  assert (report['records'], report['objects'], report['images_without_objects']) == (3, 4, 1)
  assert report['objects_per_class'] == {'cat': 1, 'dog': 3}
  assert report['labels_per_class'] == {'cat': [8], 'dog': [12]}
  assert (report['difficult'], report['truncated']) == (2, 1)
  assert (report['min_height'], report['max_height']) == (12, 64)
  assert (report['min_width'], report['max_width']) == (20, 50)
  assert inspect_tfrecords.format_report(report) == [
      '2 files, 3 records, 4 objects (2 difficult, 1 truncated), 1 images without objects',
      'image height 12..64, width 20..50',
      '  cat          label 8           1',
      '  dog          label 12          3']


def test_inspect_empty_shard_and_missing_pattern(shards, tmp_path):
  empty = str(tmp_path / 'empty-00000-of-00001')
  _write_shard(empty, [])
  report = inspect_tfrecords.inspect_shards(empty)
  assert (report['records'], report['objects'], report['min_height']) == (0, 0, None)
  assert inspect_tfrecords.format_report(report) == [
      '1 files, 0 records, 0 objects (0 difficult, 0 truncated), 0 images without objects']
  with pytest.raises(ValueError, match="--pattern '.*nothing-\\*' matches no file"):
    inspect_tfrecords.inspect_shards(os.path.join(shards, 'nothing-*'))
