r"""Training input pipeline throughput on CPU: TF (tf.data) with 1 and 2 cores, per stage, and a
plain numpy/OpenCV implementation of the same recipe as the baseline.

    python bench/input_pipeline.py [--data_dir=DIR] [--file_pattern=train-*] [--image_size=300]
        [--batch_size=32] [--seconds=10]

Without --data_dir a temporary synthetic VOC set with VOC-like image sizes (375..500 px a side)
is generated (dataset/make_synthetic_voc.py) and converted with the project's converter.

What is timed (images/s after a warm-up; each figure is `--seconds` of wall time):
  * the full pipeline, ``dataset.input_fn.train_dataset`` (decode + augment + encode targets +
    batch), with 1 core and with 2 cores;
  * its stages, each the same chain stopped earlier: read + decode; + augmentation; + target
    encoding (i.e. input_fn.make_train_example_fn); + batching (= the full pipeline). Each
    element is reduced in the graph to one value that depends on every output tensor, so no
    work is pruned and nothing is copied to Python;
  * the baseline: the same recipe in numpy/OpenCV the way public SSD ports write it (decode,
    photometric ops on the full image, a materialised expand canvas, min-IoU crop, flip,
    resize, mean subtraction, target encoding, np.stack into batches) in 2 worker processes.
    Records (up to 2048) are parsed once up front and batches stay in the workers (nothing is
    sent back), so the baseline is if anything flattered.

Cores are restricted with ``taskset -c 0`` / ``taskset -c 0,1``: every measurement runs in its
own subprocess pinned to those cores. That caps the whole process (all of TF's thread pools,
tf.data's private pool and Python), and TF sizes its pools and AUTOTUNE from the same affinity
mask, so 1 core means what a 1-core container gives. (Capping only TF's intra/inter-op and
tf.data threadpool sizes would leave other threads free to use the second core.)

CPU time (getrusage of the measuring process, all threads; of the workers for the baseline) is
reported too, as ms of CPU per image: it depends much less than images/s on what else runs on
a shared machine. 'cores used' (CPU seconds per wall second) shows how much of the allowed
cores a measurement actually got, and the load average before and after is printed.

Prints a table; the last line is one JSON object.
"""

import json
import multiprocessing
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import time

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from dataset import convert_tfrecords  # noqa: E402
from dataset import input_fn  # noqa: E402
from dataset import make_synthetic_voc  # noqa: E402
from dataset import tfrecord_io  # noqa: E402
from net import model_spec  # noqa: E402
from preprocessing import geometric  # noqa: E402
from utility import hardware  # noqa: E402
from preprocessing import photometric  # noqa: E402
from preprocessing import ssd_preprocessing  # noqa: E402
from utility import anchors as anchor_lib  # noqa: E402
from utility import ssd_flags  # noqa: E402

tf1 = tf.compat.v1

STAGES = ('decode', 'augment', 'encode', 'batch')
STAGE_TITLES = {
    'decode': 'read + decode',
    'augment': '+ augmentation',
    'encode': '+ target encoding',
    'batch': '+ batching (= input_fn.train_dataset)',
}
CORE_SETS = {1: '0', 2: '0,1'}
BASELINE_STEPS = ('decode', 'photometric', 'expand', 'crop', 'flip_resize_normalize', 'encode',
                  'batch')
SYNTHETIC_IMAGES = 512
SYNTHETIC_MIN_SIZE, SYNTHETIC_MAX_SIZE = 375, 500   # VOC images are mostly 500x375 / 375x500
WARMUP_SECONDS = 3.0
# The baseline's workers get the parsed records (pickled); a pool this size is plenty to time
# decoding and keeps memory small on the full VOC set.
BASELINE_MAX_RECORDS = 2048


# ---------------------------------------------------------------------------------------------
# Timing helper.

def _cpu_seconds():
  """CPU seconds (user + system) of this process so far, all threads."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _result(images, wall_seconds, cpu_seconds):
  return {'images': int(images), 'seconds': wall_seconds, 'cpu_seconds': cpu_seconds,
          'images_per_sec': images / max(wall_seconds, 1e-9),
          'cpu_ms_per_image': 1000.0 * cpu_seconds / max(images, 1),
          'cores_used': cpu_seconds / max(wall_seconds, 1e-9)}


def _check_request(seconds, num_images, images_per_step):
  if (seconds is None) == (num_images is None):
    raise ValueError('Give exactly one of seconds (timed run) or num_images (counted run).')
  if num_images is not None and (num_images < 1 or num_images % images_per_step):
    raise ValueError('num_images must be a positive multiple of the batch size %d; got %d.'
                     % (images_per_step, num_images))


def run_steps(step_fn, images_per_step, seconds=None, num_images=None, warmup_seconds=0.0):
  """Calls step_fn until `seconds` have passed or `num_images` are done; times that part.

  Args:
    step_fn: callable doing one unit of work of images_per_step images.
    images_per_step: int.
    seconds: wall seconds to run (timed mode), or None.
    num_images: images to process (counted mode, a multiple of images_per_step), or None.
    warmup_seconds: untimed calls first, for at least this long (and at least one call).

  Returns:
    dict: 'images' processed in the timed part, 'seconds' wall, 'cpu_seconds' of this
    process (all threads), 'images_per_sec', 'cpu_ms_per_image', 'cores_used' (CPU seconds
    per wall second: below the cores allowed when the machine is busy).
  """
  _check_request(seconds, num_images, images_per_step)
  start = time.perf_counter()
  step_fn()
  while time.perf_counter() - start < warmup_seconds:
    step_fn()
  images, cpu_start, start = 0, _cpu_seconds(), time.perf_counter()
  while (images < num_images) if num_images is not None else (
      time.perf_counter() - start < seconds):
    step_fn()
    images += images_per_step
  return _result(images, time.perf_counter() - start, _cpu_seconds() - cpu_start)


# ---------------------------------------------------------------------------------------------
# TF pipeline and its stages.

def _touch(nest):
  """float32 scalar depending on every tensor of nest (one element of each).

  Consuming a stage through this keeps all of its work in the graph (nothing is pruned as
  unused) without copying images to Python.
  """
  def first(tensor):
    head = tf.reshape(tensor, [-1])[:1]
    if tensor.dtype == tf.string:
      head = tf.strings.length(head)
    return tf.reduce_sum(tf.cast(head, tf.float32))

  return tf.add_n([first(t) for t in tf.nest.flatten(nest)])


def _parallel(value):
  """input_fn's convention: None or < 1 means AUTOTUNE."""
  return tf.data.AUTOTUNE if value is None or value < 1 else value


# As in dataset/input_fn.py: graph ops only, so tf.data traces them without AutoGraph.
_no_autograph = tf.autograph.experimental.do_not_convert


def _decoded_records(file_pattern, input_config):
  """input_fn.train_dataset up to and including decode + filter (unseeded, as in training)."""
  files = input_fn.list_shards(file_pattern)
  dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files))
  dataset = dataset.interleave(tf.data.TFRecordDataset,
                               cycle_length=_parallel(input_config.num_readers),
                               num_parallel_calls=_parallel(input_config.num_readers),
                               deterministic=False)
  dataset = dataset.shuffle(input_config.shuffle_buffer).repeat()
  dataset = dataset.map(_no_autograph(tfrecord_io.decode_example),
                        num_parallel_calls=_parallel(input_config.num_parallel_calls),
                        deterministic=False)
  return dataset.filter(_no_autograph(lambda example: example['num_boxes'] > 0))


def _augment_fn(ssd_config):
  """The augmentation make_train_example_fn applies, without the target encoding."""
  model, input_config = ssd_config.model, ssd_config.input
  photometric_config, geometric_config = input_fn.augmentation_configs(input_config)

  def augment(example):
    return ssd_preprocessing.preprocess_for_train(
        example['image'], example['boxes'], example['labels'], example['difficult'],
        convention=model_spec.image_convention(model),
        out_size=(model.image_size, model.image_size),
        use_difficult=input_config.use_difficult, photometric_config=photometric_config,
        geometric_config=geometric_config)

  return augment


def stage_dataset(stage, file_pattern, ssd_config, batch_size):
  """A dataset running the pipeline up to `stage`; each element stands for batch_size images.

  Args:
    stage: one of STAGES.
    file_pattern: glob of training shards.
    ssd_config: utility.config.SSDConfig.
    batch_size: images per element.

  Returns:
    tf.data.Dataset: for 'batch' the batches of input_fn.train_dataset; otherwise float32
    [batch_size] vectors, one _touch value per image.
  """
  if stage == 'batch':
    return input_fn.train_dataset(file_pattern, ssd_config,
                                  model_spec.model_inputs(ssd_config.model), batch_size)
  stage_fns = {'decode': lambda example: example, 'augment': _augment_fn(ssd_config),
               'encode': input_fn.make_train_example_fn(
                   ssd_config, model_spec.model_inputs(ssd_config.model))}
  if stage not in stage_fns:
    raise ValueError('Unknown stage %r; use one of %s.' % (stage, STAGES))
  stage_fn = stage_fns[stage]
  dataset = _decoded_records(file_pattern, ssd_config.input).map(
      _no_autograph(lambda example: _touch(stage_fn(example))),
      num_parallel_calls=_parallel(ssd_config.input.num_parallel_calls), deterministic=False)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure_stage(stage, file_pattern, ssd_config, batch_size, seconds=None, num_images=None,
                  warmup_seconds=0.0):
  """Times one stage in this process (all cores it may use); returns run_steps' dict."""
  _check_request(seconds, num_images, batch_size)
  with tf.Graph().as_default():
    element = tf1.data.make_one_shot_iterator(
        stage_dataset(stage, file_pattern, ssd_config, batch_size)).get_next()
    value = _touch(element)
    with tf1.Session() as session:
      return run_steps(lambda: session.run(value), batch_size, seconds, num_images,
                       warmup_seconds)


def measure_tf_stages(file_pattern, ssd_config, batch_size, seconds=None, num_images=None,
                      warmup_seconds=0.0, stages=STAGES):
  """measure_stage for each stage: {stage: result dict}."""
  return {stage: measure_stage(stage, file_pattern, ssd_config, batch_size, seconds, num_images,
                               warmup_seconds) for stage in stages}


# ---------------------------------------------------------------------------------------------
# The numpy/OpenCV baseline: the same recipe, written the plain way (ssd.pytorch style).

def read_records(file_pattern, max_records=None):
  """Parses records up front: list of (jpeg bytes, boxes float32 [n, 4], labels, difficult).

  Args:
    file_pattern: glob of shards, read in sorted order.
    max_records: stop after this many records with objects (None: all).
  """
  records = []
  for path in input_fn.list_shards(file_pattern):
    for serialized in tf1.io.tf_record_iterator(path):
      feature = tf.train.Example.FromString(serialized).features.feature

      def values(key, kind):
        return getattr(feature['image/object/bbox/' + key], kind).value

      boxes = np.stack([np.array(values(k, 'float_list'), np.float32)
                        for k in ('ymin', 'xmin', 'ymax', 'xmax')], axis=1).reshape(-1, 4)
      if len(boxes):
        records.append((feature['image/encoded'].bytes_list.value[0], boxes,
                        np.array(values('label', 'int64_list'), np.int64),
                        np.array(values('difficult', 'int64_list'), np.int64)))
      if max_records and len(records) >= max_records:
        return records
  return records


def _np_iou(boxes, others):
  """IoU [n, m] of corner boxes [n, 4] and [m, 4] (any consistent units)."""
  top_left = np.maximum(boxes[:, None, :2], others[None, :, :2])
  bottom_right = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
  inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
  area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
  area_others = np.prod(others[:, 2:] - others[:, :2], axis=1)
  return inter / np.maximum(area[:, None] + area_others[None, :] - inter, 1e-12)


def np_photometric(image, rng, config=photometric.PhotometricConfig()):
  """ssd.pytorch PhotometricDistort: float32 RGB [h, w, 3] 0-255, always through HSV (cv2)."""
  if rng.random() < config.prob:
    image += rng.uniform(-config.brightness_max_delta, config.brightness_max_delta)
    np.clip(image, 0, 255, out=image)
  contrast_first = rng.random() < 0.5
  contrast = rng.uniform(*config.contrast_range) if rng.random() < config.prob else None
  if contrast_first and contrast is not None:
    image = np.clip(image * contrast, 0, 255)
  hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)   # H in degrees, S in [0, 1], V as the input
  if rng.random() < config.prob:
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*config.saturation_range), 0, 1)
  if rng.random() < config.prob:
    hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-config.hue_max_delta,
                                                     config.hue_max_delta)) % 360.0
  image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
  if not contrast_first and contrast is not None:
    image *= contrast
  return np.clip(image, 0, 255, out=image)


def np_expand(image, boxes, rng, mean_rgb, config=geometric.GeometricConfig()):
  """Zoom out onto a materialised mean-filled canvas; boxes in pixels [n, 4] (y0, x0, y1, x1)."""
  if rng.random() >= config.expand_prob:
    return image, boxes
  height, width = image.shape[:2]
  ratio = rng.uniform(1.0, config.max_expand_ratio)
  top, left = int(rng.uniform(0, height * ratio - height)), int(rng.uniform(0, width * ratio -
                                                                          width))
  canvas = np.empty((int(height * ratio), int(width * ratio), 3), np.float32)
  canvas[:] = mean_rgb
  canvas[top:top + height, left:left + width] = image
  return canvas, boxes + np.array([top, left, top, left], np.float32)


def np_crop_rect(boxes, height, width, rng, config=geometric.GeometricConfig()):
  """The authors' Caffe crop sampler (GenerateBatchSamples, SampleBBox) in numpy.

  Args:
    boxes: float [n, 4] (y0, x0, y1, x1) pixels of the (expanded) image.
    height, width: the image size.

  Returns:
    (rect int [4] (y0, x0, y1, x1) pixels, end exclusive; keep bool [n], boxes whose centre
    lies in the rect, edges included; sampler index, -1 for the whole image).
  """
  whole = np.array([0, 0, height, width])
  samples = [(whole, -1)] if config.crop_whole_image else []
  size = np.array([height, width], np.float64)
  for index, (low, high) in enumerate(zip(config.crop_min_ious, config.crop_max_ious)):
    # Caffe tries one patch after another and keeps the first success; drawing the
    # max_trials patches at once and taking the first success has the same distribution.
    trials = config.crop_max_trials
    scale = rng.uniform(config.crop_min_scale, config.crop_max_scale, size=trials)
    aspect = rng.uniform(np.maximum(config.crop_min_aspect_ratio, scale ** 2),
                         np.minimum(config.crop_max_aspect_ratio, 1.0 / scale ** 2))
    side = np.stack([scale / np.sqrt(aspect), scale * np.sqrt(aspect)], axis=1)
    corner = rng.uniform(0.0, 1.0, size=(trials, 2)) * (1.0 - side)
    start = np.floor(corner * size)
    end = np.clip(np.floor((corner + side) * size), start + 1, size)
    rects = np.concatenate([start, end], axis=1)
    iou = _np_iou(rects, boxes)                                    # [trials, n]
    satisfied = np.any((iou >= low) & (iou <= high), axis=1)
    if satisfied.any():
      samples.append((rects[np.argmax(satisfied)].astype(int), index))
  rect, index = samples[rng.integers(len(samples))] if samples else (whole, -1)
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
  keep = np.all((centres >= rect[:2]) & (centres <= rect[2:]), axis=1)
  return rect, keep, index


def np_crop(image, boxes, labels, rng, config=geometric.GeometricConfig()):
  """Caffe's random crop of an image with pixel boxes: (image, boxes, labels) of the patch."""
  rect, keep, _ = np_crop_rect(boxes, image.shape[0], image.shape[1], rng, config)
  y0, x0, y1, x1 = rect
  origin = np.tile(rect[:2], 2).astype(np.float32)
  kept = np.clip(boxes[keep], origin, np.tile(rect[2:], 2).astype(np.float32)) - origin
  return image[y0:y1, x0:x1], kept, labels[keep]


def np_match(iou, threshold=0.5):
  """Caffe's MatchBBox on iou [num_gt, num_anchors]: the GT of each anchor, -1 for none.

  Bipartite: repeatedly the largest overlap over unassigned anchors x unassigned GTs (ties:
  lowest anchor, then lowest GT), while one above 1e-6 is left; then per prediction: every
  other anchor takes its best GT if that overlap is >= threshold.
  """
  num_gt, num_anchors = iou.shape
  matches = np.full(num_anchors, -1)
  if not num_gt:
    return matches
  overlaps = np.where(iou > 1e-6, iou, -1.0).T             # [num_anchors, num_gt]
  pool = overlaps.copy()
  for _ in range(num_gt):
    anchor, gt = np.unravel_index(np.argmax(pool), pool.shape)  # row-major: lowest anchor first
    if pool[anchor, gt] <= 0.0:
      break
    matches[anchor] = gt
    pool[anchor, :] = -1.0
    pool[:, gt] = -1.0
  best_gt, best = overlaps.argmax(axis=1), overlaps.max(axis=1)
  rest = (matches == -1) & (best >= threshold)
  matches[rest] = best_gt[rest]
  return matches


def np_encode_targets(anchors, boxes, labels, threshold=0.5, variances=(0.1, 0.1, 0.2, 0.2)):
  """Matching (np_match) and box encoding.

  Returns:
    (cls_targets int64 [num_anchors], loc_targets float32 [num_anchors, 4]).
  """
  if not len(boxes):
    return (np.zeros(len(anchors), np.int64), np.zeros([len(anchors), 4], np.float32))
  matches = np_match(_np_iou(boxes, anchors), threshold)
  positive = matches >= 0
  best_gt = np.maximum(matches, 0)
  matched = boxes[best_gt]
  box_size = np.maximum(matched[:, 2:] - matched[:, :2], 1e-8)
  anchor_size = anchors[:, 2:] - anchors[:, :2]
  offsets = np.concatenate([
      ((matched[:, :2] + matched[:, 2:]) - (anchors[:, :2] + anchors[:, 2:])) / 2.0
      / anchor_size / np.array(variances[:2]),
      np.log(box_size / anchor_size) / np.array(variances[2:])], axis=1).astype(np.float32)
  return (np.where(positive, labels[best_gt], 0),
          np.where(positive[:, None], offsets, 0.0).astype(np.float32))


def np_train_example(record, anchors, rng, mean_rgb, out_size, timings):
  """The recipe for one record; adds CPU seconds per step to `timings` (a dict).

  CPU time (of the worker process) rather than wall time, so a worker preempted on a busy
  machine does not inflate the steps.
  """
  jpeg, boxes, labels, difficult = record
  tick = time.process_time()

  def lap(step):
    nonlocal tick
    now = time.process_time()
    timings[step] = timings.get(step, 0.0) + now - tick
    tick = now

  image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
  image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)
  keep = difficult == 0
  keep = keep if keep.any() else np.ones_like(keep)
  height, width = image.shape[:2]
  boxes, labels = boxes[keep] * np.array([height, width, height, width], np.float32), labels[keep]
  lap('decode')
  image = np_photometric(image, rng)
  lap('photometric')
  image, boxes = np_expand(image, boxes, rng, mean_rgb)
  lap('expand')
  image, boxes, labels = np_crop(image, boxes, labels, rng)
  lap('crop')
  height, width = image.shape[:2]
  if rng.random() < 0.5:
    image = image[:, ::-1]
    boxes = np.stack([boxes[:, 0], width - boxes[:, 3], boxes[:, 2], width - boxes[:, 1]], 1)
  image = cv2.resize(np.ascontiguousarray(image), out_size[::-1], interpolation=cv2.INTER_LINEAR)
  image -= np.asarray(mean_rgb, np.float32)
  boxes = boxes / np.array([height, width, height, width], np.float32)
  lap('flip_resize_normalize')
  cls_targets, loc_targets = np_encode_targets(anchors, boxes, labels)
  lap('encode')
  return image, cls_targets, loc_targets, boxes, labels


def _np_batch(records, anchors, rng, mean_rgb, out_size, batch_size, max_boxes, timings):
  """One batch of the baseline: np.stack of batch_size examples (fixed-shape ground truth)."""
  examples = [np_train_example(records[rng.integers(len(records))], anchors, rng, mean_rgb,
                               out_size, timings) for _ in range(batch_size)]
  start = time.process_time()
  images, cls_targets, loc_targets, boxes, labels = zip(*examples)
  padded_boxes = np.zeros((batch_size, max_boxes, 4), np.float32)
  padded_labels = np.zeros((batch_size, max_boxes), np.int64)
  for i, (b, l) in enumerate(zip(boxes, labels)):
    padded_boxes[i, :len(b)], padded_labels[i, :len(l)] = b[:max_boxes], l[:max_boxes]
  batch = (np.stack(images), np.stack(cls_targets), np.stack(loc_targets), padded_boxes,
           padded_labels)
  timings['batch'] = timings.get('batch', 0.0) + time.process_time() - start
  return batch


def _np_worker(worker_id, num_workers, job, ready, start_event, stop_event, results):
  """Baseline worker process: a warm-up batch, then batches until stopped or its share is done."""
  cv2.setNumThreads(1)   # one process per core
  records, anchors, mean_rgb, out_size, batch_size, max_boxes, num_images = job
  rng = np.random.default_rng(worker_id)
  timings = {}
  _np_batch(records, anchors, rng, mean_rgb, out_size, batch_size, max_boxes, timings)
  timings.clear()
  ready.release()
  start_event.wait()
  cpu_start, start, images = _cpu_seconds(), time.perf_counter(), 0
  my_batches = None if num_images is None else len(
      range(worker_id, num_images // batch_size, num_workers))
  while (images // batch_size < my_batches) if my_batches is not None else (
      not stop_event.is_set()):
    _np_batch(records, anchors, rng, mean_rgb, out_size, batch_size, max_boxes, timings)
    images += batch_size
  results.put({'images': images, 'seconds': time.perf_counter() - start,
               'cpu_seconds': _cpu_seconds() - cpu_start, 'timings': timings})


def _get(results):
  try:
    return results.get(timeout=1.0)
  except queue.Empty:
    return None


def _wait(poll, workers):
  """Repeats poll() until it returns a value; raises if a worker died meanwhile."""
  while True:
    value = poll()
    if value:
      return value
    failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
    if failed:
      raise RuntimeError('A numpy baseline worker failed (exit code %s); see its traceback '
                         'above.' % failed[0])


def measure_numpy_baseline(file_pattern, ssd_config, batch_size, num_workers=2, seconds=None,
                           num_images=None):
  """Runs the numpy/OpenCV recipe in num_workers (spawned) worker processes.

  Args:
    file_pattern: glob of training shards.
    ssd_config: utility.config.SSDConfig (image size, anchors, mean, max boxes).
    batch_size: images per batch (each worker builds whole batches).
    num_workers: worker processes.
    seconds / num_images: timed or counted run, as in run_steps; counted runs split the
      batches over the workers.

  Returns:
    run_steps' dict (cpu of the workers) plus 'ms_per_image' {step: CPU ms per image}
    (BASELINE_STEPS) and 'images_per_worker' [num_workers].
  """
  _check_request(seconds, num_images, batch_size)
  model = ssd_config.model
  anchors = anchor_lib.anchors_numpy(model_spec.anchor_layers(model), model.image_size,
                                     clip=model.clip_anchors)
  mean_rgb = model_spec.image_convention(model).mean_rgb
  job = (read_records(file_pattern, BASELINE_MAX_RECORDS), anchors, mean_rgb,
         (model.image_size, model.image_size), batch_size, ssd_config.input.max_boxes_per_image,
         num_images)
  # spawn, not fork: a child forked from a process whose TF or OpenCV thread pools hold a lock
  # can hang on it. The workers import this module (TF included) before the timed part.
  context = multiprocessing.get_context('spawn')
  ready, results = context.Semaphore(0), context.Queue()
  start_event, stop_event = context.Event(), context.Event()
  workers = [context.Process(target=_np_worker, args=(i, num_workers, job, ready, start_event,
                                                       stop_event, results), daemon=True)
             for i in range(num_workers)]
  for worker in workers:
    worker.start()
  try:
    for _ in workers:  # all warmed up, then all start together
      _wait(lambda: ready.acquire(timeout=1.0), workers)
    start_event.set()
    if seconds is not None:
      time.sleep(seconds)
      stop_event.set()
    reports = [_wait(lambda: _get(results), workers) for _ in workers]
  finally:
    start_event.set()
    stop_event.set()
    for worker in workers:
      worker.join(timeout=60)
  images = sum(r['images'] for r in reports)
  result = _result(images, max(r['seconds'] for r in reports),
                   sum(r['cpu_seconds'] for r in reports))
  result['images_per_worker'] = [r['images'] for r in reports]
  result['ms_per_image'] = {step: 1000.0 * sum(r['timings'].get(step, 0.0) for r in reports)
                            / max(images, 1) for step in BASELINE_STEPS}
  return result


# ---------------------------------------------------------------------------------------------
# Orchestration: data, subprocesses pinned with taskset, table and JSON.

def make_synthetic_records(work_dir, num_images=SYNTHETIC_IMAGES, num_workers=2):
  """Synthetic VOC (375..500 px sides) converted to 16 train shards; returns their folder."""
  voc_root, records = os.path.join(work_dir, 'voc'), os.path.join(work_dir, 'records')
  make_synthetic_voc.generate_voc(voc_root, num_trainval=num_images, num_test=0, seed=0,
                                  min_size=SYNTHETIC_MIN_SIZE, max_size=SYNTHETIC_MAX_SIZE,
                                  num_workers=num_workers)
  convert_tfrecords.convert(voc_root, records,
                            convert_tfrecords.parse_split_specs('VOC2007:trainval', 'train'), [],
                            train_shards=16, num_workers=num_workers)
  return records


def bench_config(data_dir, image_size):
  """Reference settings at image_size with the data's class names (only their number matters)."""
  return model_spec.config_for_image_size(image_size,
                                          ssd_flags.resolve_class_names('', data_dir))


def run_pinned(cores, args):
  """Runs this script with `args` under taskset -c cores; returns its last-line JSON."""
  command = ['taskset', '-c', cores, sys.executable, os.path.abspath(__file__)] + args
  env = dict(os.environ, OMP_NUM_THREADS='1')
  completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, check=False)
  if completed.returncode:
    raise RuntimeError('%s failed:\n%s' % (' '.join(command), completed.stderr[-3000:]))
  return json.loads(completed.stdout.strip().splitlines()[-1])


def summarize(tf_results, baseline, context):
  """The JSON summary.

  Args:
    tf_results: {num_cores: {stage: result dict}}.
    baseline: measure_numpy_baseline's dict.
    context: dict of extra keys (settings, load averages), copied in.
  """
  summary = dict(context)
  for cores, stages in sorted(tf_results.items()):
    suffix = '1core' if cores == 1 else '%dcores' % cores
    summary['images_per_sec_%s' % suffix] = round(stages['batch']['images_per_sec'], 1)
    summary['cores_used_%s' % suffix] = round(stages['batch']['cores_used'], 2)
    for stage, result in stages.items():
      summary['images_per_sec_stage_%s_%s' % (stage, suffix)] = round(
          result['images_per_sec'], 1)
      summary['cpu_ms_per_image_stage_%s_%s' % (stage, suffix)] = round(
          result['cpu_ms_per_image'], 3)
      summary['images_counted_stage_%s_%s' % (stage, suffix)] = result['images']
  summary['images_per_sec_numpy_baseline_2procs'] = round(baseline['images_per_sec'], 1)
  summary['cpu_ms_per_image_numpy_baseline'] = round(baseline['cpu_ms_per_image'], 3)
  summary['images_counted_numpy_baseline'] = baseline['images']
  for step, ms in baseline['ms_per_image'].items():
    summary['ms_per_image_numpy_baseline_%s' % step] = round(ms, 3)
  summary['cores_used_numpy_baseline_2procs'] = round(baseline['cores_used'], 2)
  if 2 in tf_results:
    summary['speedup_2cores_vs_numpy_baseline'] = round(
        tf_results[2]['batch']['images_per_sec'] / max(baseline['images_per_sec'], 1e-9), 2)
    summary['images_per_sec_2free_cores_estimate'] = round(
        _free_cores_estimate(tf_results[2]['batch']), 1)
    summary['images_per_sec_numpy_baseline_2free_cores_estimate'] = round(
        _free_cores_estimate(baseline), 1)
  return summary


def _free_cores_estimate(result, cores=2):
  """images/s if the run had had `cores` cores to itself: cores / CPU seconds per image.

  An upper bound that assumes perfect scaling; meaningful when a shared machine gave the
  measurement fewer cores than allowed (see 'cores_used').
  """
  return 1000.0 * cores / max(result['cpu_ms_per_image'], 1e-9)


def format_table(tf_results, baseline):
  """Printable lines: images/s and CPU ms per image per stage and core count, then baseline."""
  cores = sorted(tf_results)
  header = '%-42s' % 'TF pipeline stage' + ''.join(
      '%12s %10s' % ('img/s %dc' % c, 'cpu ms/img') for c in cores)
  lines = [header]
  for stage in STAGES:
    lines.append('%-42s' % STAGE_TITLES[stage] + ''.join(
        '%12.1f %10.2f' % (tf_results[c][stage]['images_per_sec'],
                           tf_results[c][stage]['cpu_ms_per_image']) for c in cores))
  lines.append('')
  lines.append('numpy/OpenCV baseline, %d processes: %.1f images/s, %.2f cpu ms/image' % (
      len(baseline['images_per_worker']), baseline['images_per_sec'],
      baseline['cpu_ms_per_image']))
  lines.append('  ms per image: ' + ', '.join('%s %.2f' % item
                                              for item in baseline['ms_per_image'].items()))
  lines.append('')
  lines.append('CPU obtained (cores): ' + ', '.join(
      'TF %d-core %.2f' % (c, tf_results[c]['batch']['cores_used']) for c in cores) +
      ', baseline %.2f of 2' % baseline['cores_used'])
  if 2 in tf_results:
    lines.append('estimate with 2 free cores (2000 / cpu ms per image): TF %.0f images/s, '
                 'baseline %.0f images/s' % (_free_cores_estimate(tf_results[2]['batch']),
                                             _free_cores_estimate(baseline)))
  return lines


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('data_dir', None, 'Folder with train-* shards; default: a temporary '
                      'synthetic VOC set with VOC-like image sizes.')
  flags.DEFINE_string('file_pattern', 'train-*', 'Shards to read, relative to data_dir.')
  flags.DEFINE_integer('image_size', 300, 'Network input side (300: SSD300, 512: SSD512).')
  flags.DEFINE_integer('batch_size', 32, 'Images per batch.')
  flags.DEFINE_float('seconds', 10.0, 'Timed wall seconds per measurement (after a warm-up).')
  flags.DEFINE_integer('baseline_workers', 2, 'Processes of the numpy/OpenCV baseline.')
  flags.DEFINE_enum('worker', None, ['tf', 'numpy'], 'Internal: run one measurement set in '
                    'this (pinned) process and print its JSON.')


def _worker_main():
  pattern = os.path.join(FLAGS.data_dir, FLAGS.file_pattern)
  ssd_config = bench_config(FLAGS.data_dir, FLAGS.image_size)
  if FLAGS.worker == 'tf':
    tf1.disable_eager_execution()
    result = measure_tf_stages(pattern, ssd_config, FLAGS.batch_size, seconds=FLAGS.seconds,
                               warmup_seconds=WARMUP_SECONDS)
  else:
    result = measure_numpy_baseline(pattern, ssd_config, FLAGS.batch_size,
                                    FLAGS.baseline_workers, seconds=FLAGS.seconds)
  print(json.dumps(result))


def main(argv):
  del argv
  if FLAGS.worker:
    return _worker_main()
  load_before = os.getloadavg()
  work_dir = None if FLAGS.data_dir else tempfile.mkdtemp(prefix='input_pipeline_bench-')
  try:
    data_dir = FLAGS.data_dir or make_synthetic_records(work_dir)
    bench_config(data_dir, FLAGS.image_size)  # fail early on a bad size
    num_files = len(input_fn.list_shards(os.path.join(data_dir, FLAGS.file_pattern)))
    args = ['--data_dir=%s' % data_dir, '--file_pattern=%s' % FLAGS.file_pattern,
            '--image_size=%d' % FLAGS.image_size, '--batch_size=%d' % FLAGS.batch_size,
            '--seconds=%g' % FLAGS.seconds]
    tf_results = {cores: run_pinned(core_set, args + ['--worker=tf'])
                  for cores, core_set in CORE_SETS.items()}
    baseline = run_pinned(CORE_SETS[2], args + ['--worker=numpy',
                                                '--baseline_workers=%d' % FLAGS.baseline_workers])
  finally:
    if work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  load_after = os.getloadavg()
  print('SSD training input pipeline, %d px, batch %d, %g s per measurement, %s shards (%d '
        'files); cores pinned with taskset' % (FLAGS.image_size, FLAGS.batch_size, FLAGS.seconds,
                                               'synthetic 375..500 px' if work_dir else data_dir,
                                               num_files))
  print('load average (1, 5, 15 min) before %.2f %.2f %.2f, after %.2f %.2f %.2f; %d CPUs'
        % (load_before + load_after + (os.cpu_count(),)))
  print('\n'.join(format_table(tf_results, baseline)))
  context = {'image_size': FLAGS.image_size, 'batch_size': FLAGS.batch_size,
             'measurement_seconds': FLAGS.seconds, 'synthetic_data': bool(work_dir),
             'core_restriction': 'taskset', 'cpu_count': os.cpu_count(),
             'load_average_1min_before': load_before[0], 'load_average_1min_after': load_after[0],
             'machine': hardware.describe()}
  print('machine: %s' % hardware.describe_line(context['machine']))
  print(json.dumps(summarize(tf_results, baseline, context)))


if __name__ == '__main__':
  define_flags()
  app.run(main)
