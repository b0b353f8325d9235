"""The SSD Estimator model_fn, composed from small _build_* helpers.

features / labels contract (produced by dataset/input_fn.py):
  features['image']: float32 [batch, size, size, 3], RGB minus the backbone mean.
  TRAIN/EVAL labels: 'cls_targets' int64 [batch, num_anchors] (0 background, -1 ignored),
    'loc_targets' float32 [batch, num_anchors, 4], and the ground truth 'boxes' float32
    [batch, max_boxes, 4] normalized, 'labels' int64 [batch, max_boxes], 'difficult' int64
    [batch, max_boxes], 'num_boxes' int32 [batch] (after augmentation in TRAIN).
  EVAL/PREDICT features may carry 'filename' string [batch] and the original 'height',
    'width' int64 [batch], used to map detections to pixels.
"""

import functools

import tensorflow as tf

from net import detection_eval
from net import eval_summaries
from net import hooks
from net import losses
from net import model_spec
from net import train_ops
from utility import boxes as box_lib
from utility import checkpoint
from utility import nms
from utility import warm_start

tf1 = tf.compat.v1
ModeKeys = tf.estimator.ModeKeys

NAN_LOSS_MESSAGE = 'SSD loss is NaN or Inf'


def make_model_fn(ssd_config, evaluator=None, eval_images=eval_summaries.DEFAULT_EVAL_IMAGES):
  """Returns model_fn(features, labels, mode, config) for tf.estimator.Estimator.

  Args:
    ssd_config: utility.config.SSDConfig.
    evaluator: optional net.detection_eval.DetectionEvaluator used in EVAL mode (so a caller
      can read its results and have result files written); otherwise the one named by
      postprocess.eval_metric is made per evaluation.
    eval_images: EVAL mode draws this many evaluation images for TensorBoard (0 = none);
      net/eval_summaries.py, which also adds the per-class PR curves.
  """
  return functools.partial(ssd_model_fn, ssd_config=ssd_config, evaluator=evaluator,
                           eval_images=eval_images)


def ssd_model_fn(features, labels, mode, config, ssd_config, evaluator=None,
                 eval_images=eval_summaries.DEFAULT_EVAL_IMAGES):
  """tf.estimator model_fn for SSD; `config` is the Estimator's RunConfig."""
  is_training = mode == ModeKeys.TRAIN
  outputs = model_spec.build_network(features['image'], ssd_config.model, is_training,
                                     ssd_config.train.weight_init)
  anchors = model_spec.generate_anchors(ssd_config.model)
  if mode == ModeKeys.PREDICT:
    detections = build_detections(outputs, anchors, ssd_config)
    predictions = _build_predictions(detections, features)
    return tf.estimator.EstimatorSpec(
        mode, predictions=predictions,
        export_outputs={'serving_default': tf.estimator.export.PredictOutput(predictions)})

  loss_terms = _build_losses(outputs, labels, ssd_config)
  if mode == ModeKeys.EVAL:
    detections = build_detections(outputs, anchors, ssd_config)
    evaluator = evaluator or detection_eval.make(
        ssd_config.postprocess.eval_metric, ssd_config.model.class_names,
        category_ids=model_spec.category_ids(ssd_config.model))
    metrics = detection_eval.metric_ops(evaluator, features, labels, detections)
    metrics.update(eval_summaries.metric_ops(
        evaluator, features, labels, detections, ssd_config.model.class_names,
        model_spec.image_convention(ssd_config.model), eval_images))
    metrics.update(_build_loss_metrics(loss_terms))
    return tf.estimator.EstimatorSpec(mode, loss=loss_terms['total_loss'],
                                      eval_metric_ops=metrics)

  global_step = tf1.train.get_or_create_global_step()
  # The schedule counts optimizer steps (global_step // --gradient_accumulation_steps).
  learning_rate = train_ops.learning_rate_schedule(
      train_ops.optimizer_step(global_step, ssd_config.train), ssd_config.train)
  # Read the step before the update so the logger's fetch is not racing the increment.
  step_before_update = tf.identity(global_step)
  # Every op of the update (gradients included) waits for the finite-loss check.
  with tf.control_dependencies([step_before_update, _nan_guard(loss_terms, step_before_update)]):
    train_op = _build_train_op(loss_terms, global_step, learning_rate, ssd_config.train)
  _build_train_summaries(loss_terms, learning_rate, features, labels, ssd_config)
  return tf.estimator.EstimatorSpec(
      mode, loss=loss_terms['total_loss'], train_op=train_op,
      scaffold=_build_scaffold(ssd_config, config.model_dir),
      training_hooks=[_progress_hook(loss_terms, learning_rate, step_before_update,
                                     ssd_config.train)])


def _nan_guard(loss_terms, step):
  """An assertion op that the loss is finite.

  The train op is built under a control dependency on it, so a NaN/Inf loss fails the step
  before any weight changes and no checkpoint of NaN weights is written. The error message
  carries the step (train_ssd.py turns it into one sentence with the likely causes).
  """
  return tf.debugging.Assert(
      tf.math.is_finite(loss_terms['total_loss']),
      [NAN_LOSS_MESSAGE, 'at step', step + 1, 'classification', loss_terms['classification_loss'],
       'localization', loss_terms['localization_loss']], name='nan_loss_guard')


def _build_train_op(loss_terms, global_step, learning_rate, train_config):
  """The train op: one optimizer step per run, or with --gradient_accumulation_steps K > 1 one
  per K runs on the gradient of the K micro-batches' loss sums over their positives."""
  if train_config.gradient_accumulation_steps == 1:
    return train_ops.build_train_op(loss_terms['total_loss'], global_step, learning_rate,
                                    train_config)
  return train_ops.build_accumulating_train_op(loss_terms['data_loss_sum'],
                                               loss_terms['num_positives'], global_step,
                                               learning_rate, train_config)


def _build_losses(outputs, labels, ssd_config):
  """Multibox loss + weight decay, scaled so that replicas add up to the single-device loss.

  Returns a dict with the terms and 'total_loss' (what is reported and minimized).

  With R replicas the Estimator's v1 optimizer divides each replica's loss by R and sums the
  gradients (and reports the mean loss). So each replica contributes:
  - the multibox sums of its images divided by the positives of the global batch (all-reduced),
    times R: over replicas this is exactly the loss of the global batch on one device;
  - weight decay times R on global replica 0 only (other replicas may not even see the
    variable collections): it counts once, as on one device.

  With --gradient_accumulation_steps > 1 (one replica) the terms also hold 'data_loss_sum',
  the multibox loss before the division by the positives, which the accumulating train op
  normalises by the positives of all its micro-batches.
  """
  replica_context = tf.distribute.get_replica_context()
  num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
  if ssd_config.train.gradient_accumulation_steps > 1:
    return _build_accumulation_losses(outputs, labels, ssd_config, num_replicas)
  local_positives = tf.reduce_sum(tf.cast(labels['cls_targets'] > 0, tf.float32))
  distributed = replica_context is not None and num_replicas > 1
  global_positives = (replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local_positives)
                      if distributed else local_positives)
  terms = losses.multibox_loss(
      outputs['class_logits'], outputs['box_offsets'], labels['cls_targets'],
      labels['loc_targets'], negative_ratio=ssd_config.train.negative_ratio,
      loc_weight=ssd_config.train.loc_weight, num_positives_normalizer=global_positives,
      min_negatives_per_image=ssd_config.train.min_negatives_per_image)
  regularization = train_ops.weight_decay_loss(tf1.trainable_variables(), ssd_config.train)
  data_loss = terms['classification_loss'] + terms['localization_loss']
  if distributed:
    is_first = tf.cast(tf.equal(replica_context.replica_id_in_sync_group, 0), tf.float32)
    total = num_replicas * (data_loss + regularization * is_first)
  else:
    total = data_loss + regularization
  terms.update({'regularization_loss': regularization, 'total_loss': total, 'outputs': outputs})
  return terms


def _build_accumulation_losses(outputs, labels, ssd_config, num_replicas):
  """_build_losses for one replica with gradient accumulation: the same reported terms, plus
  'data_loss_sum' (normaliser 1 gives multibox_loss's sums; they are divided here for the
  per-micro-batch terms that are logged and checked for NaN)."""
  train = ssd_config.train
  if num_replicas > 1:
    raise ValueError('--gradient_accumulation_steps=%d works on one replica, but this run has '
                     '%d: set --gradient_accumulation_steps=1 or train on one device '
                     '(--num_gpus=1, no --cpu_replicas or TF_CONFIG cluster).'
                     % (train.gradient_accumulation_steps, num_replicas))
  sums = losses.multibox_loss(
      outputs['class_logits'], outputs['box_offsets'], labels['cls_targets'],
      labels['loc_targets'], negative_ratio=train.negative_ratio, loc_weight=train.loc_weight,
      num_positives_normalizer=tf.constant(1.0),
      min_negatives_per_image=train.min_negatives_per_image)
  normalizer = tf.maximum(sums['num_positives'], 1.0)
  regularization = train_ops.weight_decay_loss(tf1.trainable_variables(), train)
  terms = dict(sums, classification_loss=sums['classification_loss'] / normalizer,
               localization_loss=sums['localization_loss'] / normalizer)
  data_loss_sum = sums['classification_loss'] + sums['localization_loss']
  terms.update({'data_loss_sum': data_loss_sum, 'regularization_loss': regularization,
                'total_loss': data_loss_sum / normalizer + regularization, 'outputs': outputs})
  return terms


def build_detections(outputs, anchors, ssd_config):
  """Softmax, box decoding and per-class NMS (docs/RECIPE.md, "Detection output").

  Args:
    outputs: the network's dict: 'box_offsets' float32 [batch, num_anchors, 4] and
      'class_logits' float32 [batch, num_anchors, num_classes].
    anchors: float32 [num_anchors, 4] default boxes, normalized [ymin, xmin, ymax, xmax].
    ssd_config: utility.config.SSDConfig (postprocess settings, box coder).

  Returns:
    the dict of nms.batch_multiclass_nms.
  """
  post = ssd_config.postprocess
  boxes = model_spec.coder(ssd_config.model).decode(outputs['box_offsets'], anchors)
  boxes = tf.clip_by_value(boxes, 0.0, 1.0)
  # A box clipped to nothing (entirely outside the image) covers no pixel: never output it.
  has_area = tf.cast(box_lib.area(boxes) > 0.0, tf.float32)
  scores = tf.nn.softmax(outputs['class_logits'], axis=-1) * has_area[..., None]
  detections = nms.batch_multiclass_nms(
      boxes, scores, score_threshold=post.score_threshold,
      pre_nms_top_k=post.pre_nms_top_k, iou_threshold=post.nms_iou_threshold,
      max_per_class=post.max_detections_per_class, max_per_image=post.max_detections_per_image)
  return detections


def _build_predictions(detections, features):
  """Prediction dict: normalized boxes, and pixel boxes when the original size is known."""
  predictions = {
      'detection_boxes': detections['boxes'],
      'detection_scores': detections['scores'],
      'detection_classes': detections['classes'],
      'num_detections': detections['num_detections'],
  }
  for key in ('filename', 'height', 'width'):
    if key in features:
      predictions[key] = features[key]
  return predictions


def _build_loss_metrics(loss_terms):
  return {
      'losses/classification_loss': tf1.metrics.mean(loss_terms['classification_loss']),
      'losses/localization_loss': tf1.metrics.mean(loss_terms['localization_loss']),
  }


def _selected_accuracy(loss_terms, labels):
  """Classification accuracy over the anchors the loss uses (positives + mined negatives)."""
  predicted = tf.argmax(loss_terms['outputs']['class_logits'], axis=-1, output_type=tf.int64)
  correct = tf.cast(tf.equal(predicted, tf.cast(labels['cls_targets'], tf.int64)), tf.float32)
  selected = tf.cast(loss_terms['selected_mask'], tf.float32)
  return tf.reduce_sum(correct * selected) / tf.maximum(tf.reduce_sum(selected), 1.0)


def _build_train_summaries(loss_terms, learning_rate, features, labels, ssd_config):
  batch = tf.cast(tf.shape(labels['cls_targets'])[0], tf.float32)
  tf1.summary.scalar('losses/classification_loss', loss_terms['classification_loss'])
  tf1.summary.scalar('losses/localization_loss', loss_terms['localization_loss'])
  tf1.summary.scalar('losses/regularization_loss', loss_terms['regularization_loss'])
  tf1.summary.scalar('losses/total_loss', loss_terms['total_loss'])
  tf1.summary.scalar('learning_rate', learning_rate)
  tf1.summary.scalar('positives_per_image', loss_terms['num_positives'] / batch)
  tf1.summary.scalar('selected_anchor_accuracy', _selected_accuracy(loss_terms, labels))
  # Images the augmentation left without objects (a crop that keeps no box centre, as in
  # Caffe): they add no loss, so a large fraction means wasted steps.
  tf1.summary.scalar('images_without_objects', tf.reduce_mean(
      tf.cast(tf.equal(labels['num_boxes'], 0), tf.float32)))
  # A few augmented training images with their ground truth (back to RGB, [0, 1] range).
  convention = model_spec.image_convention(ssd_config.model)
  images = convention.to_rgb_pixels(features['image'][:3]) / 255.0
  boxes = labels['boxes'][:3]
  tf1.summary.image('training_images', tf.image.draw_bounding_boxes(
      tf.clip_by_value(images, 0.0, 1.0), boxes, colors=[[0.0, 1.0, 0.0, 1.0]]), max_outputs=3)


def _build_scaffold(ssd_config, model_dir):
  """Warm start on a fresh start only (a checkpoint in model_dir wins): from a full SSD
  checkpoint every variable whose name and shape match, with a restore report
  (utility/warm_start.py); else the backbone's pretrained weights (its own loader: slim VGG16
  checkpoint, Keras .h5 MobileNet weights)."""
  train = ssd_config.train
  if not train.checkpoint_path or checkpoint.model_dir_has_checkpoint(model_dir):
    return None
  backbone = model_spec.backbone(ssd_config.model)
  scope = ssd_config.model.scope
  full = checkpoint.find_tf_checkpoint(train.checkpoint_path)
  if full and warm_start.is_full_model_checkpoint(full, scope, backbone.scope):
    init_fn = warm_start.full_model_init_fn(full, scope, backbone.scope,
                                            train.checkpoint_exclude_scopes)
  else:
    init_fn = backbone.init_from_checkpoint(train.checkpoint_path, scope, ssd_config.model,
                                            train)
  return tf1.train.Scaffold(init_fn=init_fn)


def _progress_hook(loss_terms, learning_rate, global_step, train_config):
  return hooks.TrainingProgressHook(
      {'step': global_step, 'loss': loss_terms['total_loss'],
       'cls': loss_terms['classification_loss'], 'loc': loss_terms['localization_loss'],
       'reg': loss_terms['regularization_loss'], 'lr': learning_rate},
      global_batch_size=train_config.batch_size, max_steps=train_config.max_number_of_steps,
      every_n_steps=train_config.log_every_n_steps)
