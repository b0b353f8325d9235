import cv2
import numpy as np
import pytest
import tensorflow as tf

from dataset import tfrecord_io
from dataset import voc

FORMAT_KEYS = {
    'image/encoded', 'image/format', 'image/filename', 'image/height', 'image/width',
    'image/channels', 'image/shape', 'image/object/bbox/xmin', 'image/object/bbox/ymin',
    'image/object/bbox/xmax', 'image/object/bbox/ymax', 'image/object/bbox/label',
    'image/object/bbox/label_text', 'image/object/bbox/difficult', 'image/object/bbox/truncated',
    'image/source_id', 'image/object/area', 'image/object/iscrowd',
}

# A 40 x 30 (w x h) image: the first box is the whole image, the second a fractional VOC2012 box.
OBJECTS = [voc.VocObject('dog', 1, 1, 40, 30, difficult=0, truncated=1),
           voc.VocObject('aeroplane', 10.5, 4, 20, 12, difficult=1, truncated=0)]
EXPECTED_BOXES = np.array([[0., 0., 1., 1.],
                           [3. / 30, 9.5 / 40, 12. / 30, 20. / 40]], np.float32)


def _jpeg(height=30, width=40, colour=(200, 40, 10)):
  image = np.zeros((height, width, 3), np.uint8)
  image[:] = colour[::-1]  # cv2 is BGR
  return cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _decode(serialized_records):
  with tf.Graph().as_default():
    dataset = tf.data.Dataset.from_tensor_slices(serialized_records)
    dataset = dataset.map(tfrecord_io.decode_example)
    element = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    with tf.compat.v1.Session() as sess:
      return [sess.run(element) for _ in serialized_records]


def test_shard_name():
  assert tfrecord_io.shard_name('train', 0, 16) == 'train-00000-of-00016'
  assert tfrecord_io.shard_name('val', 12, 128) == 'val-00012-of-00128'


def test_make_example_has_exactly_the_spec_keys_and_values():
  jpeg = _jpeg()
  example = tfrecord_io.make_example(jpeg, '000005.jpg', 30, 40, OBJECTS)
  feature = example.features.feature
  assert set(feature) == FORMAT_KEYS
  assert feature['image/encoded'].bytes_list.value == [jpeg]
  assert feature['image/format'].bytes_list.value == [b'JPEG']
  assert feature['image/filename'].bytes_list.value == [b'000005.jpg']
  assert feature['image/shape'].int64_list.value == [30, 40, 3]
  assert feature['image/channels'].int64_list.value == [3]
  assert feature['image/object/bbox/label'].int64_list.value == [12, 1]
  assert feature['image/object/bbox/label_text'].bytes_list.value == [b'dog', b'aeroplane']
  assert feature['image/object/bbox/difficult'].int64_list.value == [0, 1]
  assert feature['image/object/bbox/truncated'].int64_list.value == [1, 0]
  # Box areas in pixels: 40 x 30, and (20 - 9.5) x (12 - 3) for the [xmin - 1, xmax] reading.
  assert feature['image/object/area'].float_list.value == [1200.0, 94.5]
  assert feature['image/object/iscrowd'].int64_list.value == [0, 0]
  assert feature['image/source_id'].bytes_list.value == [b'']
  for column, key in enumerate(['ymin', 'xmin', 'ymax', 'xmax']):
    np.testing.assert_array_equal(
        np.array(feature['image/object/bbox/' + key].float_list.value, np.float32),
        EXPECTED_BOXES[:, column])


def test_make_example_uses_custom_class_names_and_rejects_unknown():
  example = tfrecord_io.make_example(_jpeg(), 'a.jpg', 30, 40, OBJECTS[:1], ('cat', 'dog'))
  assert example.features.feature['image/object/bbox/label'].int64_list.value == [2]
  with pytest.raises(ValueError, match=r"a.jpg have unknown classes \['aeroplane'\]"):
    tfrecord_io.make_example(_jpeg(), 'a.jpg', 30, 40, OBJECTS, ('cat', 'dog'))


def test_decode_example_round_trip_in_tf_data_graph():
  records = [tfrecord_io.make_example(_jpeg(), 'ü_1.jpg', 30, 40, OBJECTS).SerializeToString(),
             tfrecord_io.make_example(_jpeg(20, 10), 'empty.jpg', 20, 10, []).SerializeToString()]
  first, empty = _decode(records)
  assert first['image'].dtype == np.uint8 and first['image'].shape == (30, 40, 3)
  # A flat colour survives JPEG within a couple of levels; RGB order, not BGR.
  np.testing.assert_allclose(first['image'].reshape(-1, 3).mean(axis=0), [200, 40, 10], atol=3)
  assert first['boxes'].dtype == np.float32
  np.testing.assert_array_equal(first['boxes'], EXPECTED_BOXES)
  assert first['labels'].tolist() == [12, 1] and first['labels'].dtype == np.int64
  assert first['difficult'].tolist() == [0, 1] and first['truncated'].tolist() == [1, 0]
  assert first['filename'] == 'ü_1.jpg'.encode('utf-8')
  assert (first['height'], first['width'], first['num_boxes']) == (30, 40, 2)
  assert first['num_boxes'].dtype == np.int32
  assert empty['boxes'].shape == (0, 4) and empty['labels'].shape == (0,)
  assert (empty['num_boxes'], empty['height'], empty['width']) == (0, 20, 10)
  assert empty['image'].shape == (20, 10, 3)


def test_decode_example_static_shapes():
  with tf.Graph().as_default():
    decoded = tfrecord_io.decode_example(tf.compat.v1.placeholder(tf.string, []))
    assert decoded['image'].shape.as_list() == [None, None, 3]
    assert decoded['boxes'].shape.as_list() == [None, 4]
    assert decoded['labels'].shape.as_list() == [None]
    assert decoded['num_boxes'].shape.as_list() == []
    assert decoded['filename'].dtype == tf.string and decoded['height'].dtype == tf.int64


def test_decode_example_expands_a_grayscale_jpeg_from_another_writer():
  gray = cv2.imencode('.jpg', np.full((8, 6), 128, np.uint8))[1].tobytes()
  record = tfrecord_io.make_example(gray, 'g.jpg', 8, 6, OBJECTS[:1]).SerializeToString()
  (decoded,) = _decode([record])
  assert decoded['image'].shape == (8, 6, 3)
  np.testing.assert_allclose(decoded['image'], 128, atol=2)


def test_coco_fields_round_trip_and_old_records_decode_with_box_areas():
  from dataset import coco
  objects = [coco.CocoObject('dog', 1, 1, 40, 30, area=700.25, iscrowd=1),
             coco.CocoObject('aeroplane', 10.5, 4, 20, 12, area=50.0, iscrowd=0)]
  new = tfrecord_io.make_example(_jpeg(), 'c.jpg', 30, 40, objects, source_id='139')
  old = tfrecord_io.make_example(_jpeg(), 'o.jpg', 30, 40, OBJECTS)
  for key in ('image/source_id', 'image/object/area', 'image/object/iscrowd'):
    del old.features.feature[key]   # as written before COCO support
  decoded_new, decoded_old = _decode([new.SerializeToString(), old.SerializeToString()])
  assert decoded_new['source_id'] == b'139'
  np.testing.assert_array_equal(decoded_new['area'], [700.25, 50.0])
  assert decoded_new['iscrowd'].tolist() == [1, 0]
  np.testing.assert_array_equal(decoded_new['boxes'], EXPECTED_BOXES)
  assert decoded_old['source_id'] == b''
  np.testing.assert_allclose(decoded_old['area'], [1200.0, 94.5], rtol=1e-6)
  assert decoded_old['iscrowd'].tolist() == [0, 0]
