"""PR curves and evaluation images for TensorBoard (net/eval_summaries.py): hand-made counts,
the drawn panels, the summary protos read back from an event file, the graph glue."""

import glob

import cv2
import numpy as np
import tensorflow as tf

from net import detection_eval
from net import eval_summaries
from utility import draw
from utility import image_convention
from utility import voc_metric

tf1 = tf.compat.v1

# One class on two 100 x 100 images. Image 'a': a non-difficult GT and a difficult one; image
# 'b': one non-difficult GT (so 2 count). Detections, binary-exact scores, in score order:
# 0.875 on the first GT (TP), 0.75 on the difficult one (neither), 0.625 on the first GT again
# (duplicate: FP), 0.25 on b's GT (TP).
GT_A = [[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]
GT_B = [[0.2, 0.3, 0.7, 0.8]]
DETECTIONS_A = [([0.1, 0.1, 0.5, 0.5], 0.875), ([0.6, 0.6, 0.9, 0.9], 0.75),
                ([0.11, 0.1, 0.5, 0.5], 0.625)]
DETECTIONS_B = [([0.2, 0.3, 0.7, 0.8], 0.25)]


def _accumulator():
  """The hand-made case through VocDetectionAccumulator (class 'cat' = label 1; 'dog' has no
  ground truth and no detections)."""
  accumulator = detection_eval.VocDetectionAccumulator(('cat', 'dog'))
  det_boxes = np.zeros([2, 3, 4], np.float32)
  det_scores = np.zeros([2, 3], np.float32)
  for image, rows in enumerate([DETECTIONS_A, DETECTIONS_B]):
    for i, (box, score) in enumerate(rows):
      det_boxes[image, i], det_scores[image, i] = box, score
  gt_boxes = np.zeros([2, 2, 4], np.float32)
  gt_boxes[0], gt_boxes[1, :1] = GT_A, GT_B
  accumulator.update(
      np.array([b'a.jpg', b'b.jpg']), np.array([100, 100]), np.array([100, 100]), det_boxes,
      det_scores, np.ones([2, 3], np.int32), np.array([3, 1]), gt_boxes,
      np.array([[1, 1], [1, 0]]), np.array([[0, 1], [0, 0]]), np.array([2, 1]))
  return accumulator


def test_voc_ranked_matches_flag_tp_fp_and_skip_the_difficult_match():
  ranked = _accumulator().ranked_matches()
  assert list(ranked) == ['cat', 'dog']
  np.testing.assert_array_equal(ranked['cat']['scores'], [0.875, 0.75, 0.625, 0.25])
  np.testing.assert_array_equal(ranked['cat']['tp'], [1, 0, 0, 1])
  np.testing.assert_array_equal(ranked['cat']['fp'], [0, 0, 1, 0])
  assert ranked['cat']['num_gt'] == 2
  assert ranked['dog']['num_gt'] == 0 and len(ranked['dog']['scores']) == 0


def test_pr_counts_at_the_thresholds_match_the_voc_curve():
  cat = _accumulator().ranked_matches()['cat']
  counts = eval_summaries.pr_curve_counts(cat['scores'], cat['tp'], cat['fp'], cat['num_gt'])
  assert counts['thresholds'][50] == 0.25 and counts['thresholds'][125] == 0.625
  # threshold index k counts the detections scoring >= k / 200.
  expected = {0: (2, 1, 0), 50: (2, 1, 0), 51: (1, 1, 1), 125: (1, 1, 1), 126: (1, 0, 1),
              150: (1, 0, 1), 151: (1, 0, 1), 175: (1, 0, 1), 176: (0, 0, 2), 200: (0, 0, 2)}
  for k, (tp, fp, fn) in expected.items():
    assert (counts['tp'][k], counts['fp'][k], counts['fn'][k]) == (tp, fp, fn), k
  assert counts['precision'][0] == 2 / 3 and counts['recall'][0] == 1.0
  assert counts['precision'][100] == 0.5 and counts['recall'][100] == 0.5
  assert counts['precision'][140] == 1.0 and counts['precision'][190] == 0.0
  np.testing.assert_array_equal(counts['tn'], np.zeros(201))
  # At every threshold: the VOC precision and recall after the last detection scoring >= t.
  gt = {'a': (np.array([[11, 11, 50, 50], [61, 61, 90, 90]], float), np.array([0, 1], bool)),
        'b': (np.array([[31, 21, 80, 70]], float), np.array([0], bool))}
  voc = voc_metric.evaluate_class(gt, voc_metric.make_detections(
      [('a', 0.875, 11, 11, 50, 50), ('a', 0.75, 61, 61, 90, 90), ('a', 0.625, 11, 12, 50, 50),
       ('b', 0.25, 31, 21, 80, 70)]))
  last = [int(np.sum(cat['scores'] >= t)) - 1 for t in counts['thresholds']]
  kept = [k for k in range(201) if last[k] >= 0]
  assert len(kept) == 176
  rows = [last[k] for k in kept]
  np.testing.assert_array_equal(counts['precision'][kept], voc['precision'][rows])
  np.testing.assert_array_equal(counts['recall'][kept], voc['recall'][rows])


def _image_inputs():
  """Two images of a flat colour at network size 32 (originals 50 x 100 and 40 x 40), each
  with a detection above the drawing threshold and one below, and one GT."""
  convention = image_convention.ImageConvention(mean_rgb=(123.0, 117.0, 104.0))
  pixels = np.zeros([3, 32, 32, 3], np.float32) + np.array([200.0, 100.0, 50.0], np.float32)
  images = pixels - np.array(convention.mean_rgb, np.float32)
  det_boxes = np.tile(np.array([[0.25, 0.25, 0.75, 0.75], [0.85, 0.85, 1.0, 1.0]], np.float32),
                      [3, 1, 1])
  det_scores = np.tile(np.array([0.9, 0.2], np.float32), [3, 1])
  det_classes = np.tile(np.array([1, 2], np.int32), [3, 1])
  gt_boxes = np.tile(np.array([[[0.5, 0.0, 1.0, 0.5], [0, 0, 0, 0]]], np.float32), [3, 1, 1])
  gt_labels = np.tile(np.array([[2, 0]]), [3, 1])
  return convention, [images, np.array([50, 40, 60]), np.array([100, 40, 30]), det_boxes,
                      det_scores, det_classes, np.array([2, 2, 2]), gt_boxes, gt_labels,
                      np.array([1, 1, 1])]


def test_the_first_images_are_drawn_detections_beside_ground_truth():
  convention, inputs = _image_inputs()
  collector = eval_summaries.EvalImageCollector(2, convention, ('cat', 'dog'))
  collector.add_batch(*inputs)
  collector.add_batch(*inputs)  # already full: nothing more is kept
  assert [image.shape for image in collector.images] == [(52, 132, 3), (52, 68, 3)]
  first = collector.images[0]
  header = eval_summaries.HEADER_HEIGHT
  assert (first[0] == 255).all() and (first[header:, 64:68] == 255).all()  # caption row, gap
  # Left panel (64 x 32): the 0.9 'cat' box [0.25, 0.75] spans columns 16..47, rows 8..23.
  assert tuple(first[header + 23, 32]) == draw.class_color(1, 'rgb')
  assert tuple(first[header + 4, 4]) == (200, 100, 50)  # outside the boxes: the image
  assert tuple(first[header + 31, 60]) == (200, 100, 50)  # the 0.2 'dog' box is not drawn
  # Right panel: the 'dog' GT [0.5, 0, 1, 0.5] has its top edge on row 16, columns 0..31.
  assert tuple(first[header + 16, 68 + 20]) == draw.class_color(2, 'rgb')
  assert tuple(first[header + 8, 68 + 32]) == (200, 100, 50)  # no detection drawn there


def test_the_summaries_read_back_from_an_event_file(tmp_path):
  convention, inputs = _image_inputs()
  collector = eval_summaries.EvalImageCollector(2, convention, ('cat', 'dog'))
  collector.add_batch(*inputs)
  accumulator = _accumulator()
  curves = eval_summaries.serialized_pr_curves(accumulator, ('cat', 'dog'))
  assert curves[1] == b''  # 'dog' has no ground truth: no curve
  with tf.Graph().as_default():
    writer = tf1.summary.FileWriter(str(tmp_path))
    writer.add_summary(tf1.Summary.FromString(curves[0]), 7)
    writer.add_summary(tf1.Summary.FromString(collector.serialized().item()), 7)
    writer.close()
  values = {}
  for path in glob.glob(str(tmp_path / 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      values.update((value.tag, (event.step, value)) for value in event.summary.value)
  assert sorted(values) == ['cat/pr_curves', 'eval_images/0', 'eval_images/1']
  step, curve = values['cat/pr_curves']
  assert step == 7 and curve.metadata.plugin_data.plugin_name == 'pr_curves'
  data = tf.make_ndarray(curve.tensor)  # rows: TP, FP, TN, FN, precision, recall
  assert data.shape == (6, 201)
  np.testing.assert_array_equal(data[:4, 51], [1, 1, 0, 1])
  np.testing.assert_allclose(data[4:, 0], [2 / 3, 1.0], rtol=1e-7)
  for index in range(2):
    image = values['eval_images/%d' % index][1].image
    decoded = cv2.imdecode(np.frombuffer(image.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    assert (image.height, image.width) == decoded.shape[:2] == collector.images[index].shape[:2]
    np.testing.assert_array_equal(decoded[..., ::-1], collector.images[index])  # PNG: lossless


def test_metric_ops_run_in_a_session():
  convention, inputs = _image_inputs()
  accumulator = _accumulator()
  features = {'image': tf.constant(inputs[0]), 'height': tf.constant(inputs[1]),
              'width': tf.constant(inputs[2])}
  detections = {'boxes': tf.constant(inputs[3]), 'scores': tf.constant(inputs[4]),
                'classes': tf.constant(inputs[5]), 'num_detections': tf.constant(inputs[6])}
  labels = {'boxes': tf.constant(inputs[7]), 'labels': tf.constant(inputs[8]),
            'num_boxes': tf.constant(inputs[9])}
  ops = eval_summaries.metric_ops(accumulator, features, labels, detections, ('cat', 'dog'),
                                  convention, num_images=3)
  assert sorted(ops) == ['eval_images', 'pr_curve/cat', 'pr_curve/dog']
  with tf1.Session() as sess:
    sess.run([update for _, update in ops.values()])
    values = sess.run({key: value for key, (value, _) in ops.items()})
  assert tf1.Summary.FromString(values['pr_curve/cat']).value[0].tag == 'cat/pr_curves'
  assert values['pr_curve/dog'] == b''
  images = tf1.Summary.FromString(values['eval_images']).value
  assert [(v.tag, v.image.height, v.image.width) for v in images] == [
      ('eval_images/0', 52, 132), ('eval_images/1', 52, 68), ('eval_images/2', 52, 36)]
  # No images asked and an evaluator without ranked_matches (COCO): no summaries at all.
  assert eval_summaries.metric_ops(object(), features, labels, detections, ('cat', 'dog'),
                                   convention, num_images=0) == {}
