"""tf.data input pipelines for the SSD Estimator (train and eval).

Train: shard files by glob -> (shard per input pipeline) -> parallel interleave of TFRecord
files -> shuffle -> repeat -> parse -> drop images without boxes (unless
--min_negatives_per_image > 0: then they are negatives) -> decode + augment (TF ops,
preprocessing/ssd_preprocessing.py) + encode targets for the anchors (utility/target_assigner.py),
all in one parallel map -> batch with fixed shapes -> prefetch.

Eval: files in order, no shuffle or augmentation, every image once (the last batch may be
smaller), the unaugmented ground truth kept for the VOC metric.

Output contract (what net/model_fn.py reads):
  features['image']: float32 [batch, size, size, 3], RGB minus the backbone mean.
  features['filename']: string [batch]; 'height', 'width': int64 [batch] original size (eval);
    'source_id': string [batch], the dataset's image id, b'' if the records have none (eval).
  labels['cls_targets']: int64 [batch, num_anchors]; 'loc_targets': float32 [batch, num_anchors,
    4]; 'boxes': float32 [batch, max_boxes, 4]; 'labels', 'difficult': int64 [batch, max_boxes];
  'num_boxes': int32 [batch]; eval also 'iscrowd' int64 and 'area' float32 [batch, max_boxes].
  Ground-truth rows past num_boxes are zero padding.

Crowd objects (COCO iscrowd 1) are left out of the training targets, as the TF Object Detection
API does (they are never positives; an image with nothing else left is skipped like one without
objects); evaluation gets them with their flag and ignores them.
"""

import os
import struct

import tensorflow as tf

from dataset import tfrecord_io
from preprocessing import augmentation_ops
from preprocessing import ssd_preprocessing
from utility import checkpoint
from utility import target_assigner

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(file_pattern):
  """Sorted files matching a glob (or a comma-separated list of globs).

  Raises:
    ValueError: naming the pattern when nothing matches.
  """
  files = []
  for pattern in file_pattern.split(','):
    files.extend(tf.io.gfile.glob(pattern.strip()))
  if not files:
    raise ValueError('No TFRecord files match %r: check --data_dir (it should hold train-*/val-* '
                     'shards written by dataset/convert_tfrecords.py).' % file_pattern)
  return sorted(set(files))


def count_records(file_pattern):
  """How many records the shards matching file_pattern hold, read off the TFRecord framing
  (8-byte length, 4-byte length CRC, the data, 4-byte data CRC) without reading the data, so
  counting a VOC07 test set costs milliseconds. Used for progress and ETA.

  Raises:
    ValueError: naming the file when its framing does not end where the file ends (truncated).
  """
  total = 0
  for path in list_shards(file_pattern):
    with tf.io.gfile.GFile(path, 'rb') as stream:
      size, offset = stream.size(), 0
      while offset + 8 <= size:
        stream.seek(offset)
        offset += 8 + 4 + struct.unpack('<Q', stream.read(8))[0] + 4
        total += 1
      if offset != size:
        raise ValueError('%s is not a complete TFRecord file (it ends inside a record): '
                         'convert the dataset again.' % path)
  return total


def _autotune(value):
  return AUTOTUNE if value is None or value < 1 else value


def _pad_rows(tensor, max_rows):
  """Pads (or, in training, truncates) the first dim of tensor to max_rows."""
  tensor = tensor[:max_rows]
  padding = [[0, max_rows - tf.shape(tensor)[0]]] + [[0, 0]] * (tensor.shape.rank - 1)
  return tf.pad(tensor, padding)


def _encode_targets(model_inputs, boxes, labels, difficult, num_boxes):
  valid = target_assigner.non_difficult_mask(difficult, num_boxes)
  return model_inputs.assigner.assign(tf.constant(model_inputs.anchors), boxes, labels,
                                      gt_valid_mask=valid)


def without_crowd(example):
  """A decoded example without its crowd objects (training)."""
  keep = tf.equal(example['iscrowd'], 0)
  example = dict(example)
  for key in ('boxes', 'labels', 'difficult', 'truncated', 'iscrowd', 'area'):
    example[key] = tf.boolean_mask(example[key], keep)
  example['num_boxes'] = tf.shape(example['labels'], out_type=tf.int32)[0]
  return example


def _ground_truth(boxes, labels, difficult, num_boxes, max_boxes):
  return {'boxes': _pad_rows(boxes, max_boxes), 'labels': _pad_rows(labels, max_boxes),
          'difficult': _pad_rows(difficult, max_boxes),
          'num_boxes': tf.minimum(num_boxes, max_boxes)}


augmentation_configs = ssd_preprocessing.augmentation_configs  # InputConfig -> configs


def make_train_example_fn(ssd_config, model_inputs):
  """(decoded example dict, seed or None) -> (features, labels) for one training image.

  model_inputs: utility.model_inputs.ModelInputs (net.model_spec.model_inputs).
  """
  input_config = ssd_config.input
  size = (model_inputs.image_size, model_inputs.image_size)
  photometric_config, geometric_config = augmentation_configs(input_config)
  extra_ops = augmentation_ops.resolve(input_config.extra_augmentations,
                                       input_config.augmentation_options)

  def example_fn(example, seed=None):
    image, boxes, labels, num_boxes = ssd_preprocessing.preprocess_for_train(
        example['image'], example['boxes'], example['labels'], example['difficult'],
        convention=model_inputs.convention, out_size=size,
        use_difficult=input_config.use_difficult, seed=seed,
        photometric_config=photometric_config, geometric_config=geometric_config,
        extra_ops=extra_ops)
    difficult = tf.zeros_like(labels)  # dropped or, by the all-difficult rule, kept as targets
    targets = _encode_targets(model_inputs, boxes, labels, difficult, num_boxes)
    label_dict = {'cls_targets': targets['cls_targets'], 'loc_targets': targets['loc_targets']}
    label_dict.update(_ground_truth(boxes, labels, difficult, num_boxes,
                                    input_config.max_boxes_per_image))
    return {'image': image}, label_dict

  return _without_autograph(example_fn)


def make_eval_example_fn(ssd_config, model_inputs):
  """decoded example dict -> (features, labels) for one evaluation image."""
  max_boxes = ssd_config.input.max_boxes_per_image
  size = (model_inputs.image_size, model_inputs.image_size)

  def example_fn(example):
    check = tf.debugging.assert_less_equal(
        example['num_boxes'], max_boxes,
        message='An eval image has more objects than --max_boxes_per_image; raise it.')
    with tf.control_dependencies([check]):
      num_boxes = tf.identity(example['num_boxes'])
    image = ssd_preprocessing.preprocess_for_eval(example['image'], size,
                                                  model_inputs.convention)
    ignored = tf.maximum(example['difficult'], example['iscrowd'])  # not matched for the loss
    targets = _encode_targets(model_inputs, example['boxes'], example['labels'], ignored,
                              num_boxes)
    features = {'image': image, 'filename': example['filename'], 'height': example['height'],
                'width': example['width']}
    label_dict = {'cls_targets': targets['cls_targets'], 'loc_targets': targets['loc_targets']}
    label_dict.update(_ground_truth(example['boxes'], example['labels'], example['difficult'],
                                    num_boxes, max_boxes))
    features['source_id'] = example['source_id']
    label_dict['iscrowd'] = _pad_rows(example['iscrowd'], max_boxes)
    label_dict['area'] = _pad_rows(example['area'], max_boxes)
    return features, label_dict

  return _without_autograph(example_fn)


def _without_autograph(fn):
  """fn as tf.data traces it, minus AutoGraph's source rewriting.

  The preprocessing is written with graph ops (tf.cond, tf.while_loop), so AutoGraph has nothing
  to convert, yet rewriting the whole augmentation took about 8 of the 24 seconds before a
  training run's first step.
  """
  return tf.autograph.experimental.do_not_convert(fn)


def _records(files, input_config, shuffle, seed):
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  return dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=_autotune(input_config.num_readers),
      num_parallel_calls=_autotune(input_config.num_readers),
      deterministic=not shuffle or seed is not None)


def train_dataset(file_pattern, ssd_config, model_inputs, batch_size, input_context=None,
                  seed=None):
  """Infinite dataset of augmented training batches of `batch_size` (per replica).

  Args:
    file_pattern: glob of training shards.
    ssd_config: utility.config.SSDConfig.
    model_inputs: utility.model_inputs.ModelInputs (net.model_spec.model_inputs).
    batch_size: images per batch produced by this pipeline.
    input_context: tf.distribute.InputContext; with several input pipelines (workers) each
      reads a disjoint share of the files (or of the records if there are fewer files).
    seed: optional int; makes file order, shuffling and augmentation reproducible.
  """
  files = list_shards(file_pattern)
  input_config = ssd_config.input
  dataset = _records(files, input_config, shuffle=True, seed=seed)
  if input_context and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  dataset = dataset.shuffle(input_config.shuffle_buffer, seed=seed).repeat()
  dataset = dataset.map(_without_autograph(lambda record: without_crowd(
      tfrecord_io.decode_example(record))),
                        num_parallel_calls=_autotune(input_config.num_parallel_calls),
                        deterministic=seed is not None)
  if ssd_config.train.min_negatives_per_image <= 0:
    # Without mined negatives an image with no object contributes nothing: skip it here.
    dataset = dataset.filter(_without_autograph(lambda example: example['num_boxes'] > 0))
  example_fn = make_train_example_fn(ssd_config, model_inputs)
  if seed is not None:
    # One stateless seed [2] per image, independent of thread scheduling.
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    dataset = tf.data.Dataset.zip((dataset, seeds)).map(
        example_fn, num_parallel_calls=_autotune(input_config.num_parallel_calls),
        deterministic=True)
  else:
    dataset = dataset.map(example_fn, num_parallel_calls=_autotune(
        input_config.num_parallel_calls), deterministic=False)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.prefetch(_autotune(input_config.prefetch_batches))


def eval_dataset(file_pattern, ssd_config, model_inputs, batch_size):
  """Every evaluation image exactly once, in file order; the last batch may be smaller."""
  files = list_shards(file_pattern)
  input_config = ssd_config.input
  dataset = _records(files, input_config, shuffle=False, seed=None)
  dataset = dataset.map(_without_autograph(tfrecord_io.decode_example),
                        num_parallel_calls=_autotune(input_config.num_parallel_calls))
  dataset = dataset.map(make_eval_example_fn(ssd_config, model_inputs),
                        num_parallel_calls=_autotune(input_config.num_parallel_calls))
  return dataset.batch(batch_size).prefetch(_autotune(input_config.prefetch_batches))


def seed_at_step(seed, step):
  """The input seed of a training call that starts at global step `step`: `seed` itself for a
  fresh run, another seed for each later start (seed * 1000003 + step, modulo 2^31 - 1)."""
  if seed is None or not step:
    return seed
  return (int(seed) * 1000003 + int(step)) % (2 ** 31 - 1)


def make_train_input_fn(file_pattern, ssd_config, model_inputs, seed=None):
  """Estimator input_fn; under a distribution strategy it batches per replica.

  A seeded input restarts with every Estimator.train call (a resumed run, each part of a
  --train_time_budget_minutes run): each call is seeded by the step it starts from
  (seed_at_step, read off the Estimator's model_dir), so a continued run goes on to new
  shuffles and augmentations instead of replaying the first ones, and a run resumed at step N
  sees the same images however it was stopped there.
  """
  global_batch = ssd_config.train.batch_size

  def input_fn(input_context=None, config=None):
    batch = (input_context.get_per_replica_batch_size(global_batch) if input_context
             else global_batch)
    return train_dataset(file_pattern, ssd_config, model_inputs, batch, input_context,
                         seed_at_step(seed, checkpoint.checkpoint_step(
                             getattr(config, 'model_dir', None))))

  return input_fn


def make_eval_input_fn(file_pattern, ssd_config, model_inputs, batch_size):
  """The eval input_fn; it carries batch_size and num_images (the records of the shards), which
  the evaluation's progress line and ETA read."""
  def input_fn():
    return eval_dataset(file_pattern, ssd_config, model_inputs, batch_size)

  input_fn.batch_size = batch_size
  input_fn.num_images = count_records(file_pattern)
  return input_fn


def make_input_fns(data_dir, ssd_config, model_inputs, train_pattern='train-*',
                   val_pattern='val-*'):
  """(train input_fn, eval input_fn or None) for shards under data_dir.

  The training glob must match (ValueError naming it otherwise); the eval input is None when
  no val shard exists. Training is seeded by train.tf_random_seed when it is set; evaluation
  uses a quarter of the training batch.
  """
  train_glob = os.path.join(data_dir, train_pattern)
  list_shards(train_glob)
  augmentation_configs(ssd_config.input)  # bad augmentation flags fail here, before any work
  augmentation_ops.resolve(ssd_config.input.extra_augmentations,
                           ssd_config.input.augmentation_options)
  train_fn = make_train_input_fn(train_glob, ssd_config, model_inputs,
                                 seed=ssd_config.train.tf_random_seed or None)
  val_glob = os.path.join(data_dir, val_pattern)
  eval_fn = None
  if tf.io.gfile.glob(val_glob):
    eval_fn = make_eval_input_fn(val_glob, ssd_config, model_inputs,
                                 batch_size=max(1, ssd_config.train.batch_size // 4))
  return train_fn, eval_fn


def _run_once(dataset):
  """The first element of dataset as numpy arrays (its own graph): the keys the grid draws."""
  features, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
  fetches = {'image': features['image'], 'boxes': labels['boxes'],
             'labels': labels['labels'], 'num_boxes': labels['num_boxes']}
  with tf.compat.v1.Session() as session:
    return session.run(fetches)


def sample_eval_batch(file_pattern, ssd_config, model_inputs, num_images):
  """The first num_images records of the evaluation pipeline (resized, not augmented), with
  their ground truth (difficult objects included), as sample_training_batch returns them.

  Raises:
    ValueError: if num_images < 1 or the pattern matches no file.
  """
  if num_images < 1:
    raise ValueError('--num_images must be at least 1; got %d.' % num_images)
  with tf.Graph().as_default():
    return _run_once(eval_dataset(file_pattern, ssd_config, model_inputs, num_images))


def sample_training_batch(file_pattern, ssd_config, model_inputs, num_images, seed=None):
  """Runs the training pipeline once (its own graph) and returns num_images samples.

  Returns:
    dict of numpy arrays: 'image' float32 [num_images, size, size, 3] as fed to the network
    (in the backbone's convention), 'boxes' float32 [num_images, max_boxes, 4] normalized,
    'labels' int64 [num_images, max_boxes], 'num_boxes' int32 [num_images].

  Raises:
    ValueError: if num_images < 1 or the pattern matches no file.
  """
  if num_images < 1:
    raise ValueError('--num_images must be at least 1; got %d.' % num_images)
  with tf.Graph().as_default():
    return _run_once(train_dataset(file_pattern, ssd_config, model_inputs, num_images,
                                   seed=seed))
